"""Tests for shared/space.py: the sweep file's syntax, its checks, and sampling through Optuna."""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import optuna
import pytest
from pydantic import ValidationError

from shared.errors import SpecError
from shared.space import (
    Choice,
    FloatRange,
    IntRange,
    LogRange,
    SweepFile,
    SweepSettings,
    base_values,
    distributions,
    grid,
    load_sweep_file,
    parse_sweep,
    suggest,
    trial_spec,
)
from shared.spec import TrainSpec, TrialRef

optuna.logging.set_verbosity(optuna.logging.WARNING)

SWEEP_YAML = """\
model: {cell: lstm}
optim: {max_steps: 3000}
space:
  optim.lr: {log: [1.0e-4, 1.0e-2]}
  model.hidden_size: [128, 256, 512]
  model.dropout: {range: [0.0, 0.5]}
  model.num_layers: {int: [1, 3]}
  model.cell: [lstm, gru]
  optim.weight_decay: {range: [0.0, 0.1], step: 0.05}
  data.seq_len: {int: [32, 256], log: true}
  run.eval_every: {int: [100, 300], step: 100}
  sample.top_k: [null, 5, 10]
sweep: {trials: 32, parallel: 2, sampler: tpe, pruner: asha, metric: val_loss, seed: 0}
"""


def _sweep(space: dict[str, Any], settings: dict[str, Any] | None = None, **base: Any) -> SweepFile:
    return parse_sweep({**base, "space": space, "sweep": settings or {}})


def _problem(space: dict[str, Any], settings: dict[str, Any] | None = None, **base: Any) -> str:
    with pytest.raises(SpecError) as info:
        _sweep(space, settings, **base)
    assert info.value.exit_code == 2
    message = str(info.value)
    assert "\n" not in message and message.startswith("invalid sweep: ")
    return message


def test_every_syntax_form_parses_from_a_yaml_file(tmp_path: Path):
    path = tmp_path / "sweep.yaml"
    path.write_text(SWEEP_YAML, encoding="utf-8")
    sweep = load_sweep_file(path)
    assert sweep.base.model.cell == "lstm" and sweep.base.optim.max_steps == 3000
    assert sweep.space == {
        "optim.lr": LogRange.model_validate({"log": [1e-4, 1e-2]}),
        "model.hidden_size": Choice(values=(128, 256, 512)),
        "model.dropout": FloatRange.model_validate({"range": [0.0, 0.5]}),
        "model.num_layers": IntRange.model_validate({"int": [1, 3]}),
        "model.cell": Choice(values=("lstm", "gru")),
        "optim.weight_decay": FloatRange.model_validate({"range": [0.0, 0.1], "step": 0.05}),
        "data.seq_len": IntRange.model_validate({"int": [32, 256], "log": True}),
        "run.eval_every": IntRange.model_validate({"int": [100, 300], "step": 100}),
        "sample.top_k": Choice(values=(None, 5, 10)),
    }
    assert sweep.sweep == SweepSettings(
        trials=32, parallel=2, sampler="tpe", pruner="asha", metric="val_loss", seed=0
    )


def test_a_json_sweep_file_reads_like_a_yaml_one(tmp_path: Path):
    path = tmp_path / "sweep.json"
    path.write_text(json.dumps({"space": {"model.cell": ["rnn", "gru"]}}), encoding="utf-8")
    assert load_sweep_file(path).space == {"model.cell": Choice(values=("rnn", "gru"))}


def test_settings_default_to_tpe_with_asha_on_the_live_workers():
    settings = _sweep({"model.cell": ["lstm", "rnn"]}).sweep
    assert (settings.sampler, settings.pruner, settings.metric) == ("tpe", "asha", "val_loss")
    assert settings.parallel is None and settings.trials >= 1


def test_every_settings_field_has_a_description_for_help():
    assert all(info.description for info in SweepSettings.model_fields.values())


def test_choices_keep_the_types_yaml_gave_them():
    space = _sweep({"sample.temperature": [1, 0.5], "data.lowercase": [True, False]}).space
    assert [type(v) for v in space["sample.temperature"].edges()] == [int, float]
    assert [type(v) for v in space["data.lowercase"].edges()] == [bool, bool]


