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
    register_as: Annotated[
        str | None,
        typer.Option(
            "--register",
            help="Register the best trial's final checkpoint in MLflow's Model Registry under "
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

    A bad file is refused in one line naming the field (exit 2), and nothing is created.
    `--local` trains the trials here (the study is a journal file under SEQQ_HOME, no service);
    sweeps on the queue come next.

    Examples:

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
    overrides = {"trials": trials, "sampler": sampler, "pruner": pruner}
    plan = sweeps.load(file, overrides)  # every problem in one line, before anything exists
    if not local:
        raise SpecError(
            "--local: sweeps whose trials run on workers are not built yet; "
            "add --local to train the trials here"
        )
    settings = get_settings()
    with display.make_progress() as progress:
        sweep_id = sweeps.run_local(
            plan,
            settings,
            lambda spec, parent, name: _train(spec, parent, name, settings, progress),
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


def _train(spec: TrainSpec, parent: str, name: str, settings: Settings, progress: Progress) -> None:
    """One trial here, with its own bar; Ctrl-C stops it (checkpoint kept) and the sweep."""
    from scheduler import jobs
    from scheduler.cli import display

    bar = progress.add_task(name, total=spec.optim.max_steps, stats="preparing data and model")
    with display.ProgressReporter(progress, bar) as reporter:
        outcome, _ = jobs.run_here(spec, settings, reporter, parent, name)
    ended = outcome.trial_state or outcome.status
    progress.update(bar, stats=f"{ended} at step {outcome.step}" if outcome.step else ended)
    if reporter.stop_reason():  # Ctrl-C stops the whole sweep, not just this trial
        raise KeyboardInterrupt


@app.command("status")
def status(
    sweep_id: Annotated[str, typer.Argument(help="The sweep id (its parent run's id).")],
    json_out: JsonOpt = False,
) -> None:
    """Show a sweep's trials (state, sampled values, best validation loss, steps, where
    pruned) and the best so far, read from its study and its runs.

    Example: `seqq sweep status 3f2a... --json`
    """
    from scheduler import sweep as sweeps
    from shared.settings import get_settings

    _print(sweeps.status(sweep_id, get_settings()), json_out)


def _print(record: dict[str, Any], json_out: bool) -> None:
    from scheduler.cli import display

    if json_out:
        display.print_json(record)
    else:
        display.show_sweep(record)
