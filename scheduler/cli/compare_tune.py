"""`seqq compare --tune`: the command's checks, its sweeps here or on the queue, its screen.

The flow itself is `scheduler.compare_tune`; this module only chooses how the sweeps run and
how a person watches them, as `scheduler.cli.compare` does for a comparison's children.
"""

from __future__ import annotations

import contextlib
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from scheduler.cli.options import SpecFlags

if TYPE_CHECKING:
    from rich.console import Console

    from scheduler.compare import TrainChildren
    from scheduler.compare_tune import TunedComparison, TunePlan
    from shared.settings import Settings
    from shared.space import SweepFile

POLL_S = 1.0  # how often the terminal reads a queue sweep's record: a screen's pace


def plan(
    file: Path | None,
    budget: str | None,
    cells: list[str],
    seeds: int,
    flags: SpecFlags,
    queue: str | None,
    priority: str,
) -> TunePlan:
    """Every check of the command line and the `--tune` file, before anything exists."""
    from scheduler import compare_tune, jobs
    from scheduler.cli.options import SPEC_FLAGS
    from shared.errors import SpecError
    from shared.spec import load_spec_file

    if file is None:
        raise SpecError("--budget: only with --tune SWEEP.yaml (each model's sweep time)")
    if budget is None:
        raise SpecError("--tune: give --budget too (each model's total sweep time, e.g. 20m)")
    if flags.spec_file is not None:
        raise SpecError("--spec and --tune: the --tune file is the base spec; give only it")
    overrides = flags.overrides()
    fixed = [
        f"{decls[0]}: {compare_tune.FIXED[dotted]} with --tune"
        for dotted, decls in SPEC_FLAGS
        if dotted in compare_tune.FIXED and dotted != "model.cell" and dotted in overrides
    ]
    if fixed:
        raise SpecError("; ".join(fixed))
    jobs.check_route(queue, priority)
    try:
        raw = load_spec_file(file)
    except SpecError as exc:
        raise SpecError(f"--tune: {exc}") from None
    return compare_tune.plan_tune(raw, overrides, cells, budget, seeds)


def run(
    plan: TunePlan,
    settings: Settings,
    train: TrainChildren,
    local: bool,
    queue: str | None,
    priority: str,
    report: Path | None,
) -> TunedComparison:
    """The sweeps and the final runs, here (`--local`) or on the queue."""
    from scheduler import compare_tune

    def sweep_here(sweeps: dict[str, SweepFile], parent: str) -> dict[str, str]:
        return _sweep_here(plan, sweeps, parent, settings)

    def sweep_on_workers(sweeps: dict[str, SweepFile], parent: str) -> dict[str, str]:
        return _sweep_on_workers(plan, sweeps, parent, settings, queue, priority)

    runner = sweep_here if local else sweep_on_workers
    return compare_tune.compare_tuned(
        plan, settings, runner, train, on_workers=not local, report_dir=report
    )


def _sweep_here(
    plan: TunePlan, sweeps: dict[str, SweepFile], parent: str, settings: Settings
) -> dict[str, str]:
    """One model's sweep after another in this process, a bar per trial; Ctrl-C stops the
    running trial and the sweep (it ends KILLED), and the comparison with it."""
    from scheduler import compare_tune
    from scheduler import sweep as sweep_runs
    from scheduler.cli import display
    from scheduler.cli.sweep import train_trial

    ids: dict[str, str] = {}
    with display.make_progress() as progress:
        for model, sweep in sweeps.items():

            def train(spec: Any, sweep_id: str, name: str, model: str = model) -> None:
                train_trial(spec, sweep_id, name, settings, progress, f"{model} {name}")

            ids[model] = sweep_runs.run_local(
                sweep,
                settings,
                train,
                compare_tune.sweep_tags(parent, model),
                compare_tune.sweep_name(plan, model),
            )
    return ids


def _sweep_on_workers(
    plan: TunePlan,
    sweeps: dict[str, SweepFile],
    parent: str,
    settings: Settings,
    queue: str | None,
    priority: str,
) -> dict[str, str]:
    """Submit every model's sweep to the queue at once and follow them until each has ended;
    Ctrl-C (or an error) cancels those submitted: no more trials, those in flight stop."""
    import typer

    from scheduler import compare_tune, sweep_queue
    from shared import names
    from shared.connection import redis_client

    ids: dict[str, str] = {}
    try:
        for model, sweep in sweeps.items():
            tags = compare_tune.sweep_tags(parent, model)
            name = compare_tune.sweep_name(plan, model)
            ids[model] = sweep_queue.submit(
                sweep, settings, None, queue, priority, None, tags, name
            )
        if not redis_client(settings).exists(names.SCHEDULER_KEY):
            typer.echo(
                "warning: no `seqq scheduler` is running: each sweep's first trials are queued, "
                "and the next ones start once one runs",
                err=True,
            )
        _follow_sweeps(ids, settings)
    except BaseException:
        for sweep_id in ids.values():
            # Best effort: the error that brought us here is the one to show, not this one.
            with contextlib.suppress(Exception):
                sweep_queue.cancel(sweep_id, settings)
        raise
    return ids


def _follow_sweeps(ids: dict[str, str], settings: Settings) -> None:
    """A bar per model's sweep (trials ended of those wanted, the best so far) until each
    sweep's parent run has ended."""
    from scheduler import sweep as sweep_runs
    from scheduler.cli import display
    from shared.state import TERMINAL

    pending = dict(ids)
    with display.make_progress() as progress:
        bars = {m: progress.add_task(f"{m} sweep", total=None, stats="queued") for m in ids}
        while pending:
            for model, sweep_id in list(pending.items()):
                record = sweep_runs.status(sweep_id, settings)
                ended = sum(n for state, n in record["counts"].items() if state != "RUNNING")
                best = record["best"]
                stats = f"best val {best['value']:.3f}" if best else "no trial complete yet"
                if record["status"] in TERMINAL:
                    stats = f"{record['status']}, {stats}"
                    del pending[model]
                progress.update(
                    bars[model], total=record["trials_wanted"], completed=ended, stats=stats
                )
            if pending:
                time.sleep(POLL_S)  # a screen's refresh, not a synchronisation


def show(tuned: TunedComparison, json_out: bool, out: Console | None = None) -> None:
    """The comparison's screen, then the values each sweep chose; or one JSON object."""
    from rich.table import Table

    from scheduler.cli import display
    from scheduler.compare_tune import kept_note

    if json_out:
        display.print_json(tuned.summary())
        return
    display.show(display.comparison_view(tuned.comparison), out)
    plan = tuned.plan
    table = Table(
        title=f"tuned values (default -> chosen): {plan.trials} trials of "
        f"{plan.trial_budget_s:g}s per model",
        title_justify="left",
    )
    table.add_column("")
    for model in plan.models:
        table.add_column(model, justify="right")
    for row in tuned.value_rows():
        table.add_row(*row)
    display.show(table, out)
    console = out or display.console
    for model in plan.models:
        record = tuned.sweeps[model]
        console.print(f"{model} sweep: {record['sweep_id']} {record['status']}", markup=False)
        if model in tuned.kept:
            console.print(kept_note(model), markup=False)
    for label, url in tuned.comparison.urls.items():
        console.print(f"{label.replace('_', ' ')}: {url}", soft_wrap=True, markup=False)
