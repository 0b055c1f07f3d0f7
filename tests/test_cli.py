"""The `seqq` command line as a person meets it: help, bad input, services that are down."""

from __future__ import annotations

import subprocess
import sys
import time
from functools import reduce
from pathlib import Path

import pytest
import typer.main
from typer.testing import CliRunner

from scheduler.cli import app
from scheduler.cli.options import SPEC_FLAGS
from shared.spec import TrainSpec
from tests.helpers import CORPUS, base_env, seqq

COMMANDS = sorted(typer.main.get_command(app).commands)  # type: ignore[attr-defined]

DEAD_REDIS = "redis://127.0.0.1:1/0"
DEAD_MLFLOW = "http://127.0.0.1:1"


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    """Services pointed at closed ports: a command that gets past validation fails loudly."""
    return base_env(tmp_path / "home", SEQQ_BROKER_URL=DEAD_REDIS, SEQQ_MLFLOW_URI=DEAD_MLFLOW)


def one_line_error(done: subprocess.CompletedProcess[str]) -> str:
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, done.stderr
    assert "Traceback" not in done.stderr + done.stdout
    return lines[0]


def test_client_modules_import_neither_torch_nor_mlflow() -> None:
    code = (
        "import sys, scheduler.cli, scheduler.jobs, scheduler.broker, scheduler.tracking, "
        "shared.spec, shared.settings, shared.dataset, shared.celery_app\n"
        "heavy = [m for m in ('torch', 'mlflow') if m in sys.modules]\n"
        "assert not heavy, heavy"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_help_lists_every_command() -> None:
    done = seqq(["--help"], base_env(Path("/nonexistent")))
    assert done.returncode == 0
    for command in ("run", "submit", "status", "list", "cancel", "worker"):
        assert f" {command} " in done.stdout


def help_text(*command: str) -> str:
    """`seqq ... --help` as printed on a terminal wide enough to give each option one line."""
    done = CliRunner().invoke(app, [*command, "--help"], env={"COLUMNS": "300"}, prog_name="seqq")
    assert done.exit_code == 0, done.output
    return done.output


def option_help(lines: list[str], flag: str) -> str:
    """The text of one option's row in a Typer help panel (its default is on a line of its own)."""
    rows = [line.strip("│ ") for line in lines]
    start = next(i for i, row in enumerate(rows) if row.startswith(f"{flag} "))
    end = next(i for i in range(start + 1, len(rows)) if rows[i].startswith(("-", "╰")))
    return " ".join(rows[start:end])


@pytest.mark.parametrize("command", ["", *COMMANDS])
def test_every_commands_help_shows_an_example(command: str) -> None:
    assert "Example" in help_text(*filter(None, [command])), command


@pytest.mark.parametrize("command", ["run", "submit", "compare"])
def test_each_spec_flag_help_names_its_field_and_shows_the_specs_own_default(command: str) -> None:
    lines = help_text(command).splitlines()
    spec = TrainSpec()  # the defaults as a spec built from nothing has them
    for dotted, decls in SPEC_FLAGS:
        line = option_help(lines, decls[0])
        assert f"(spec: {dotted}" in line, line
        default = reduce(getattr, dotted.split("."), spec)
        if default is None:
            assert "default" not in line, line
        else:
            assert f"[default: ({default})]" in line, line


SAMPLE_FLAGS = [
    ("sample.length", "--length"),
    ("sample.temperature", "--temperature"),
    ("sample.top_k", "--top-k"),
    ("sample.seed", "--seed"),
]


def test_sample_flags_show_the_spec_sample_groups_own_defaults() -> None:
    lines = help_text("sample").splitlines()
    spec = TrainSpec()
    for dotted, flag in SAMPLE_FLAGS:
        line = option_help(lines, flag)
        assert f"(spec: {dotted}" in line, line
        default = reduce(getattr, dotted.split("."), spec)
        assert ("default" not in line) if default is None else f"[default: ({default})]" in line


def test_sample_refuses_a_temperature_the_spec_refuses_naming_the_field(
    env: dict[str, str],
) -> None:
    done = seqq(["sample", "0" * 32, "--temperature", "0"], env)
    assert done.returncode == 2
    assert "sample.temperature" in one_line_error(done)


def test_submit_rejects_negative_learning_rate_with_exit_2_naming_the_field(
    env: dict[str, str],
) -> None:
    done = seqq(["submit", "--lr", "-1", "--data", str(CORPUS)], env)
    assert done.returncode == 2
    assert "optim.lr" in one_line_error(done)


def test_submit_rejects_a_patience_below_one_with_exit_2_naming_the_field(
    env: dict[str, str],
) -> None:
    done = seqq(["submit", "--patience", "0", "--data", str(CORPUS)], env)
    assert done.returncode == 2
    assert "optim.patience" in one_line_error(done)


def test_an_optional_number_flag_is_parsed_and_shown_as_its_number() -> None:
    # `optim.patience` is `int | None`: its help says <int>, not <str>, and Typer parses it.
    from scheduler.cli.options import flag_type

    assert flag_type("optim.patience") is int
    assert flag_type("optim.lr") is float and flag_type("optim.time_budget") is str


def test_time_budget_takes_a_duration_with_a_unit_as_the_spec_does(env: dict[str, str]) -> None:
    # The spec parses '2m'; the flag must hand it over as text, not demand a number.
    done = seqq(["submit", "--time-budget", "2m", "--lr", "-1"], env)
    assert done.returncode == 2
    error = one_line_error(done)
    assert "optim.lr" in error and "time" not in error.replace("optim.lr", "")


def test_submit_reports_every_bad_field_at_once(env: dict[str, str]) -> None:
    done = seqq(["submit", "--model", "transformer", "--hidden-size", "0", "--dropout", "1.5"], env)
    assert done.returncode == 2
    line = one_line_error(done)
    for field in ("model.cell", "model.hidden_size", "model.dropout"):
        assert field in line


def test_a_trials_spec_file_reruns_as_a_lone_job(tmp_path: Path) -> None:
    from scheduler.cli.options import SPEC_FILE_PARAM, SpecFlags, param_name

    trial = TrainSpec.model_validate(
        {"model": {"hidden_size": 32}, "trial": {"sweep": "s1", "number": 3, "storage": "file"}}
    )
    path = tmp_path / "spec.json"
    path.write_text(trial.model_dump_json(), encoding="utf-8")
    no_flags = {param_name(decls): None for _, decls in SPEC_FLAGS}
    spec = SpecFlags({**no_flags, SPEC_FILE_PARAM: path}).build()
    assert spec.trial is None and spec.model.hidden_size == 32


def test_spec_file_with_unknown_key_is_rejected(env: dict[str, str], tmp_path: Path) -> None:
    spec = tmp_path / "spec.yaml"
    spec.write_text("model:\n  cell: lstm\n  hiden_size: 3\n")
    done = seqq(["submit", "-f", str(spec)], env)
    assert done.returncode == 2
    assert "model.hiden_size" in one_line_error(done)


def test_flags_override_the_spec_file(env: dict[str, str], tmp_path: Path) -> None:
    spec = tmp_path / "spec.json"
    spec.write_text('{"model": {"cell": "transformer"}}')
    done = seqq(["submit", "-f", str(spec), "--model", "gru", "--hidden-size", "-3"], env)
    assert done.returncode == 2
    line = one_line_error(done)
    assert "model.hidden_size" in line and "model.cell" not in line


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (None, "not found"),
        (b"", "empty"),
        (b"\x00\x01binary", "not text"),
        (b"\xff\xfe\xfa abc", "UTF-8"),
    ],
)
def test_bad_data_file_is_refused_naming_the_file(
    env: dict[str, str], tmp_path: Path, content: bytes | None, problem: str
) -> None:
    path = tmp_path / "corpus.txt"
    if content is not None:
        path.write_bytes(content)
    done = seqq(["submit", "--data", str(path)], env)
    assert done.returncode == 2
    line = one_line_error(done)
    assert str(path) in line and problem in line


