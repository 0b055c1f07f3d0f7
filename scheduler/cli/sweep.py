"""`seqq sweep`: search a spec space with Optuna, every trial a child MLflow run, with pruning."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from shared.space import SweepSettings

if TYPE_CHECKING:
    from rich.progress import Progress

    from shared.settings import Settings
    from shared.spec import TrainSpec

app = typer.Typer(rich_markup_mode="markdown")
JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON object instead of a table.")]


def _setting(name: str) -> str:
    """A flag's help: the sweep file's own field description (one source for both)."""
    return f"{SweepSettings.model_fields[name].description}  (sweep file: sweep.{name})"


def register(parent: typer.Typer) -> None:
    parent.add_typer(app, name="sweep")


@app.callback(invoke_without_command=True)
def sweep(
    ctx: typer.Context,
    file: Annotated[
        Path | None,
        typer.Option(
            "--file", "-f", help="The sweep file: a spec file plus `space:` and `sweep:`."
        ),
    ] = None,
    local: Annotated[
        bool, typer.Option("--local", help="Train the trials here, one after another, no broker.")
    ] = False,
    trials: Annotated[int | None, typer.Option("--trials", help=_setting("trials"))] = None,
    sampler: Annotated[str | None, typer.Option("--sampler", help=_setting("sampler"))] = None,
    pruner: Annotated[str | None, typer.Option("--pruner", help=_setting("pruner"))] = None,
    parallel: Annotated[int | None, typer.Option("--parallel", help=_setting("parallel"))] = None,
    queue: Annotated[
        str | None,
        typer.Option("--queue", help="Send the trials to this queue (default: by device)."),
    ] = None,
    priority: Annotated[
        str,
        typer.Option("--priority", help="The trials' priority on the queue: high, normal or low."),
    ] = "normal",
    wait: Annotated[
        bool,
        typer.Option(
            "--wait", help="Follow the sweep's table until it ends (Ctrl-C stops watching only)."
        ),
    ] = False,
    register_as: Annotated[
        str | None,
        typer.Option(
            "--register",
            help="Register the best trial's best checkpoint in MLflow's Model Registry under "
            "this name (a new version each sweep); `seqq sample models:/NAME/VERSION` uses it.",
        ),
    ] = None,
    json_out: JsonOpt = False,
) -> None:
    """Search the spec space of a sweep file: Optuna samples each trial's spec and prunes the
    trials that fall behind at an evaluation; every trial is a child run of the sweep's parent
    MLflow run, whose id is the sweep id.

    A sweep file is a spec file plus a `space` over dotted spec fields and `sweep` settings:

    ```
    model: {cell: lstm}
    optim: {max_steps: 3000}
    space:
      optim.lr: {log: [1.0e-4, 1.0e-2]}
      model.hidden_size: [128, 256, 512]
      model.dropout: {range: [0.0, 0.5]}
    sweep: {trials: 32, sampler: tpe, pruner: asha, seed: 0}
    ```

    ASHA's rungs are in steps from the first evaluation, with a reduction factor of 5; when
    every trial trains a time budget (`optim.time_budget`) they are in seconds of training, at
    budget/25 and budget/5, so trials are ranked at equal time. Set them with
    `sweep: {asha: {first_rung: 100, factor: 4}}` (steps) or `first_rung: 30s` (seconds).
    A bad file is refused in one line naming the field (exit 2), and nothing is created.

    Without `--local` the trials are ordinary jobs on the queue, `--parallel` at a time (default:
    the live workers' slots on that queue); the study lives on the broker's Redis and
    `seqq scheduler` starts each next trial, so closing this terminal changes nothing. Follow it
    with `--wait` or `seqq sweep status SWEEP --wait`; stop it with `seqq cancel SWEEP`.
    `--local` trains the trials here, one after another (the study is a journal file under
    SEQQ_HOME, no service at all).

    Examples:

    * `seqq sweep -f sweep.yaml --parallel 2 --wait`
    * `seqq sweep -f sweep.yaml --local`
    * `seqq sweep -f sweep.yaml --local --trials 8 --sampler random --pruner median --json`
    * `seqq sweep -f sweep.yaml --local --register shakespeare-lstm`
    * `seqq sweep status 3f2a...`
    """
    if ctx.invoked_subcommand is not None:
        return
    if file is None:
        typer.echo(ctx.get_help())
        raise typer.Exit(0)
    from scheduler import registry, tracking
    from scheduler import sweep as sweeps
    from scheduler.cli import display
    from shared.errors import SpecError
    from shared.settings import get_settings

    if register_as is not None:
        registry.check_name(register_as)  # refused before anything exists
    overrides = {"trials": trials, "sampler": sampler, "pruner": pruner, "parallel": parallel}
    plan = sweeps.load(file, overrides)  # every problem in one line, before anything exists
    settings = get_settings()
    if not local:
        _submit(plan, settings, queue, priority, register_as, wait, json_out)
        return
    if queue is not None or priority != "normal":
        raise SpecError("--queue/--priority: a --local sweep trains here, on no queue")
    with display.make_progress() as progress:
        sweep_id = sweeps.run_local(
            plan,
            settings,
            lambda spec, parent, name: train_trial(spec, parent, name, settings, progress),
        )
    record = sweeps.status(sweep_id, settings)
    if register_as is not None:
        client = tracking.tracking_client(settings)
        record["registered"] = registry.register_best(client, register_as, sweep_id, record["best"])
        if record["registered"] is None:
            typer.echo(f"no trial completed: nothing registered as {register_as}", err=True)
    _print(record, json_out)
    if not json_out and record.get("registered"):
        found = record["registered"]
        typer.echo(f"registered {found['name']} version {found['version']}: {found['uri']}")
    if record["status"] != "FINISHED":
        raise typer.Exit(1)


def _submit(
    plan: Any,
    settings: Settings,
    queue: str | None,
    priority: str,
    register_as: str | None,
    wait: bool,
    json_out: bool,
) -> None:
    """A sweep on the queue: created, its first trials sent; then followed with `--wait`."""
    from scheduler import sweep as sweeps
    from scheduler import sweep_queue
    from scheduler.cli import display
    from shared import names
    from shared.connection import redis_client

    sweep_id = sweep_queue.submit(plan, settings, None, queue, priority, register_as)
    if not redis_client(settings).exists(names.SCHEDULER_KEY):
        typer.echo(
            "warning: no `seqq scheduler` is running: the first trials are queued, and the "
            "next ones start once one runs",
            err=True,
        )
    if not wait:
        record = sweeps.status(sweep_id, settings)
        if json_out:
            display.print_json(record)
            return
        dispatch = record["dispatch"]
        typer.echo(
            f"sweep {sweep_id}: {record['trials_wanted']} trials on queue {dispatch['queue']}, "
            f"{dispatch['parallel']} at a time"
        )
        typer.echo(f"follow it: seqq sweep status {sweep_id} --wait")
        typer.echo(f"stop it:   seqq cancel {sweep_id}")
        return
    record = _follow(sweep_id, settings, json_out)
    if record["status"] != "FINISHED":
        raise typer.Exit(1)


def _follow(sweep_id: str, settings: Settings, json_out: bool) -> dict[str, Any]:
    """Watch a sweep until it ends: a live table, or (with --json) the final record only."""
    import time

    from scheduler import sweep as sweeps
    from scheduler.cli import display
    from shared.state import TERMINAL

    try:
        if json_out:
            record = sweeps.status(sweep_id, settings)
            while record["status"] not in TERMINAL:
                time.sleep(2.0)  # polling the record's end, at a screen's pace
                record = sweeps.status(sweep_id, settings)
            display.print_json(record)
            return record
        return display.follow_sweep(lambda: sweeps.status(sweep_id, settings))
    except KeyboardInterrupt:
        typer.echo(
            f"\nstopped watching; the sweep goes on (seqq sweep status {sweep_id} --wait)",
            err=True,
        )
        raise typer.Exit(130) from None


def train_trial(
    spec: TrainSpec,
    parent: str,
    name: str,
    settings: Settings,
    progress: Progress,
    label: str | None = None,
) -> None:
    """One trial here, with its own bar (`label`, else its run name); Ctrl-C stops it
    (checkpoint kept) and the sweep."""
    from scheduler import jobs
    from scheduler.cli import display

    bar = progress.add_task(
        label or name, total=spec.optim.max_steps, stats="preparing data and model"
    )
    with display.ProgressReporter(progress, bar) as reporter:
        outcome, _ = jobs.run_here(spec, settings, reporter, parent, name)
    ended = outcome.trial_state or outcome.status
    progress.update(bar, stats=f"{ended} at step {outcome.step}" if outcome.step else ended)
    if reporter.stop_reason():  # Ctrl-C stops the whole sweep, not just this trial
        raise KeyboardInterrupt


@app.command("status")
def status(
    sweep_id: Annotated[str, typer.Argument(help="The sweep id (its parent run's id).")],
    wait: Annotated[
        bool, typer.Option("--wait", help="Redraw the table until the sweep ends.")
    ] = False,
    json_out: JsonOpt = False,
) -> None:
    """Show a sweep's trials (state, sampled values, best validation loss, steps, where
    pruned) and the best so far, read from its study and its runs.

    Examples: `seqq sweep status 3f2a... --json`, `seqq sweep status 3f2a... --wait`
    """
    from scheduler import sweep as sweeps
    from shared.settings import get_settings

    settings = get_settings()
    if wait:
        _follow(sweep_id, settings, json_out)
        return
    _print(sweeps.status(sweep_id, settings), json_out)


def _print(record: dict[str, Any], json_out: bool) -> None:
    from scheduler.cli import display

    if json_out:
        display.print_json(record)
    else:
        display.show_sweep(record)


@app.command("dashboard")
def dashboard(
    sweep_id: Annotated[str, typer.Argument(help="The sweep id (its parent run's id).")],
    host: Annotated[
        str,
        typer.Option("--host", help="Address to serve on; 127.0.0.1 keeps it on this machine."),
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=1, max=65535, help="Port.")] = 8080,
) -> None:
    """Serve Optuna's web dashboard over a sweep's study (live while it runs): optimisation
    history, intermediate values, parameter importances, the trials' table.

    It reads the same study the sweep's workers write, on the broker's Redis (or the journal
    file of a `--local` sweep). It has no login: keep it on 127.0.0.1 (the default) and reach it
    through an SSH tunnel from elsewhere. Needs the `dashboard` extra (`pip install
    'seqq[dashboard]'`, in the images already).

    Example: `seqq sweep dashboard 3f2a...` then open http://127.0.0.1:8080
    """
    from scheduler import sweep as sweeps
    from shared.errors import SeqqError
    from shared.settings import get_settings

    try:
        import optuna_dashboard
    except ImportError:
        raise SeqqError(
            "seqq sweep dashboard needs optuna-dashboard: pip install 'seqq[dashboard]'"
        ) from None
    opened = sweeps.open_sweep(sweep_id, get_settings())
    typer.echo(f"sweep {sweep_id}: dashboard on http://{host}:{port} (Ctrl-C stops it)", err=True)
    optuna_dashboard.run_server(opened.storage, host=host, port=port)
