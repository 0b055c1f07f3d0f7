"""Tests for shared/study.py: where a sweep's study lives, what it records, how it is told."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import optuna
import pytest

from shared import names
from shared.errors import SweepNotFoundError
from shared.settings import Settings
from shared.space import SweepFile, distributions, parse_sweep
from shared.spec import TrainSpec
from shared.state import TrialState
from shared.study import (
    create_study,
    first_evaluation,
    journal_path,
    open_study,
    tell,
    trial_count,
    trial_state,
)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(home=tmp_path / "home")


def _sweep(space: dict[str, Any], **settings: Any) -> SweepFile:
    return parse_sweep({"run": {"eval_every": 10}, "space": space, "sweep": settings})


SPACE = {
    "optim.lr": {"log": [1e-4, 1e-2]},
    "model.hidden_size": [16, 32],
    "model.num_layers": {"int": [1, 3]},
    "model.dropout": {"range": [0.0, 0.5], "step": 0.25},
}


def test_a_local_study_is_one_journal_file_under_seqq_home_named_by_the_sweep(
    settings: Settings,
) -> None:
    opened = create_study(_sweep(SPACE), "s1", "file", settings)
    assert journal_path("s1", settings) == settings.home / "sweeps" / "s1.journal"
    assert journal_path("s1", settings).stat().st_size > 0
    assert opened.study.study_name == "s1"
    assert opened.study.direction == optuna.study.StudyDirection.MINIMIZE


def test_an_opened_study_rebuilds_the_sweep_file_sampler_and_pruner_from_its_own_record(
    settings: Settings,
) -> None:
    sweep = _sweep(SPACE, sampler="random", pruner="median", seed=7)
    create_study(sweep, "s2", "file", settings)
    opened = open_study("s2", "file", settings)
    assert opened.sweep == sweep
    assert isinstance(opened.study.sampler, optuna.samplers.RandomSampler)
    assert isinstance(opened.study.pruner, optuna.pruners.MedianPruner)


@pytest.mark.parametrize(
    ("sampler", "pruner", "sampler_type", "pruner_type"),
    [
        ("tpe", "asha", optuna.samplers.TPESampler, optuna.pruners.SuccessiveHalvingPruner),
        ("random", "none", optuna.samplers.RandomSampler, optuna.pruners.NopPruner),
        ("grid", "median", optuna.samplers.GridSampler, optuna.pruners.MedianPruner),
    ],
)
def test_each_setting_gets_optunas_own_sampler_and_pruner(
    settings: Settings, sampler: str, pruner: str, sampler_type: type, pruner_type: type
) -> None:
    space = {"model.hidden_size": [16, 32], "model.dropout": {"range": [0.0, 0.5], "step": 0.25}}
    opened = create_study(_sweep(space, sampler=sampler, pruner=pruner), "s", "file", settings)
    assert isinstance(opened.study.sampler, sampler_type)
    assert isinstance(opened.study.pruner, pruner_type)


def test_the_same_seed_draws_the_same_trials(settings: Settings, tmp_path: Path) -> None:
    def draws(home: Path) -> list[dict[str, Any]]:
        opened = create_study(_sweep(SPACE, seed=3), "s", "file", Settings(home=home))
        out = []
        for _ in range(4):
            trial = opened.study.ask(distributions(opened.sweep.space))
            tell(opened.study, trial.number, TrialState.COMPLETE, 1.0 + trial.number)
            out.append(trial.params)
        return out

    assert draws(tmp_path / "a") == draws(tmp_path / "b")


def test_asha_starts_at_the_first_evaluation_even_when_eval_every_is_searched() -> None:
    assert first_evaluation(_sweep(SPACE)) == 10
    assert first_evaluation(_sweep({"run.eval_every": {"int": [20, 60], "step": 20}})) == 20
    assert first_evaluation(_sweep({"run.eval_every": [50, 5]})) == 5


def test_asha_rungs_default_to_the_first_evaluation_and_factor_5_and_follow_the_file(
    settings: Settings,
) -> None:
    def rungs(**asha: Any) -> tuple[int, int]:
        sweep = _sweep(SPACE, pruner="asha", **({"asha": asha} if asha else {}))
        pruner = create_study(sweep, f"s{len(asha)}", "file", settings).study.pruner
        assert isinstance(pruner, optuna.pruners.SuccessiveHalvingPruner)
        return pruner._min_resource, pruner._reduction_factor

    assert rungs() == (10, 5)
    assert rungs(first_rung=40, factor=3) == (40, 3)


def test_a_grid_sweep_runs_at_most_its_grid(settings: Settings) -> None:
    space = {"model.hidden_size": [16, 32], "model.dropout": {"range": [0.0, 0.5], "step": 0.25}}
    assert trial_count(_sweep(space, sampler="grid", trials=20)) == 6
    assert trial_count(_sweep(space, sampler="grid", trials=4)) == 4
    assert trial_count(_sweep(space, sampler="random", trials=20)) == 20


def test_telling_the_last_grid_trial_stores_its_state_despite_optunas_stop(
    settings: Settings,
) -> None:
    opened = create_study(
        _sweep({"model.hidden_size": [16, 32]}, sampler="grid"), "g", "file", settings
    )
    for value in (2.0, 1.0):
        trial = opened.study.ask(distributions(opened.sweep.space))
        tell(opened.study, trial.number, TrialState.COMPLETE, value)  # the last one: no raise
    states = [trial_state(t) for t in opened.study.get_trials()]
    assert states == [TrialState.COMPLETE, TrialState.COMPLETE]
    assert sorted(t.params["model.hidden_size"] for t in opened.study.get_trials()) == [16, 32]


def test_a_trial_told_twice_keeps_its_first_ending(settings: Settings) -> None:
    opened = create_study(_sweep(SPACE), "t", "file", settings)
    trial = opened.study.ask(distributions(opened.sweep.space))
    trial.report(2.5, 10)
    tell(opened.study, trial.number, TrialState.PRUNED)
    tell(opened.study, trial.number, TrialState.FAILED)
    (frozen,) = opened.study.get_trials()
    assert trial_state(frozen) == TrialState.PRUNED


def test_an_unknown_sweep_is_not_found_with_exit_4_and_no_journal_is_left_behind(
    settings: Settings,
) -> None:
    with pytest.raises(SweepNotFoundError) as info:
        open_study("nope", "file", settings)
    assert info.value.exit_code == 4
    assert not journal_path("nope", settings).exists()


def _fresh_draws(settings: Settings, name: str, sampler: str, seed: int) -> list[Any]:
    """Four trials' learning rates, each asked from the study opened afresh (as a queue sweep
    asks them)."""
    sweep = _sweep(SPACE, sampler=sampler, seed=seed)
    create_study(sweep, name, "file", settings)
    values = []
    for _ in range(4):
        opened = open_study(name, "file", settings)
        trial = opened.study.ask(distributions(sweep.space))
        values.append(trial.params["optim.lr"])
        opened.study.tell(trial, 1.0)
    return values


@pytest.mark.parametrize("sampler", ["random", "tpe"])
def test_trials_asked_each_from_a_freshly_opened_study_draw_distinct_reproducible_values(
    settings: Settings, sampler: str
) -> None:
    # A queue sweep opens its study afresh for every ask; one fixed seed drew the same values
    # for all six trials of a sweep until the seed counted the trials already asked.
    first = _fresh_draws(settings, f"fresh-{sampler}-a", sampler, 3)
    assert len(set(first)) == 4
    assert _fresh_draws(settings, f"fresh-{sampler}-b", sampler, 3) == first


def test_sweeps_of_neighbouring_seeds_draw_different_trials(settings: Settings) -> None:
    # Seeding each ask by `seed + asked` made seed 1's sweep seed 0's shifted by one trial.
    zero = _fresh_draws(settings, "seed-0", "random", 0)
    one = _fresh_draws(settings, "seed-1", "random", 1)
    assert not set(zero) & set(one)


def test_try_base_makes_trial_0_the_base_spec_then_the_sampler_draws_as_without_it(
    settings: Settings, tmp_path: Path
) -> None:
    space = {"optim.lr": {"log": [1e-4, 1e-2]}, "model.hidden_size": [16, 256]}

    def first_three(try_base: bool, home: Path) -> list[optuna.trial.FrozenTrial]:
        opened = create_study(
            _sweep(space, seed=3, try_base=try_base), "s", "file", Settings(home=home)
        )
        for _ in range(3):
            trial = opened.study.ask(distributions(opened.sweep.space))
            tell(opened.study, trial.number, TrialState.COMPLETE, 1.0)
        return opened.study.get_trials()

    with_base = first_three(True, tmp_path / "a")
    without = first_three(False, tmp_path / "b")
    base = TrainSpec()
    assert with_base[0].params == {"optim.lr": base.optim.lr, "model.hidden_size": 256}
    assert with_base[0].user_attrs == {names.TRIAL_ATTR_BASE: True}
    assert not any(names.TRIAL_ATTR_BASE in t.user_attrs for t in with_base[1:])
    # The base takes a trial, not a draw: the sampler's first draws come after it unchanged.
    assert [t.params for t in with_base[1:]] == [t.params for t in without[:2]]
    assert not any(names.TRIAL_ATTR_BASE in t.user_attrs for t in without)


@pytest.mark.parametrize(
    ("space", "sampler"),
    [
        ({"optim.lr": {"log": [1e-2, 1e-1]}}, "tpe"),  # the default lr, 0.003, lies below it
        ({"model.hidden_size": [16, 32]}, "random"),  # 256 is no choice
        ({"model.hidden_size": [16, 256]}, "grid"),  # a grid visits every point anyway
    ],
)
def test_try_base_adds_no_trial_when_the_space_cannot_draw_the_base_or_the_sampler_is_grid(
    settings: Settings, space: dict[str, Any], sampler: str
) -> None:
    opened = create_study(_sweep(space, sampler=sampler, try_base=True), "s", "file", settings)
    assert opened.study.get_trials() == []
