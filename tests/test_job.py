"""Tests for worker.job.run_job's stand-downs, against a real MLflow SQLite store.

A copy of a job that has no run, or whose run already ended, does nothing and says so with
one state, STOOD_DOWN, which the Celery task turns into "ignore this delivery".
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from shared.settings import Settings
from shared.state import JobState
from worker.job import run_job

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")


class NeverStop:
    def progress(self, info: dict) -> None:
        pass

    def stop_reason(self) -> None:
        return None


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(home=tmp_path, mlflow_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")


def test_a_job_whose_run_already_ended_stands_down_and_leaves_the_run_alone(
    settings: Settings,
) -> None:
    from mlflow import MlflowClient

    client = MlflowClient(settings.tracking_uri)
    run_id = client.create_run(client.create_experiment("ended")).info.run_id
    client.set_terminated(run_id, JobState.KILLED)

    outcome = run_job(run_id, {}, NeverStop(), settings)

    assert outcome.status == JobState.STOOD_DOWN and outcome.error == "already KILLED"
    assert client.get_run(run_id).info.status == JobState.KILLED
    assert outcome.as_dict()["status"] == "STOOD_DOWN"


def test_a_job_with_no_run_stands_down(settings: Settings) -> None:
    outcome = run_job("0" * 32, {}, NeverStop(), settings)

    assert outcome.status == JobState.STOOD_DOWN and outcome.error == "no such run"
