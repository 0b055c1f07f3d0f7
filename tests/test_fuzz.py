"""Hostile and broken input never produces a traceback: the spec parser and the CLI, fuzzed."""

from __future__ import annotations

import io
import sys
from contextlib import redirect_stderr, redirect_stdout
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shared.errors import SpecError
from shared.spec import TrainSpec, build_spec

GROUPS = ["model", "data", "optim", "run", "sample"]
FIELDS = {g: list(TrainSpec.model_fields[g].annotation.model_fields) for g in GROUPS}  # type: ignore[union-attr]

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**12), 10**12),
    st.floats(allow_nan=True),
    st.text(max_size=20),
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=5), st.integers(), max_size=2),
)


@st.composite
def raw_specs(draw: Any) -> dict[str, Any]:
    raw: dict[str, Any] = {}
    for group in draw(
        st.lists(st.sampled_from([*GROUPS, "device", "precision", "bogus"]), max_size=6)
    ):
        if group in FIELDS:
            keys = st.sampled_from([*FIELDS[group], "typo"])
            raw[group] = draw(st.dictionaries(keys, scalars, max_size=4))
        else:
            raw[group] = draw(scalars)
    return raw


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(raw_specs())
def test_build_spec_either_validates_or_raises_one_line_spec_error(raw: dict[str, Any]) -> None:
    try:
        spec = build_spec(raw)
    except SpecError as exc:
        message = str(exc)
        assert message.startswith("invalid spec: ") and "\n" not in message
    else:
        assert TrainSpec.model_validate_json(spec.to_json()) == spec


FLAGS = [
    "--model",
    "--data",
    "--hidden-size",
    "--num-layers",
    "--embedding-dim",
    "--dropout",
    "--seq-len",
    "--batch-size",
    "--lr",
    "--weight-decay",
    "--max-steps",
    "--time-budget",
    "--seed",
    "--device",
    "--precision",
    "--experiment",
    "--name",
    "--spec",
    "--json",
    "--wait",
    "--bogus",
]
COMMANDS = ["submit", "run", "status", "list", "cancel", "compare", "sample", "nope"]
tokens = st.one_of(
    st.sampled_from(FLAGS),
    st.text(max_size=12),
    st.integers(-5, 10**9).map(str),
    st.sampled_from(["-1", "0", "1e9", "nan", "inf", "lstm", "10m", "", "\x00"]),
)


@pytest.fixture
def dead_services(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """Nothing the fuzzed CLI does may reach a real service or leave state behind."""
    from shared.settings import get_settings

    monkeypatch.setenv("SEQQ_BROKER_URL", "redis://127.0.0.1:1/0")
    monkeypatch.setenv("SEQQ_MLFLOW_URI", "http://127.0.0.1:1")
    monkeypatch.setenv("SEQQ_HOME", str(tmp_path))
    monkeypatch.setenv("SEQQ_JOB_TIMEOUT", "0.5")
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(command=st.sampled_from(COMMANDS), args=st.lists(tokens, max_size=6))
def test_the_cli_never_shows_a_traceback(
    dead_services: None, command: str, args: list[str]
) -> None:
    from scheduler.cli import main

    argv = [command, *[a for a in args if "\x00" not in a]]
    out, err = io.StringIO(), io.StringIO()
    old_argv = sys.argv
    sys.argv = ["seqq", *argv]
    try:
        with redirect_stdout(out), redirect_stderr(err):
            main()
    except SystemExit as exit_:
        code = exit_.code
    else:
        code = 0
    finally:
        sys.argv = old_argv
    output = out.getvalue() + err.getvalue()
    assert "Traceback" not in output, (argv, output)
    assert "error: unexpected" not in output, (argv, output)  # our catch-all: a bug
    assert code in (0, 1, 2, 3, 4, None), (argv, code, output)
