"""Where a sweep's Optuna study lives and how it is opened: the one place both sides ask.

A study is an Optuna journal, an append-only log that any process replays: a file under
`$SEQQ_HOME/sweeps/<sweep id>.journal` for `seqq sweep --local` (no service at all), or a log
on the broker's Redis for sweeps whose trials run on workers (every worker reaches it, and it
outlives any one process). A trial's reference (`shared.spec.TrialRef`) names the kind only;
the location is read from the settings of the process that opens it, never from a terminal.

The study keeps its own sweep file (base spec, space, settings) as a user attribute, so every
process that opens it by name - the driver, a worker reporting a trial, `seqq sweep status` -
builds the same sampler and pruner from the study's record, and no second copy can drift.
Optuna is imported inside the functions, as in `shared.space`.
"""

from __future__ import annotations

import hashlib
import math
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from shared import names
from shared.errors import SweepNotFoundError
from shared.settings import Settings
from shared.space import Choice, SweepFile, base_values, grid, parse_sweep
from shared.spec import StudyStorage
from shared.state import TrialState

if TYPE_CHECKING:
    from optuna import Study
    from optuna.pruners import BasePruner
    from optuna.samplers import BaseSampler
    from optuna.storages import BaseStorage
    from optuna.trial import FrozenTrial


class OpenStudy(NamedTuple):
    """A sweep's study with the storage it was opened on and the sweep file it records."""

    study: Study
    storage: BaseStorage
    sweep: SweepFile


def journal_path(sweep_id: str, settings: Settings) -> Path:
    """The file that holds a local sweep's study."""
    return settings.sweep_dir / f"{sweep_id}.journal"


def _storage(kind: StudyStorage, sweep_id: str, settings: Settings, create: bool) -> BaseStorage:
    """The journal storage of one sweep (one journal per sweep, so a replay reads only it)."""
    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend, JournalRedisBackend

    optuna.logging.set_verbosity(optuna.logging.WARNING)  # seqq prints its own lines
    if kind == "redis":
        prefix = names.sweep_journal_prefix(sweep_id)
        with warnings.catch_warnings():  # "experimental" since Optuna 3.1; pyproject caps it <6
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return JournalStorage(JournalRedisBackend(settings.broker_url, prefix=prefix))
    path = journal_path(sweep_id, settings)
    if not create and not path.exists():  # the backend would create an empty journal
        raise SweepNotFoundError(f"sweep {sweep_id}: no study journal at {path}")
    path.parent.mkdir(parents=True, exist_ok=True)
    return JournalStorage(JournalFileBackend(str(path)))


def sampler(sweep: SweepFile, asked: int = 0) -> BaseSampler:
    """Optuna's sampler for the sweep's settings, seeded by `sweep.seed` plus the trials the
    study has already asked.

    A sampler's random state lives in its process. A queue sweep asks each trial from a study
    opened afresh (by whichever process advances it), so one fixed seed would draw the same
    "random" values every time; seeding by the count keeps draws distinct and reproducible.
    """
    from optuna.samplers import GridSampler, RandomSampler, TPESampler

    settings = sweep.sweep
    seed = None if settings.seed is None else _mix(settings.seed, asked)
    if settings.sampler == "grid":
        return GridSampler(grid(sweep.space), seed=seed)
    if settings.sampler == "random":
        return RandomSampler(seed=seed)
    return TPESampler(seed=seed)


def _mix(seed: int, asked: int) -> int:
    """A 32-bit seed for the sampler of `seed`'s sweep after `asked` trials: not `seed + asked`,
    which would make the sweep of seed 1 draw the sweep of seed 0 shifted by one trial."""
    digest = hashlib.sha256(f"seqq-sweep:{seed}:{asked}".encode()).digest()
    return int.from_bytes(digest[:4], "big")


def first_evaluation(sweep: SweepFile) -> int:
    """The first step at which any trial evaluates (the smallest eval_every it can draw)."""
    searched = sweep.space.get("run.eval_every")
    if searched is None:
        return sweep.base.run.eval_every
    return int(min(float(v) for v in searched.edges() if v is not None))


def time_rungs(sweep: SweepFile) -> float | None:
    """ASHA's first rung in seconds of training, where its rungs are in seconds: as the sweep
    file gives it ('30s'), or, none given, budget / factor^2 when every trial trains the base's
    time budget (`optim.time_budget` set and not searched). None: rungs in steps."""
    asha = sweep.sweep.asha
    if sweep.sweep.pruner != "asha" or isinstance(asha.first_rung, int):
        return None
    if asha.first_rung_s is not None:
        return asha.first_rung_s
    budget = sweep.base.optim.time_budget
    if budget is None or "optim.time_budget" in sweep.space:
        return None
    return budget / asha.factor**2


