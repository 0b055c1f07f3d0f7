"""Tests for scheduler/sweep.py: the local sweep driver and `seqq sweep status`, against a real
journal study and a real MLflow SQLite store. The trials' jobs are stand-ins that report scripted
losses through the real `worker.trial.TrialReporter` (the real job is tested in test_trial.py
and end to end in tests/integration/test_sweep_local.py)."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from scheduler import sweep as sweeps
from shared import names
from shared.errors import DataError, SpecError, SweepNotFoundError
from shared.settings import Settings
from shared.space import parse_sweep
from shared.spec import TrainSpec
from shared.state import JobState, TrialState
from shared.study import journal_path, open_study, trial_state
from tests.helpers import base_env, seqq
from worker.trial import TrialReporter

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
GOOD, BAD = 0.01, 1e-5
Losses = Callable[[TrainSpec], list[float]]


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(home=tmp_path / "home", mlflow_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")


@pytest.fixture
def corpus(text_file: Any) -> Path:
    return text_file("".join(f"line {i}: the quick brown fox jumps.\n" for i in range(600)))


def _plan(corpus: Path, space: dict[str, Any], **settings: Any) -> Any:
    base = {"data": {"dataset": str(corpus)}, "run": {"eval_every": 10, "experiment": "sw"}}
    return parse_sweep({**base, "space": space, "sweep": {"seed": 0, **settings}})


def by_lr(spec: TrainSpec) -> list[float]:
    """A good learning rate learns; a tiny one barely moves."""
    return [4.0, 2.0, 1.5, 1.2] if spec.optim.lr == GOOD else [4.0, 3.9, 3.8, 3.7]


def stand_in(settings: Settings, losses: Losses = by_lr, tell: bool = True) -> Any:
    """A trial's job as the sweep sees it: a child run whose evaluations go to the study."""
    from mlflow import MlflowClient

    client = MlflowClient(settings.tracking_uri)

    def train(spec: TrainSpec, parent: str, name: str) -> None:
        assert spec.trial is not None
        experiment_id = client.get_run(parent).info.experiment_id
        tags = {
            names.TAG_KIND: "job",
            "mlflow.parentRunId": parent,
            names.TAG_SWEEP_ID: spec.trial.sweep,
            names.TAG_TRIAL_NUMBER: str(spec.trial.number),
        }
        run_id = client.create_run(experiment_id, run_name=name, tags=tags).info.run_id
        client.log_param(run_id, "optim.lr", str(spec.optim.lr))
        reporter = TrialReporter.open(spec.trial, run_id, settings)
        status, step = JobState.FINISHED, 0
        for index, loss in enumerate(losses(spec)):
            step = index * 10
            client.log_metric(run_id, names.METRIC_VAL_LOSS, loss, step=step)
            reporter.report(step, loss)
            if step and reporter.should_prune():
                status = JobState.KILLED
                break
        state = reporter.ending(status)
        assert state is not None
        client.set_tag(run_id, names.TAG_STEPS, str(step))
        client.set_tag(run_id, names.TAG_TRIAL_STATE, state.value)
        if state == TrialState.PRUNED:
            client.set_tag(run_id, names.TAG_TRIAL_PRUNED_STEP, str(reporter.pruned_step))
        client.set_terminated(run_id, status)
        if tell:
            best = min(losses(spec)[: step // 10 + 1])
            reporter.end(state, best, None)

    return train


def _runs(settings: Settings, sweep_id: str) -> list[Any]:
    from mlflow import MlflowClient

    client = MlflowClient(settings.tracking_uri)
    parent = client.get_run(sweep_id)
    return client.search_runs(
        [parent.info.experiment_id], f"tags.`mlflow.parentRunId` = '{sweep_id}'"
    )


def test_a_local_sweep_ends_with_exactly_n_trials_each_a_child_run_and_the_best_on_the_parent(
    settings: Settings, corpus: Path
) -> None:
    from mlflow import MlflowClient

    plan = _plan(corpus, {"optim.lr": [GOOD, BAD]}, trials=5, sampler="random", pruner="asha")
    sweep_id = sweeps.run_local(plan, settings, stand_in(settings))

    record = sweeps.status(sweep_id, settings)
    assert record["status"] == "FINISHED" and len(record["trials"]) == 5
    assert len(_runs(settings, sweep_id)) == 5
    states = [row["state"] for row in record["trials"]]
    assert set(states) == {"COMPLETE", "PRUNED"}
    for row in record["trials"]:
        expected = by_lr(TrainSpec.model_validate({"optim": {"lr": row["values"]["optim.lr"]}}))
        assert row["best_val_loss"] == min(expected[: (row["steps"] // 10) + 1])
        if row["state"] == "PRUNED":
            assert row["values"]["optim.lr"] == BAD and row["pruned_step"] == row["steps"]
    best = record["best"]
    assert best["value"] == 1.2 and best["values"] == {"optim.lr": GOOD}

    client = MlflowClient(settings.tracking_uri)
    parent = client.get_run(sweep_id)
    assert parent.data.tags[names.TAG_KIND] == names.KIND_SWEEP
    assert parent.data.tags[names.TAG_SWEEP_ID] == sweep_id
    assert parent.data.tags[names.TAG_SWEEP_BEST_TRIAL] == str(best["number"])
    assert parent.data.tags[names.TAG_SWEEP_BEST_RUN] == best["run_id"]
    assert parent.data.metrics[names.METRIC_BEST_VAL_LOSS] == 1.2
    assert json.loads(parent.data.params["sweep.space"]) == {"optim.lr": [GOOD, BAD]}
    assert "optim.lr" not in parent.data.params  # searched: the base's value means nothing
    table = json.loads(Path(client.download_artifacts(sweep_id, names.ARTIFACT_TRIALS)).read_text())
    assert table["columns"][:2] == ["number", "state"] and len(table["data"]) == 5
    assert journal_path(sweep_id, settings).exists()


def test_a_sampled_spec_the_spec_refuses_ends_failed_with_the_reason_and_the_grid_goes_on(
    settings: Settings, corpus: Path
) -> None:
    # Each edge is fine beside the base's 0.05; 0.3 + 0.3 together is not.
    space = {"data.val_fraction": [0.1, 0.3], "data.test_fraction": [0.1, 0.3]}
    plan = _plan(corpus, space, trials=10, sampler="grid", pruner="none")
    sweep_id = sweeps.run_local(plan, settings, stand_in(settings, lambda spec: [3.0, 2.0]))

    record = sweeps.status(sweep_id, settings)
    assert record["trials_wanted"] == 4 and len(record["trials"]) == 4  # the grid, not 10
    (failed,) = [row for row in record["trials"] if row["state"] == "FAILED"]
    assert failed["values"] == {"data.val_fraction": 0.3, "data.test_fraction": 0.3}
    assert "must be below 0.5" in failed["error"] and failed["run_id"] is None
    assert len(_runs(settings, sweep_id)) == 3 and record["status"] == "FINISHED"


def test_a_trial_whose_job_did_not_tell_the_study_is_settled_from_its_run(
    settings: Settings, corpus: Path
) -> None:
    plan = _plan(corpus, {"optim.lr": [GOOD]}, trials=2, pruner="none")
    sweep_id = sweeps.run_local(plan, settings, stand_in(settings, tell=False))

    record = sweeps.status(sweep_id, settings)
    assert [row["state"] for row in record["trials"]] == ["COMPLETE", "COMPLETE"]
    assert [row["value"] for row in record["trials"]] == [1.2, 1.2]


def test_a_trial_refused_before_it_trains_fails_with_the_reason_and_the_sweep_goes_on(
    settings: Settings, corpus: Path
) -> None:
    def refused(spec: TrainSpec, parent: str, name: str) -> None:
        raise DataError("data.dataset: the corpus vanished")

    plan = _plan(corpus, {"optim.lr": [GOOD]}, trials=2)
    sweep_id = sweeps.run_local(plan, settings, refused)

    record = sweeps.status(sweep_id, settings)
    assert [row["state"] for row in record["trials"]] == ["FAILED", "FAILED"]
    assert record["trials"][0]["error"] == "data.dataset: the corpus vanished"
    assert record["status"] == "FAILED" and record["best"] is None


def test_ctrl_c_fails_the_running_trial_kills_the_parent_and_asks_no_more(
    settings: Settings, corpus: Path
) -> None:
    train = stand_in(settings, tell=False)
    calls = []

    def interrupted(spec: TrainSpec, parent: str, name: str) -> None:
        calls.append(name)
        if len(calls) == 2:
            assert spec.trial is not None
            TrialReporter.open(spec.trial, "0" * 32, settings).report(0, 4.0)
            raise KeyboardInterrupt
        train(spec, parent, name)

    plan = _plan(corpus, {"optim.lr": [GOOD]}, trials=5, pruner="none")
    with pytest.raises(KeyboardInterrupt):
        sweeps.run_local(plan, settings, interrupted)

    assert calls == ["trial-0", "trial-1"]
    (parent,) = [r for r in _all_runs(settings) if r.data.tags.get(names.TAG_KIND) == "sweep"]
    assert parent.info.status == "KILLED"
    study = open_study(parent.info.run_id, "file", settings).study
    assert [trial_state(t) for t in study.get_trials()] == [TrialState.COMPLETE, TrialState.FAILED]


def _all_runs(settings: Settings) -> list[Any]:
    from mlflow import MlflowClient

    client = MlflowClient(settings.tracking_uri)
    ids = [e.experiment_id for e in client.search_experiments()]
    return client.search_runs(ids)


def test_flags_override_the_sweep_files_settings_and_are_checked_with_it(tmp_path: Path) -> None:
    path = tmp_path / "sweep.yaml"
    path.write_text("space:\n  optim.lr: {log: [1.0e-4, 1.0e-2]}\nsweep: {trials: 9}\n")
    plan = sweeps.load(path, {"trials": 3, "sampler": "random", "pruner": None})
    assert (plan.sweep.trials, plan.sweep.sampler, plan.sweep.pruner) == (3, "random", "asha")
    with pytest.raises(SpecError, match=r"space\.optim\.lr: the grid sampler needs"):
        sweeps.load(path, {"sampler": "grid"})
    with pytest.raises(SpecError, match=r"sweep\.pruner"):
        sweeps.load(path, {"pruner": "hyperband"})


def test_status_of_an_unknown_sweep_or_of_a_lone_job_is_not_found(settings: Settings) -> None:
    from mlflow import MlflowClient

    client = MlflowClient(settings.tracking_uri)
    job = client.create_run(client.create_experiment("x"), tags={names.TAG_KIND: "job"})
    with pytest.raises(SweepNotFoundError, match="not a sweep"):
        sweeps.status(job.info.run_id, settings)
    with pytest.raises(SweepNotFoundError, match="no such sweep") as info:
        sweeps.status("0" * 32, settings)
    assert info.value.exit_code == 4


# The real `seqq` command: bad input is one line with its exit code, and leaves nothing.


def test_a_bad_sweep_file_is_one_line_naming_the_field_exit_2_and_creates_nothing(
    tmp_path: Path,
) -> None:
    path = tmp_path / "sweep.yaml"
    path.write_text("space:\n  optim.lr: {log: [0.0, 1.0e-2]}\n  model.hiden: [1]\n")
    env = base_env(tmp_path / "home", SEQQ_MLFLOW_URI=f"sqlite:///{tmp_path / 'mlflow.db'}")
    done = seqq(["sweep", "-f", str(path), "--local", "--trials", "2"], env)
    assert done.returncode == 2
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in done.stderr
    assert "space.optim.lr" in lines[0] and "space.model.hiden" in lines[0]
    assert not (tmp_path / "mlflow.db").exists() and not (tmp_path / "home").exists()

    done = seqq(["sweep", "-f", str(path), "--local", "--sampler", "annealing"], env)
    assert done.returncode == 2 and "sweep.sampler" in done.stderr


def test_a_queue_sweep_without_a_broker_is_one_line_with_exit_3_and_creates_nothing(
    tmp_path: Path,
) -> None:
    path = tmp_path / "sweep.yaml"
    path.write_text("space:\n  optim.lr: [0.01]\n")
    env = base_env(
        tmp_path / "home",
        SEQQ_MLFLOW_URI=f"sqlite:///{tmp_path / 'mlflow.db'}",
        SEQQ_BROKER_URL="redis://127.0.0.1:1/0",  # nothing listens on port 1
    )
    done = seqq(["sweep", "-f", str(path)], env)
    assert done.returncode == 3, done.stderr
    (line,) = done.stderr.strip().splitlines()
    assert "redis://127.0.0.1:1" in line
    assert not (tmp_path / "mlflow.db").exists()


def test_sweep_status_of_an_unknown_sweep_is_one_line_with_exit_4(tmp_path: Path) -> None:
    env = base_env(tmp_path / "home", SEQQ_MLFLOW_URI=f"sqlite:///{tmp_path / 'mlflow.db'}")
    done = seqq(["sweep", "status", "0" * 32], env)
    assert done.returncode == 4, done.stderr
    assert "no such sweep" in done.stderr and len(done.stderr.strip().splitlines()) == 1


def test_the_sweep_command_and_driver_import_neither_optuna_torch_nor_mlflow() -> None:
    import subprocess
    import sys

    code = (
        "import sys, scheduler.cli.sweep, scheduler.sweep, shared.study\n"
        "print(sorted({'optuna', 'torch', 'mlflow'} & set(sys.modules)))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
