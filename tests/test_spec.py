"""Tests for shared/spec.py: validation, error messages, flattening, durations and spec files."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from pydantic import BaseModel, ValidationError

from shared.errors import SpecError
from shared.spec import (
    TrainSpec,
    TrialRef,
    build_spec,
    format_validation_error,
    load_spec_file,
    parse_duration,
)


def _dotted_fields(model: type[BaseModel]) -> set[str]:
    """Every leaf field of the spec, as `group.field` (or `field` for top-level scalars)."""
    keys = set()
    for name, info in model.model_fields.items():
        annotation = info.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            keys |= {f"{name}.{inner}" for inner in annotation.model_fields}
        else:
            keys.add(name)
    return keys


def test_default_spec_validates_and_survives_its_wire_form():
    spec = build_spec()
    assert spec == TrainSpec()
    assert TrainSpec.model_validate_json(spec.to_json()) == spec


def test_unknown_top_level_key_is_rejected_by_name():
    with pytest.raises(SpecError) as info:
        build_spec({"modle": {"cell": "gru"}})
    assert "modle" in str(info.value)


def test_unknown_key_inside_a_group_is_rejected_with_its_dotted_name():
    with pytest.raises(SpecError) as info:
        build_spec({"optim": {"learning_rate": 0.1}})
    assert "optim.learning_rate" in str(info.value)


def test_several_bad_fields_are_reported_at_once_on_one_line():
    raw = {
        "model": {"hidden_size": 0, "cell": "transformer"},
        "optim": {"lr": -1.0},
        "data": {"unknown": True},
    }
    with pytest.raises(SpecError) as info:
        build_spec(raw)
    message = str(info.value)
    assert "\n" not in message
    for field in ("model.hidden_size", "model.cell", "optim.lr", "data.unknown"):
        assert field in message, field


def test_format_validation_error_names_each_dotted_field_without_pydantic_prefixes():
    with pytest.raises(ValidationError) as info:
        TrainSpec.model_validate({"run": {"seed": -1}, "sample": {"temperature": 0}})
    message = format_validation_error(info.value)
    assert message.startswith("invalid spec: ")
    assert "\n" not in message
    assert "run.seed: " in message
    assert "sample.temperature: " in message
    assert message.count(";") == len(info.value.errors()) - 1


def test_spec_is_frozen_at_the_top_and_inside_groups():
    spec = TrainSpec()
    with pytest.raises(ValidationError):
        spec.device = "cpu"  # type: ignore[misc]
    with pytest.raises(ValidationError):
        spec.optim.lr = 1.0  # type: ignore[misc]
    assert spec.device == "auto"
    assert spec.optim.lr == TrainSpec().optim.lr


def test_flat_gives_a_dotted_string_key_for_every_field_but_the_trial_reference():
    flat = TrainSpec().flat()
    assert set(flat) == _dotted_fields(TrainSpec) - {"trial"}  # a trial's run has it as tags
    assert all(isinstance(value, str) for value in flat.values())


def test_a_lone_job_spec_serialises_without_a_trial_key_as_before_sweeps():
    assert "trial" not in json.loads(TrainSpec().to_json())
    assert "trial" not in TrainSpec().model_dump(mode="json")


def test_a_trial_spec_carries_its_reference_on_the_wire_and_out_of_its_params():
    ref = TrialRef(sweep="a" * 32, number=3, storage="file")
    spec = build_spec({"trial": ref.model_dump()})
    again = TrainSpec.model_validate_json(spec.to_json())
    assert again.trial == ref and again == spec
    assert not any(key.startswith("trial") for key in spec.flat())
    with pytest.raises(SpecError, match=r"trial\.storage"):
        build_spec({"trial": {"sweep": "s", "number": 0, "storage": "s3"}})


def test_flat_values_round_trip_through_json_for_non_strings():
    spec = build_spec(
        {
            "optim": {"time_budget": "10m"},
            "run": {"tags": {"team": "nlp", "try": "2"}, "name": "x"},
            "sample": {"prompts": ["ab", "c"], "top_k": 5},
        }
    )
    dumped = spec.model_dump(mode="json")
    for dotted, text in spec.flat().items():
        node = dumped
        for part in dotted.split("."):
            node = node[part]
        if isinstance(node, str):
            assert text == node, dotted
        else:
            assert json.loads(text) == node, dotted


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90s", 90.0), ("10m", 10 * 60.0), ("1.5h", 1.5 * 3600.0), ("45", 45.0), (" 2 min ", 120.0)],
)
def test_time_budget_parses_durations_with_units(text, seconds):
    assert build_spec({"optim": {"time_budget": text}}).optim.time_budget == seconds
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("number", [30, 12.5])
def test_time_budget_accepts_plain_numbers_as_seconds(number):
    assert build_spec({"optim": {"time_budget": number}}).optim.time_budget == float(number)


def test_a_time_budget_alone_ends_training_but_an_explicit_max_steps_still_caps_it():
    from shared.spec import UNCAPPED_STEPS

    assert build_spec({"optim": {"time_budget": "10m"}}).optim.max_steps == UNCAPPED_STEPS
    both = build_spec({"optim": {"time_budget": "10m"}}, {"optim.max_steps": 300})
    assert both.optim.max_steps == 300
    assert TrainSpec().optim.max_steps == 2000
    # The worker re-validates the spec it receives: the uncapped value survives the round trip.
    spec = build_spec(overrides={"optim.time_budget": 90})
    assert TrainSpec.model_validate_json(spec.model_dump_json()) == spec


def test_time_budget_defaults_to_none_and_none_stays_none():
    assert TrainSpec().optim.time_budget is None
    assert parse_duration(None) is None


@pytest.mark.parametrize("bad", ["soon", "10 minutes", "-5s", "", "1h30m"])
def test_time_budget_rejects_text_that_is_not_a_duration(bad):
    with pytest.raises(SpecError) as info:
        build_spec({"optim": {"time_budget": bad}})
    assert "optim.time_budget" in str(info.value)


def test_time_budget_must_be_positive():
    with pytest.raises(SpecError) as info:
        build_spec({"optim": {"time_budget": "0s"}})
    assert "optim.time_budget" in str(info.value)


def test_load_spec_file_reads_yaml(tmp_path: Path):
    path = tmp_path / "spec.yaml"
    path.write_text("model:\n  cell: gru\n  hidden_size: 32\noptim:\n  time_budget: 10m\n")
    raw = load_spec_file(path)
    assert raw == {"model": {"cell": "gru", "hidden_size": 32}, "optim": {"time_budget": "10m"}}
    spec = build_spec(raw)
    assert (spec.model.cell, spec.model.hidden_size) == ("gru", 32)
    assert spec.optim.time_budget == 600.0


def test_load_spec_file_reads_json(tmp_path: Path):
    raw = {"data": {"seq_len": 16, "lowercase": True}, "device": "cpu"}
    path = tmp_path / "spec.json"
    path.write_text(json.dumps(raw))
    assert load_spec_file(path) == raw


def test_load_spec_file_treats_an_empty_file_as_all_defaults(tmp_path: Path):
    path = tmp_path / "empty.yaml"
    path.write_text("")
    assert build_spec(load_spec_file(path)) == TrainSpec()


def test_load_spec_file_reports_a_missing_file_by_name(tmp_path: Path):
    path = tmp_path / "nope.yaml"
    with pytest.raises(SpecError) as info:
        load_spec_file(path)
    assert str(path) in str(info.value)


@pytest.mark.parametrize(
    ("name", "text"),
    [("bad.yaml", "model: [unclosed\n  cell: gru"), ("bad.json", "{'model': }")],
)
def test_load_spec_file_reports_unparseable_text_by_file_name(tmp_path: Path, name, text):
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(SpecError) as info:
        load_spec_file(path)
    assert str(path) in str(info.value)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("text", ["- model\n- data\n", "just a string\n", "42\n"])
def test_load_spec_file_rejects_a_top_level_that_is_not_a_mapping(tmp_path: Path, text):
    path = tmp_path / "list.yaml"
    path.write_text(text)
    with pytest.raises(SpecError) as info:
        load_spec_file(path)
    assert str(path) in str(info.value)
    assert "mapping" in str(info.value)


def test_build_spec_overrides_win_over_the_file():
    raw = {"model": {"cell": "gru", "hidden_size": 32}, "optim": {"lr": 0.01}}
    spec = build_spec(raw, {"model.hidden_size": 64, "optim.lr": 0.5, "device": "cpu"})
    assert spec.model.hidden_size == 64
    assert spec.model.cell == "gru"
    assert spec.optim.lr == 0.5
    assert spec.device == "cpu"


def test_build_spec_ignores_none_overrides():
    raw = {"model": {"hidden_size": 32}}
    spec = build_spec(raw, {"model.hidden_size": None, "optim.lr": None})
    assert spec.model.hidden_size == 32
    assert spec.optim.lr == TrainSpec().optim.lr


def test_build_spec_does_not_mutate_the_raw_mapping():
    raw = {"model": {"hidden_size": 32}}
    build_spec(raw, {"model.hidden_size": 64, "data.seq_len": 8})
    assert raw == {"model": {"hidden_size": 32}}


def test_build_spec_override_can_create_a_group_missing_from_the_file():
    spec = build_spec({}, {"data.seq_len": 8})
    assert spec.data.seq_len == 8


@pytest.mark.parametrize(("val", "test"), [(0.25, 0.25), (0.3, 0.2), (0.45, 0.1)])
def test_validation_and_test_fractions_summing_to_half_or_more_are_rejected(val, test):
    with pytest.raises(SpecError) as info:
        build_spec({"data": {"val_fraction": val, "test_fraction": test}})
    assert "data.val_fraction + data.test_fraction" in str(info.value)


def test_validation_and_test_fractions_just_below_half_are_accepted():
    spec = build_spec({"data": {"val_fraction": 0.2, "test_fraction": 0.2}})
    assert math.isclose(spec.data.val_fraction + spec.data.test_fraction, 0.4)
