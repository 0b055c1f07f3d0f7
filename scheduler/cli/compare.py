"""`seqq compare`: LSTM against simple RNN (and GRU), fairly, as one command."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from scheduler.cli.options import PriorityOpt, QueueOpt, SpecFlags, spec_options


def register(app: typer.Typer) -> None:
    app.command("compare")(compare)


@spec_options
def compare(
    models: Annotated[
        str, typer.Option("--models", help="Comma-separated cells to train: lstm, rnn, gru.")
    ] = "lstm,rnn",
    seeds: Annotated[
        str,
        typer.Option(
            "--seeds",
            metavar="N",
            help="Train every model with the same N seeds (--seed and the next N-1); the table "
            "shows each figure's mean ± standard deviation, the report each model's mean curve "
            "with its min-max band.",
        ),
    ] = "1",
    runs: Annotated[
        str | None, typer.Option("--runs", help="Compare existing runs (comma-separated ids).")
    ] = None,
    tune: Annotated[
        Path | None,
        typer.Option(
            "--tune",
            metavar="SWEEP.yaml",
            help="Tune each model first: one sweep per model over this sweep file's space (its "
            "spec groups are the base spec), then each model's default and tuned spec over the "
            "seeds. Needs --budget.",
        ),
    ] = None,
    budget: Annotated[
        str | None,
        typer.Option(
            "--budget",
            metavar="DURATION",
            help="With --tune: each model's total sweep training time ('20m', '1h'); every "
            "trial and every final run trains budget / trials.",
        ),
    ] = None,
    local: Annotated[
        bool, typer.Option("--local", help="Train here, one after another, with no broker.")
    ] = False,
    report: Annotated[
        Path | None, typer.Option("--report", help="Also write the Markdown report and plots here.")
    ] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
    queue: QueueOpt = None,
    priority: PriorityOpt = "normal",
    *,
    flags: SpecFlags,
) -> None:
    """Train the same spec once per model (and seed) and compare loss, speed and samples.

    Everything but the cell is identical (data, seeds, sizes, budget). The jobs are children of
    one parent MLflow run that also holds the report (loss vs step and vs wall time, the table,
    a sample grid); select the children in the MLflow UI to overlay their curves.

    Examples:

    * `seqq compare --local --models lstm,rnn --time-budget 2m`
    * `seqq compare --local --models lstm,rnn --seeds 3 --time-budget 1m --json`
    * `seqq compare --models lstm,rnn,gru --data corpus.txt --max-steps 2000 --report out/`
    * `seqq compare --local --models lstm,rnn --data "synthetic:copy?lag=20"`
    * `seqq compare --runs 3f2a...,9b1c...`
    * `seqq compare --models lstm,rnn --tune space.yaml --budget 1h --seeds 3`

    With `--tune`, each model is tuned at equal compute first: a sweep per model over the
    file's space, each with `--budget` of training time in all (`budget / trials` per trial),
    nested under the comparison's parent run; then every model's default spec and its best
    trial's spec train over the seeds for that same time per run.
    """
    from functools import partial

    from scheduler import compare as cmp
    from shared.errors import SpecError
    from shared.settings import get_settings

    settings = get_settings()
    count = cmp.parse_seeds(seeds)
    if runs and (tune is not None or budget is not None):
        raise SpecError("--tune/--budget train new runs; they cannot be given with --runs")
    if runs:
        if count != 1:
            raise SpecError("--seeds trains new runs; it cannot be given with --runs")
        ids = [r.strip() for r in runs.split(",") if r.strip()]
        _print(cmp.compare_runs(ids, settings, report), json_out)
        return
    cells = cmp.parse_models(models)
    if not local:
        from scheduler import jobs

        jobs.check_route(queue, priority)  # before the parent run exists
    train = (
        partial(_train_here, settings=settings)
        if local
        else partial(_train_on_workers, settings=settings, queue=queue, priority=priority)
    )
    if tune is not None or budget is not None:
        from scheduler.cli import compare_tune

        plan = compare_tune.plan(tune, budget, cells, count, flags, queue, priority)
        tuned = compare_tune.run(plan, settings, train, local, queue, priority, report)
        compare_tune.show(tuned, json_out)
        if not tuned.finished:
            raise typer.Exit(1)
        return
    comparison = cmp.compare_models(
        flags.build(), cells, settings, train, on_workers=not local, seeds=count, report_dir=report
    )
    _print(comparison, json_out)
    if not comparison.finished:
        raise typer.Exit(1)


def _train_here(specs: dict[str, Any], parent: str, settings: Any) -> dict[str, str]:
    """One child after another in this process, each with its own bar; Ctrl-C stops them all."""
    from scheduler import compare as cmp
    from scheduler import jobs
    from scheduler.cli import display

    job_ids: dict[str, str] = {}
    with display.make_progress() as progress:
        bars = {
            label: progress.add_task(label, total=s.optim.max_steps, stats="waiting")
            for label, s in specs.items()
        }
        for label, spec in specs.items():
            progress.update(bars[label], stats="preparing data and model")
            with display.ProgressReporter(progress, bars[label]) as reporter:
                outcome, _ = jobs.run_here(
                    spec, settings, reporter, parent, cmp.child_run_name(spec, label)
                )
            job_ids[label] = outcome.job_id
            progress.update(bars[label], stats=outcome.status)
            if reporter.stop_reason():  # Ctrl-C stops the whole comparison, not just this model
                raise KeyboardInterrupt
    return job_ids


def _train_on_workers(
    specs: dict[str, Any], parent: str, settings: Any, queue: str | None, priority: str
) -> dict[str, str]:
    """Submit every child at once and follow the jobs' bars until each has ended; Ctrl-C
    cancels those submitted (a queued one ends KILLED at once, a running one at its next step)."""
    from scheduler import broker, jobs, tracking
    from scheduler import compare as cmp
    from scheduler.cli import display

    job_ids: dict[str, str] = {}
    try:
        for label, s in specs.items():
            name = cmp.child_run_name(s, label)
            job_ids[label] = jobs.submit(s, settings, parent, name, queue, priority).job_id
        display.follow(job_ids, broker.celery_app(settings), tracking.tracking_client(settings))
    except KeyboardInterrupt:
        for job_id in job_ids.values():
            jobs.cancel(job_id, settings)
        raise
    return job_ids


def _print(comparison: Any, json_out: bool) -> None:
    from scheduler.cli import display

    if json_out:
        display.print_json(comparison.summary())
    else:
        display.show_comparison(comparison)
