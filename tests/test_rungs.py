"""Tests for shared/rungs.py and its choice in shared/study.py: ASHA with rungs in seconds of
training, judged on a real (in-memory) Optuna study as a worker's trial asks it."""

from __future__ import annotations

from typing import Any

import optuna
import pytest

from shared import names
from shared.errors import SpecError
from shared.rungs import TimeRungPruner, promotable, rung_key
from shared.space import SweepFile, parse_sweep
from shared.study import pruner, time_rungs


def _sweep(
    optim: dict[str, Any] | None = None, space: dict[str, Any] | None = None, **sweep: Any
) -> SweepFile:
    return parse_sweep(
        {
            "optim": optim or {"time_budget": "100s"},
            "space": space or {"optim.lr": {"log": [1e-4, 1e-2]}},
            "sweep": {"pruner": "asha", **sweep},
        }
    )


class Trial:
    """One trial of a study driven as a worker drives it: report, record the seconds, ask."""

    def __init__(self, study: optuna.Study):
        self.trial = study.ask()

    def at(self, step: int, elapsed: float, value: float) -> bool:
        self.trial.report(value, step)
        self.trial.set_user_attr(names.TRIAL_ATTR_ELAPSED, elapsed)
        return self.trial.should_prune()


def _study(first_s: float = 10.0, factor: int = 2, warmup_steps: int = 0) -> optuna.Study:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna.create_study(pruner=TimeRungPruner(first_s, factor, warmup_steps))


def test_a_trial_goes_on_while_fewer_than_factor_trials_reached_the_rung_then_only_the_best():
    assert promotable(3.0, [1.0, 3.0], factor=3)  # two of three: too few to rank
    assert not promotable(3.0, [1.0, 2.0, 3.0], factor=3)  # the best third is one trial
    assert promotable(1.0, [1.0, 2.0, 3.0], factor=3)
    assert promotable(2.0, [1.0, 2.0, 3.0, 4.0, 5.0, 6.0], factor=3)  # best third: two
    assert not promotable(3.0, [1.0, 2.0, 3.0, 4.0, 5.0, 6.0], factor=3)


def test_trials_are_ranked_at_equal_training_time_not_at_equal_steps():
    study = _study(first_s=10.0, factor=2)
    fast = Trial(study)
    assert not fast.at(step=100, elapsed=10.5, value=2.0)  # the first at the rung goes on
    slow = Trial(study)
    # At step 100 the slow trial would lead (1.9 < 2.0); it gets there after 50 s, and at the
    # rung, 10 s in, it is behind.
    assert not slow.at(step=20, elapsed=5.0, value=2.6)  # before the first rung
    assert slow.at(step=40, elapsed=10.2, value=2.4)
    assert slow.trial.study.get_trials()[1].system_attrs[rung_key(0)] == 2.4


def test_a_trial_climbs_every_rung_it_leads_and_is_judged_once_at_each():
    study = _study(first_s=10.0, factor=2)
    Trial(study).at(step=10, elapsed=12.0, value=2.0)
    best = Trial(study)
    assert not best.at(step=10, elapsed=11.0, value=1.5)  # rung 0 (10 s): leads two
    assert not best.at(step=20, elapsed=15.0, value=1.2)  # no rung between 10 s and 20 s
    assert not best.at(step=40, elapsed=41.0, value=1.0)  # rungs 1 (20 s) and 2 (40 s) at once
    attrs = best.trial.study.get_trials()[1].system_attrs
    assert [attrs.get(rung_key(r)) for r in range(4)] == [1.5, 1.0, 1.0, None]


def test_no_rung_is_judged_before_the_warm_up_ends():
    study = _study(first_s=10.0, factor=2, warmup_steps=50)
    Trial(study).at(step=50, elapsed=11.0, value=2.0)
    late = Trial(study)
    assert not late.at(step=40, elapsed=12.0, value=3.0)  # still warming up: no ranking
    assert late.at(step=60, elapsed=14.0, value=2.5)  # judged at its first evaluation after


def test_a_diverged_trial_is_pruned_at_its_first_rung():
    study = _study()
    assert Trial(study).at(step=10, elapsed=11.0, value=float("nan"))


def test_time_budgeted_trials_get_rungs_at_budget_over_factor_squared_and_steps_otherwise():
    assert time_rungs(_sweep()) == pytest.approx(100 / 25)
    assert time_rungs(_sweep(asha={"factor": 3})) == pytest.approx(100 / 9)
    assert time_rungs(_sweep(asha={"first_rung": "30s"})) == 30.0
    assert time_rungs(_sweep(optim={"max_steps": 500}, asha={"first_rung": "1m"})) == 60.0
    assert isinstance(pruner(_sweep()), TimeRungPruner)
    # Steps: a first rung in steps, no time budget, a searched budget, another pruner.
    steps = [
        _sweep(asha={"first_rung": 100}),
        _sweep(optim={"max_steps": 500}),
        _sweep(space={"optim.time_budget": [60, 120]}),
        _sweep(pruner="median"),
    ]
    assert [time_rungs(s) for s in steps] == [None] * 4
    assert isinstance(pruner(steps[0]), optuna.pruners.SuccessiveHalvingPruner)


@pytest.mark.parametrize("bad", ["soon", "100", "0s", 0])
def test_a_first_rung_is_steps_or_a_duration_with_its_unit(bad: Any):
    with pytest.raises(SpecError, match=r"sweep\.asha\.first_rung: .*steps \(100\) or a dur"):
        _sweep(asha={"first_rung": bad})