@pytest.mark.parametrize(
    ("space", "expected"),
    [
        ({"optim.lrr": [0.1]}, "space.optim.lrr: not a spec field"),
        ({"modle.cell": ["lstm"]}, "space.modle.cell: not a spec field"),
        ({"model.cell.x": ["lstm"]}, "space.model.cell.x: not a spec field"),
        ({"model": ["lstm"]}, "space.model: a group of fields"),
        ({"model.hidden_size": []}, "space.model.hidden_size: an empty choice"),
        ({"model.cell": ["lstm", "lstm"]}, "space.model.cell: choice 'lstm' is listed twice"),
        ({"sample.prompts": [["a", "b"]]}, "space.sample.prompts: choice ['a', 'b'] is not"),
        ({"model.dropout": {"range": [0.5, 0.1]}}, "space.model.dropout: low 0.5 is above high"),
        ({"model.num_layers": {"int": [3, 1]}}, "space.model.num_layers: low 3 is above high 1"),
        ({"optim.lr": {"log": [0.0, 0.1]}}, "space.optim.lr: a log range must lie above 0"),
        ({"optim.lr": {"log": [-1.0, 0.1]}}, "space.optim.lr: a log range must lie above 0"),
        ({"model.num_layers": {"int": [0, 4], "log": True}}, "space.model.num_layers: a log int"),
        ({"model.num_layers": {"range": [1, 3]}}, "space.model.num_layers: is an integer field"),
        ({"model.hidden_size": {"log": [64, 512]}}, "space.model.hidden_size: is an integer field"),
        ({"model.cell": {"int": [0, 2]}}, "space.model.cell: takes no range of numbers"),
        ({"data.seq_len": {"int": [1, 3.5]}}, "space.data.seq_len.int.1: Input should be"),
        ({"model.dropout": {"range": [0.0, 0.5], "stepp": 0.1}}, "space.model.dropout.stepp"),
        ({"model.dropout": {"range": [0.0, 0.5], "step": 0.2}}, "is not a multiple of step"),
        ({"model.num_layers": {"int": [1, 4], "step": 2}}, "is not a multiple of step 2"),
        ({"model.dropout": 0.1}, "space.model.dropout: expected a list of choices"),
        ({"model.dropout": {"range": [0.0, 1.0]}}, "space.model.dropout: 1.0 is refused by the"),
        ({"optim.lr": {"range": [0.0, 0.1]}}, "space.optim.lr: 0.0 is refused by the spec"),
        ({"model.cell": ["lstm", "transformer"]}, "space.model.cell: 'transformer' is refused"),
        ({"model.hidden_size": [128, 1.5]}, "space.model.hidden_size: 1.5 is refused by the"),
        ({"sample.temperature": {"log": [0.1, 20.0]}}, "space.sample.temperature: 20.0 is ref"),
    ],
)
def test_a_bad_space_is_one_line_naming_the_field_with_exit_code_2(space, expected):
    assert expected in _problem(space)


def test_a_cross_field_constraint_of_the_spec_is_checked_against_the_base():
    message = _problem({"data.val_fraction": [0.1, 0.45]}, data={"test_fraction": 0.1})
    assert "space.data.val_fraction: 0.45 is refused by the spec (data.val_fraction +" in message
    assert "0.1 is refused" not in message


def test_an_int_range_on_a_float_field_is_fine_because_ints_are_floats_the_spec_takes():
    assert _sweep({"optim.grad_clip": {"int": [0, 5]}}).space["optim.grad_clip"]


def test_an_empty_or_missing_space_is_refused():
    assert "space: name at least one spec field" in _problem({})
    with pytest.raises(SpecError, match="space: name at least one"):
        parse_sweep({"model": {"cell": "gru"}})


def test_grid_sampler_refuses_continuous_ranges_by_field():
    message = _problem(
        {"optim.lr": {"log": [1e-4, 1e-2]}, "model.dropout": {"range": [0.0, 0.5]}},
        {"sampler": "grid"},
    )
    assert "space.optim.lr: the grid sampler needs choices or stepped ranges" in message
    assert "space.model.dropout: the grid sampler needs" in message


