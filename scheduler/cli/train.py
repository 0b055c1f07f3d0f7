"""`seqq run` (train here) and `seqq submit` (enqueue for a worker)."""

from __future__ import annotations

from typing import Annotated

import typer

from scheduler.cli.options import PriorityOpt, QueueOpt, SpecFlags, spec_options
from shared.state import JobState


def register(app: typer.Typer) -> None:
    app.command("run")(run)
    app.command("submit")(submit)


@spec_options
def run(
    json_out: Annotated[
        bool, typer.Option("--json", help="Print the outcome as one JSON object.")
    ] = False,
    *,
    flags: SpecFlags,
) -> None:
    """Train right here, with no broker (the embedded mode), logging to MLflow.

    Uses the same job function as a worker. Without SEQQ_MLFLOW_URI / MLFLOW_TRACKING_URI the
    run goes to a local SQLite store under ~/.seqq that `mlflow ui` opens.

    Example: `seqq run --model rnn --max-steps 300`
    """
    from scheduler import jobs, tracking
    from scheduler.cli import display
    from shared.settings import get_settings

    spec = flags.build()
    settings = get_settings()
    # Every check before the progress bar appears: bad input gets one line, nothing else.
    jobs.check_inputs(spec, settings)
    tracking.check_tracking(settings)
    with display.make_progress() as progress:
        task = progress.add_task(
            f"{spec.model.cell}", total=spec.optim.max_steps, stats="preparing data and model"
        )
        with display.ProgressReporter(progress, task) as reporter:
            outcome, url = jobs.run_here(spec, settings, reporter)
    result = outcome.as_dict() | {"url": url}
    if json_out:
        display.print_json(result)
    else:
        display.show(display.job_panel(result))
        display.console.print(
            f"open the MLflow UI: [bold]{tracking.ui_hint(settings)}[/] then {url}",
            soft_wrap=True,
        )
    if outcome.status != JobState.FINISHED:
        raise typer.Exit(1)


@spec_options
def submit(
    wait: Annotated[
        bool, typer.Option("--wait", "-w", help="Follow the job live; exit 1 unless it finishes.")
    ] = False,
    json_out: Annotated[
        bool, typer.Option("--json", help="Print the submission as one JSON object.")
    ] = False,
    queue: QueueOpt = None,
    priority: PriorityOpt = "normal",
    *,
    flags: SpecFlags,
) -> None:
    """Validate a training spec and enqueue it for a worker.

    Routing: `device: cuda` goes to the gpu queue, `cpu` to the cpu queue, `auto` to gpu when
    a live GPU worker exists; `--priority` picks the high/low variant, `--queue` overrides.

    Prints the job id (= the MLflow run id) and the run's address. Bad input is refused with
    one line and exit code 2; nothing is enqueued.

    Example: `seqq submit --model lstm --data corpus.txt --max-steps 1000 --wait`
    """
    from scheduler import broker, jobs, tracking
    from scheduler.cli import display
    from shared.settings import get_settings

    settings = get_settings()
    submission = jobs.submit(flags.build(), settings, queue=queue, priority=priority)
    if json_out and not wait:
        display.print_json(submission.__dict__)
        return
    if not json_out:
        display.console.print(
            f"submitted job [bold]{submission.job_id}[/] to queue {submission.queue}"
        )
        display.console.print(f"loss curves in MLflow: {submission.url}", soft_wrap=True)
    if not wait:
        return
    client = tracking.tracking_client(settings)
    display.follow(
        {f"job {submission.job_id[:8]}": submission.job_id}, broker.celery_app(settings), client
    )
    job = jobs.status(submission.job_id, settings)
    if json_out:
        display.print_json(job)
    else:
        display.show(display.job_panel(job))
    if job["status"] != JobState.FINISHED:
        raise typer.Exit(1)
