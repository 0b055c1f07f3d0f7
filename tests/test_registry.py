"""The Model Registry helpers that need no store: `--register` names and `models:/` URIs."""

from __future__ import annotations

import pytest

from scheduler.registry import ModelRef, check_name, is_model_uri, parse_model_uri, register_best
from shared.errors import SpecError


def test_a_model_uri_with_a_version_names_the_model_and_the_version() -> None:
    assert parse_model_uri("models:/tiny-model/3") == ModelRef("tiny-model", version="3")


def test_a_model_uri_with_an_alias_names_the_model_and_the_alias() -> None:
    assert parse_model_uri("models:/tiny-model@champion") == ModelRef(
        "tiny-model", alias="champion"
    )


def test_a_model_ref_writes_back_the_uri_it_was_read_from() -> None:
    for uri in ("models:/m/1", "models:/m.v2@best"):
        assert parse_model_uri(uri).uri == uri


@pytest.mark.parametrize(
    "uri",
    [
        "models:/",
        "models:/tiny",
        "models:/tiny/",
        "models:/tiny/one",
        "models:/a/1/2",
        "models:/a@",
    ],
)
def test_a_malformed_model_uri_is_a_one_line_spec_error(uri: str) -> None:
    with pytest.raises(SpecError, match="models:/NAME/VERSION") as caught:
        parse_model_uri(uri)
    assert "\n" not in str(caught.value)


def test_only_models_uris_are_taken_for_registered_models() -> None:
    assert is_model_uri("models:/a/1")
    assert not is_model_uri("0" * 32)


def test_a_name_mlflow_accepts_passes_the_register_check() -> None:
    check_name("tiny-model_v2.0")


@pytest.mark.parametrize("name", ["", "  ", "a/b", "team:model", "../up"])
def test_register_refuses_a_name_mlflows_registry_would_refuse(name: str) -> None:
    with pytest.raises(SpecError, match=r"^--register: ") as caught:
        check_name(name)
    assert "\n" not in str(caught.value)


def test_a_sweep_without_a_complete_trial_registers_nothing_and_touches_no_store() -> None:
    assert register_best(object(), "tiny-model", "0" * 32, None) is None
