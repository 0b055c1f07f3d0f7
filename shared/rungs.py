"""ASHA with its rungs in seconds of training: the pruner of sweeps whose trials are timed.

A sweep whose trials each train for a time budget asks which spec is best after that much
training time, so its trials are compared at equal time, not at equal steps: at step 50 a small
model has spent a fraction of a big one's time, and a step-rung ASHA ranks them as if they had
spent the same. The worker records each trial's training seconds (`names.TRIAL_ATTR_ELAPSED`)
before it asks whether to prune; a trial reaches rung k once it has trained
`first_s * factor**k` seconds and is judged there by its latest validation loss, as Optuna's
successive halving is. Where Optuna's lets on only the leader while fewer than `factor` trials
have reached a rung, which in a sweep of a few trials prunes almost every trial at its first
rung, this one lets on the first `factor - 1` trials to reach it: they are the sample the rest
are ranked against. No rung is judged before the warm-up ends (every learning rate still
climbing is no ranking of learning rates); a rung crossed during it is judged at the first
evaluation after.

Optuna is imported at the top: `shared.study.pruner` imports this module only when it builds
this pruner.
"""

from __future__ import annotations

import math

import optuna
from optuna.pruners import BasePruner
from optuna.trial import FrozenTrial

from shared import names


def rung_key(rung: int) -> str:
    """The trial system attribute that holds a trial's value at a time rung."""
    return f"seqq:time_rung_{rung}"


def promotable(value: float, reached: list[float], factor: int) -> bool:
    """Whether a trial with `value` at a rung goes on, `reached` holding the values of every
    trial at that rung (its own among them): yes while fewer than `factor` have reached it,
    then only within the best len(reached) // factor of them."""
    if len(reached) < factor:
        return True
    return value <= sorted(reached)[len(reached) // factor - 1]


class TimeRungPruner(BasePruner):
    """Successive halving over seconds of training (see the module's docstring)."""

    def __init__(self, first_s: float, factor: int, warmup_steps: int = 0):
        self.first_s = first_s
        self.factor = factor
        self.warmup_steps = warmup_steps

    def rung_seconds(self, rung: int) -> float:
        return self.first_s * self.factor**rung

    def prune(self, study: optuna.Study, trial: FrozenTrial) -> bool:
        step = trial.last_step
        elapsed = trial.user_attrs.get(names.TRIAL_ATTR_ELAPSED)
        if step is None or elapsed is None or step < self.warmup_steps:
            return False
        value = trial.intermediate_values[step]
        rung = 0
        while rung_key(rung) in trial.system_attrs:  # rungs already passed
            rung += 1
        others: list[FrozenTrial] | None = None
        while elapsed >= self.rung_seconds(rung):
            if not math.isfinite(value):
                return True
            key = rung_key(rung)
            # As Optuna's own pruners record a trial's value at a rung (no public setter).
            study._storage.set_trial_system_attr(trial._trial_id, key, value)
            others = others if others is not None else study.get_trials(deepcopy=False)
            reached = [
                t.system_attrs[key]
                for t in others
                if key in t.system_attrs and t.number != trial.number
            ]
            if not promotable(value, [*reached, value], self.factor):
                return True
            rung += 1
        return False