def pruner(sweep: SweepFile) -> BasePruner:
    """Optuna's pruner for the sweep's settings.

    Time-budgeted trials are ranked at equal training time (`shared.rungs`): rungs at
    budget / 25 and budget / 5 at the default factor, none judged before the warm-up ends.
    Otherwise ASHA's rungs are in steps, and its first defaults to the first evaluation,
    given explicitly: Optuna's "auto"
    estimates it from the first finished trial, in each process separately, and prunes nothing
    before one. Its reduction factor defaults to 5, not Optuna's 4: replayed over the recorded
    curves of 32-trial sweeps, factor 4 stopped a trial that would have won in a few percent of
    trial orders, factor 5 in none, at about the same share of training
    (`tests/bench/sweep.py`, docs/PERFORMANCE.md).
    """
    from optuna.pruners import MedianPruner, NopPruner, SuccessiveHalvingPruner

    kind, asha = sweep.sweep.pruner, sweep.sweep.asha
    first_s = time_rungs(sweep)
    if first_s is not None:
        from shared.rungs import TimeRungPruner

        return TimeRungPruner(first_s, asha.factor, sweep.base.optim.warmup_steps)
    if kind == "asha":
        steps = asha.first_rung if isinstance(asha.first_rung, int) else None
        return SuccessiveHalvingPruner(
            min_resource=steps or first_evaluation(sweep), reduction_factor=asha.factor
        )
    if kind == "median":
        return MedianPruner()
    return NopPruner()


def trial_count(sweep: SweepFile) -> int:
    """How many trials the sweep runs: its `trials`, capped at the grid's size for a grid."""
    if sweep.sweep.sampler != "grid":
        return sweep.sweep.trials
    return min(sweep.sweep.trials, math.prod(len(values) for values in grid(sweep.space).values()))


def sweep_record(sweep: SweepFile) -> dict[str, Any]:
    """The sweep file as JSON, in the file's own syntax (so `parse_sweep` reads it back)."""
    space = {
        dotted: list(dimension.values)
        if isinstance(dimension, Choice)
        else dimension.model_dump(mode="json", by_alias=True, exclude_none=True)
        for dotted, dimension in sweep.space.items()
    }
    return {
        **sweep.base.model_dump(mode="json"),
        "space": space,
        "sweep": sweep.sweep.model_dump(mode="json"),
    }


def create_study(
    sweep: SweepFile, sweep_id: str, kind: StudyStorage, settings: Settings
) -> OpenStudy:
    """A new study named by the sweep id, minimising the validation loss, its file recorded."""
    import optuna

    storage = _storage(kind, sweep_id, settings, create=True)
    study = optuna.create_study(
        storage=storage,
        study_name=sweep_id,
        direction="minimize",
        sampler=sampler(sweep),
        pruner=pruner(sweep),
    )
    study.set_user_attr(names.STUDY_ATTR_SWEEP, sweep_record(sweep))
    base = base_values(sweep) if sweep.sweep.try_base and sweep.sweep.sampler != "grid" else None
    if base is not None:  # the first `ask` takes it, in whichever process asks first
        study.enqueue_trial(base, user_attrs={names.TRIAL_ATTR_BASE: True})
    return OpenStudy(study, storage, sweep)


def open_study(sweep_id: str, kind: StudyStorage, settings: Settings) -> OpenStudy:
    """An existing sweep's study, with the sampler and pruner its own record describes."""
    import optuna

    storage = _storage(kind, sweep_id, settings, create=False)
    try:
        study_id = storage.get_study_id_from_name(sweep_id)
    except KeyError:
        raise SweepNotFoundError(f"sweep {sweep_id}: no such study in its storage") from None
    sweep = parse_sweep(storage.get_study_user_attrs(study_id)[names.STUDY_ATTR_SWEEP])
    asked = len(storage.get_all_trials(study_id, deepcopy=False))
    study = optuna.load_study(
        study_name=sweep_id, storage=storage, sampler=sampler(sweep, asked), pruner=pruner(sweep)
    )
    return OpenStudy(study, storage, sweep)


def trial_id(opened: OpenStudy, number: int) -> int:
    """The storage's id of the study's trial `number` (KeyError when it has none)."""
    storage = opened.storage
    return storage.get_trial_id_from_study_id_trial_number(
        storage.get_study_id_from_name(opened.study.study_name), number
    )


def trial_state(trial: FrozenTrial) -> TrialState:
    """seqq's name for an Optuna trial's state (WAITING, the base trial of `try_base` before
    the first `ask` takes it, reads RUNNING)."""
    name = trial.state.name
    if name == "FAIL":
        return TrialState.FAILED
    return TrialState(name) if name in ("COMPLETE", "PRUNED") else TrialState.RUNNING


def tell(study: Study, number: int, state: TrialState, value: float | None = None) -> None:
    """End a trial in the study (COMPLETE with its value, PRUNED or FAILED); a trial already
    ended stays as it is, so the worker and the driver may both tell it."""
    from optuna.samplers import GridSampler
    from optuna.trial import TrialState as OptunaState

    ended = {
        TrialState.COMPLETE: OptunaState.COMPLETE,
        TrialState.PRUNED: OptunaState.PRUNED,
        TrialState.FAILED: OptunaState.FAIL,
    }
    try:
        study.tell(
            number,
            value if state == TrialState.COMPLETE else None,
            state=ended[state],
            skip_if_finished=True,
        )
    except RuntimeError:
        # GridSampler calls study.stop() once the grid is used up, which raises outside
        # study.optimize; Optuna has stored the trial's state by then (in a `finally`).
        if not isinstance(study.sampler, GridSampler):
            raise