def test_bad_settings_name_their_dotted_field():
    message = _problem(
        {"model.cell": ["lstm"]},
        {"trials": 0, "parallel": 0, "sampler": "bayes", "pruner": "hyperband", "metric": "bpc"},
    )
    for field in ("trials", "parallel", "sampler", "pruner", "metric"):
        assert f"sweep.{field}: " in message
    assert "sweep.oops" in _problem({"model.cell": ["lstm"]}, {"oops": 1})
    message = _problem({"model.cell": ["lstm"]}, {"asha": {"factor": 1, "first_rung": 0}})
    assert "sweep.asha.factor: " in message and "sweep.asha.first_rung: " in message


def test_an_invalid_base_spec_is_reported_like_a_spec_file_error():
    message = _problem({"model.cell": ["lstm"]}, model={"hidden_size": 0}, optim={"lrr": 1})
    assert "model.hidden_size: Input should be greater than or equal to 1" in message
    assert "optim.lrr: Extra inputs are not permitted" in message


def test_several_problems_are_reported_together_on_one_line():
    message = _problem(
        {
            "optim.lrr": [0.1],
            "model.hidden_size": [],
            "optim.lr": {"log": [0.0, 0.1]},
            "model.dropout": {"range": [0.0, 1.0]},
        },
        {"trials": 0},
        model={"cell": "transformer"},
    )
    expected = [
        "model.cell: Input should be",
        "space.optim.lrr: not a spec field",
        "space.model.hidden_size: an empty choice",
        "space.optim.lr: a log range must lie above 0",
        "sweep.trials: ",
    ]
    assert all(part in message for part in expected), message
    assert message.count("; ") >= len(expected) - 1


def test_fifty_sampled_trials_stay_in_bounds_and_every_spec_validates():
    sweep = _sweep(
        {
            "optim.lr": {"log": [1e-4, 1e-2]},
            "model.hidden_size": [16, 32, 64],
            "model.dropout": {"range": [0.0, 0.5]},
            "model.num_layers": {"int": [1, 3]},
            "model.cell": ["lstm", "gru", "rnn"],
            "optim.weight_decay": {"range": [0.0, 0.1], "step": 0.05},
            "data.seq_len": {"int": [32, 256], "log": True},
            "sample.top_k": [None, 5],
        }
    )
    study = optuna.create_study(sampler=optuna.samplers.TPESampler(seed=0))
    specs: list[TrainSpec] = []

    def objective(trial: optuna.Trial) -> float:
        spec = trial_spec(sweep.base, suggest(trial, sweep.space))
        specs.append(spec)
        return spec.optim.lr * spec.model.hidden_size  # any figure: only the draws matter here

    study.optimize(objective, n_trials=50)
    assert len(specs) == 50
    for spec in specs:
        assert 1e-4 <= spec.optim.lr <= 1e-2
        assert spec.model.hidden_size in (16, 32, 64)
        assert 0.0 <= spec.model.dropout <= 0.5
        assert spec.model.num_layers in (1, 2, 3)
        assert spec.model.cell in ("lstm", "gru", "rnn")
        assert spec.optim.weight_decay in (0.0, 0.05, 0.1)
        assert 32 <= spec.data.seq_len <= 256
        assert spec.sample.top_k in (None, 5)
        assert TrainSpec.model_validate_json(spec.to_json()) == spec
    assert {spec.sample.top_k for spec in specs} == {None, 5}  # a drawn None is kept, not dropped


def test_asked_trials_draw_from_the_same_distributions_without_a_callback():
    sweep = _sweep({"optim.lr": {"log": [1e-4, 1e-2]}, "model.cell": ["lstm", "gru"]})
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for _ in range(20):
        trial = study.ask(distributions(sweep.space))
        spec = trial_spec(sweep.base, trial.params)
        assert 1e-4 <= spec.optim.lr <= 1e-2 and spec.model.cell in ("lstm", "gru")
        study.tell(trial, 1.0)


