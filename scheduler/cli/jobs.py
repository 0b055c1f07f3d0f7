"""`seqq status`, `seqq list` and `seqq cancel`: read and steer jobs."""

from __future__ import annotations

from typing import Annotated

import typer

JobArg = Annotated[str, typer.Argument(help="Job id (the MLflow run id printed by submit).")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON object instead of a table.")]


def register(app: typer.Typer) -> None:
    app.command("status")(status)
    app.command("list")(list_jobs)
    app.command("cancel")(cancel)


def status(job_id: JobArg, json_out: JsonOpt = False) -> None:
    """Show one job: state, step, losses, device, error if any.

    Example: `seqq status 3f2a...  --json`
    """
    from scheduler import jobs
    from scheduler.cli import display
    from shared.settings import get_settings

    job = jobs.status(job_id, get_settings())
    if json_out:
        display.print_json(job)
    else:
        display.show(display.job_panel(job))


def list_jobs(
    limit: Annotated[int, typer.Option("--limit", "-l", min=1, help="How many recent jobs.")] = 20,
    experiment: Annotated[
        str | None, typer.Option("--experiment", "-e", help="Only this experiment.")
    ] = None,
    json_out: JsonOpt = False,
) -> None:
    """List recent jobs, newest first: state, model, step, validation and test loss; then
    recent sweeps: state, trials ended of those wanted, best validation loss; then recent
    comparisons: state, models, seeds, child runs ended.

    With `--json`, one list: each job has `"kind": "job"`, each sweep `"kind": "sweep"`, each
    comparison `"kind": "compare"`.

    Example: `seqq list --experiment cmp --limit 5`
    """
    from scheduler import jobs
    from scheduler.cli import display
    from shared.settings import get_settings

    found = jobs.list_jobs(get_settings(), limit=limit, experiment=experiment)
    if json_out:
        display.print_json(found)
        return
    if not found:
        display.console.print("no jobs yet: try `seqq submit --model lstm` or `seqq run`")
        return
    kinds = {kind: [r for r in found if r["kind"] == kind] for kind in ("job", "sweep", "compare")}
    if kinds["job"]:
        display.show(display.jobs_table(kinds["job"]))
    if kinds["sweep"]:
        display.show(display.sweeps_table(kinds["sweep"]))
    if kinds["compare"]:
        display.show(display.compares_table(kinds["compare"]))


def cancel(job_id: JobArg) -> None:
    """Cancel a job: a queued job never starts; a running one stops at its next step (KILLED).

    Given a sweep's id, cancel the sweep: no more trials start, and those in flight stop
    (the sweep ends KILLED once they have).

    Examples: `seqq cancel 3f2a...` (the id `seqq submit` printed, or one from `seqq list`),
    `seqq cancel SWEEP_ID`
    """
    from scheduler import jobs
    from scheduler.cli import display
    from shared.settings import get_settings

    display.console.print(jobs.cancel(job_id, get_settings()))