def test_corpus_too_short_for_seq_len_is_refused(env: dict[str, str], tmp_path: Path) -> None:
    path = tmp_path / "short.txt"
    path.write_text("to be or not to be " * 20)
    done = seqq(["run", "--data", str(path), "--seq-len", "64"], env)
    assert done.returncode == 2
    assert "seq_len" in one_line_error(done)


def test_unreachable_redis_fails_fast_naming_the_address_and_hiding_the_password(
    tmp_path: Path,
) -> None:
    env = base_env(
        tmp_path / "home",
        SEQQ_BROKER_URL="redis://:hunter2@127.0.0.1:1/0",
        SEQQ_MLFLOW_URI=f"sqlite:///{tmp_path / 'mlflow.db'}",
    )
    started = time.monotonic()
    done = seqq(["submit", "--data", str(CORPUS)], env)
    assert time.monotonic() - started < 10
    assert done.returncode == 3
    line = one_line_error(done)
    assert "127.0.0.1:1" in line and "redis-server" in line
    assert "hunter2" not in done.stderr + done.stdout
    assert not (tmp_path / "mlflow.db").exists(), "no MLflow run may be created"


def test_unreachable_mlflow_fails_fast_naming_the_address(tmp_path: Path) -> None:
    env = base_env(tmp_path / "home", SEQQ_MLFLOW_URI=DEAD_MLFLOW)
    started = time.monotonic()
    done = seqq(["run", "--data", str(CORPUS)], env)
    assert time.monotonic() - started < 10
    assert done.returncode == 3
    line = one_line_error(done)
    assert DEAD_MLFLOW in line and "mlflow server" in line


def test_status_of_unknown_job_is_a_one_line_error(tmp_path: Path) -> None:
    env = base_env(tmp_path / "home", SEQQ_MLFLOW_URI=f"sqlite:///{tmp_path / 'mlflow.db'}")
    done = seqq(["status", "0" * 32], env)
    assert done.returncode == 4
    assert "no such job" in one_line_error(done)
