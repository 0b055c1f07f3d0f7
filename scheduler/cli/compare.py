"""`seqq compare`: LSTM against simple RNN (and GRU), fairly, as one command."""

from __future__ import annotations

import tempfile
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
    runs: Annotated[
        str | None, typer.Option("--runs", help="Compare existing runs (comma-separated ids).")
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
    """Train the same spec once per model and compare loss, speed and samples side by side.

    Everything but the cell is identical (data, seed, sizes, budget). The jobs are children of
    one parent MLflow run that also holds the report (loss vs step and vs wall time, the table,
    a sample grid). It ends with MLflow UI addresses: the children's curves overlaid against
    step and against time, and the report with the samples side by side.

    Examples:

    * `seqq compare --local --models lstm,rnn --time-budget 2m`
    * `seqq compare --models lstm,rnn,gru --data corpus.txt --max-steps 2000 --report out/`
    * `seqq compare --local --models lstm,rnn --data "synthetic:copy?lag=20"`
    * `seqq compare --runs 3f2a...,9b1c...`
    """
    from scheduler import compare as cmp
    from scheduler import jobs, tracking
    from shared import names
    from shared.settings import get_settings
    from shared.synthetic import PREFIX, parse_synthetic

    settings = get_settings()
    if runs:
        ids = [r.strip() for r in runs.split(",") if r.strip()]
        client = tracking.tracking_client(settings)
        for job_id in ids:
            jobs.status(job_id, settings)  # one-line error for an unknown id
        with tempfile.TemporaryDirectory() as tmp:
            results = [cmp.read_result(client, job_id, tmp) for job_id in ids]
        if report:
            from scheduler.report import write_report

            write_report(results, report, "seqq compare: " + " vs ".join(r.model for r in results))
        experiment_id = client.get_run(ids[0]).info.experiment_id
        _print(results, None, tracking.comparison_urls(settings, experiment_id, ids), json_out)
        return

    cells = cmp.parse_models(models)
    spec = flags.build()
    jobs.check_inputs(spec, settings)
    tracking.check_tracking(settings)
    if not local:
        from shared.connection import redis_client

        redis_client(settings)
    levels = None
    if spec.data.dataset.startswith(PREFIX):
        task = parse_synthetic(spec.data.dataset)
        levels = {"chance": task.chance_loss(), "perfect recall": task.perfect_loss()}
    client = tracking.tracking_client(settings)
    parent = cmp.start_parent(client, spec, cells, settings)
    status = "FAILED"
    try:
        specs = cmp.per_model_specs(spec, cells)
        if local:
            job_ids = _train_here(specs, settings, parent)
        else:
            job_ids = _train_on_workers(specs, settings, parent, client, queue, priority)
        with tempfile.TemporaryDirectory() as tmp:
            results = [cmp.read_result(client, job_ids[m], tmp) for m in cells]
            from scheduler.report import write_report

            title = "seqq compare: " + " vs ".join(cells) + f" on {spec.data.dataset}"
            out_dir = report or Path(tmp) / "report"
            for path in write_report(results, out_dir, title, levels):
                client.log_artifact(parent, str(path), names.ARTIFACT_REPORT)
        status = "FINISHED" if all(r.status == "FINISHED" for r in results) else "FAILED"
    except KeyboardInterrupt:
        status = "KILLED"
        raise
    finally:
        client.set_terminated(parent, status)
    experiment_id = client.get_run(parent).info.experiment_id
    urls = tracking.comparison_urls(settings, experiment_id, [r.job_id for r in results], parent)
    _print(results, parent, urls, json_out, levels)
    if status != "FINISHED":
        raise typer.Exit(1)


def _train_here(specs: dict[str, Any], settings: Any, parent: str) -> dict[str, str]:
    from scheduler import compare as cmp
    from scheduler import jobs
    from scheduler.cli import display

    job_ids: dict[str, str] = {}
    with display.make_progress() as progress:
        bars = {
            m: progress.add_task(m, total=s.optim.max_steps, stats="waiting")
            for m, s in specs.items()
        }
        for model, spec in specs.items():
            progress.update(bars[model], stats="preparing data and model")
            with display.ProgressReporter(progress, bars[model]) as reporter:
                outcome, _ = jobs.run_here(
                    spec, settings, reporter, parent, cmp.child_run_name(spec, model)
                )
            job_ids[model] = outcome.job_id
            progress.update(bars[model], stats=outcome.status)
            if reporter.stop_reason():  # Ctrl-C stops the whole comparison, not just this model
                raise KeyboardInterrupt
    return job_ids


def _train_on_workers(
    specs: dict[str, Any],
    settings: Any,
    parent: str,
    client: Any,
    queue: str | None = None,
    priority: str = "normal",
) -> dict[str, str]:
    from scheduler import broker, jobs
    from scheduler import compare as cmp
    from scheduler.cli import display

    job_ids = {
        m: jobs.submit(s, settings, parent, cmp.child_run_name(s, m), queue, priority).job_id
        for m, s in specs.items()
    }
    display.follow(job_ids, broker.celery_app(settings), client)
    return job_ids


def _print(
    results: list[Any],
    parent: str | None,
    urls: dict[str, str] | None,
    json_out: bool,
    levels: dict[str, float] | None = None,
) -> None:
    from rich.columns import Columns
    from rich.panel import Panel
    from rich.table import Table

    from scheduler.cli import display
    from scheduler.report import TABLE_COLUMNS, table_rows

    if json_out:
        display.print_json(
            {
                "parent_run_id": parent,
                "urls": urls,
                "levels": levels,
                "models": {r.model: r.summary() for r in results},
            }
        )
        return
    table = Table(title="seqq compare")
    for column in TABLE_COLUMNS:
        table.add_column(column, justify="left" if column in ("model", "status") else "right")
    for row in table_rows(results):
        table.add_row(*row)
    display.console.print(table)
    if levels:
        display.console.print(
            "reference levels (nats/char): " + ", ".join(f"{k} {v:.3f}" for k, v in levels.items())
        )
    panels = [Panel(r.sample[:400] or "-", title=f"{r.model} sample", expand=True) for r in results]
    display.console.print(Columns(panels, equal=True, expand=True))
    for label, url in (urls or {}).items():
        # soft_wrap: a long address stays one line a terminal can copy, not folded by Rich
        display.console.print(f"{label.replace('_', ' ')}: {url}", soft_wrap=True, markup=False)