def test_grid_sampler_over_choices_and_stepped_ranges_enumerates_exactly_the_grid():
    space = {
        "model.cell": ["lstm", "gru"],
        "model.num_layers": {"int": [1, 3]},
        "model.dropout": {"range": [0.0, 0.3], "step": 0.1},
    }
    sweep = _sweep(space, {"sampler": "grid"})
    points = grid(sweep.space)
    assert points["model.dropout"] == [0.0, 0.1, 0.2, 0.3]  # decimal steps: 0.3, not 0.30000004
    study = optuna.create_study(sampler=optuna.samplers.GridSampler(points, seed=0))
    drawn = []
    study.optimize(lambda t: drawn.append(suggest(t, sweep.space)) or 0.0, n_trials=24)
    seen = {(d["model.cell"], d["model.num_layers"], d["model.dropout"]) for d in drawn}
    assert len(drawn) == 24
    assert seen == set(itertools.product(["lstm", "gru"], [1, 2, 3], [0.0, 0.1, 0.2, 0.3]))


def test_grid_of_a_continuous_range_is_refused():
    with pytest.raises(ValueError, match=r"optim\.lr"):
        grid(_sweep({"optim.lr": {"log": [1e-4, 1e-2]}}).space)


def test_a_trial_spec_is_validated_like_any_spec():
    base = _sweep({"model.cell": ["lstm"]}, model={"cell": "gru"}).base
    assert trial_spec(base, {"model.hidden_size": 32}).model.hidden_size == 32
    with pytest.raises(SpecError, match=r"model\.hidden_size"):
        trial_spec(base, {"model.hidden_size": 0})


def test_trial_ref_is_frozen_and_refuses_a_negative_number():
    ref = TrialRef(sweep="sweep-1", number=3, storage="file")
    assert TrialRef.model_validate_json(ref.model_dump_json()) == ref
    with pytest.raises(ValidationError, match="frozen"):
        ref.number = 4  # type: ignore[misc]
    with pytest.raises(ValidationError, match="number"):
        TrialRef(sweep="sweep-1", number=-1, storage="file")


def test_importing_the_space_imports_neither_optuna_nor_torch():
    code = "import sys, shared.space; print(sorted({'optuna', 'torch'} & set(sys.modules)))"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert result.stdout.strip() == "[]"


def test_a_sweep_file_that_names_a_trial_itself_is_refused():
    message = _problem({"optim.lr": [0.01]}, trial={"sweep": "s", "number": 0, "storage": "file"})
    assert "trial: set by `seqq sweep`" in message


def test_a_trial_spec_carries_the_reference_to_its_study_trial():
    base = _sweep({"optim.lr": [0.01]}).base
    ref = TrialRef(sweep="s", number=2, storage="file")
    spec = trial_spec(base, {"optim.lr": 0.01}, ref)
    assert spec.trial == ref and spec.optim.lr == 0.01 and base.trial is None


@pytest.mark.parametrize(
    ("dimension", "inside", "outside"),
    [
        (
            FloatRange.model_validate({"range": [0.0, 0.5]}),
            [0.0, 0.25, 0.5, 0],
            [0.51, -0.1, "0.1"],
        ),
        (FloatRange.model_validate({"range": [0.0, 0.5], "step": 0.25}), [0.25], [0.1, True]),
        (LogRange.model_validate({"log": [1e-4, 1e-2]}), [1e-4, 3e-3, 1e-2], [1e-5, 0.02, None]),
        (IntRange.model_validate({"int": [2, 10], "step": 2}), [2, 6, 10], [3, 12, 4.0, True]),
        (Choice(values=(128, 256, "gru", True)), [128, "gru", True], [512, "lstm", 1, 128.5]),
    ],
)
def test_a_dimension_contains_exactly_the_values_it_can_draw(dimension, inside, outside):
    assert all(dimension.contains(v) for v in inside)
    assert not any(dimension.contains(v) for v in outside)


def test_base_values_are_the_bases_own_values_of_the_searched_fields_or_none_outside():
    sweep = parse_sweep(
        {
            "model": {"hidden_size": 128},
            "space": {"model.hidden_size": [128, 512], "optim.lr": {"log": [1e-4, 1e-2]}},
        }
    )
    assert base_values(sweep) == {"model.hidden_size": 128, "optim.lr": TrainSpec().optim.lr}
    outside = parse_sweep({"space": {"model.hidden_size": [128, 512]}})  # the default is 256
    assert base_values(outside) is None
    assert SweepSettings().try_base is False  # `seqq sweep` searches only; --tune turns it on
