"""Tests for scheduler.jobs.close_orphaned_local_runs against a real MLflow SQLite store.

A `seqq run` that dies (SIGKILL, closed terminal) cannot end its own run; the next `seqq run` on
the same host does, whether the dead process had begun training (RUNNING) or not (SCHEDULED).
Runs of live processes, of other hosts and of queued jobs are left alone.
"""

from __future__ import annotations

import os
import socket
import subprocess
from pathlib import Path

import pytest

from scheduler.jobs import close_orphaned_local_runs, process_identity
from shared import names

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")


@pytest.fixture
def client(tmp_path: Path):
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")


@pytest.fixture(scope="module")
def dead_owner() -> str:
    """The identity of a process that has exited."""
    child = subprocess.Popen(["sleep", "60"])
    identity = process_identity(child.pid)  # read while it lives
    child.kill()
    child.wait()
    return identity


def make_run(
    client, status: str, owner: str, queue: str = names.QUEUE_LOCAL, host: str = ""
) -> str:
    experiment = client.get_experiment_by_name("local")
    experiment_id = experiment.experiment_id if experiment else client.create_experiment("local")
    run = client.create_run(
        experiment_id,
        tags={
            names.TAG_KIND: "job",
            names.TAG_QUEUE: queue,
            names.TAG_WORKER_HOST: host or socket.gethostname(),
            names.TAG_LOCAL_OWNER: owner,
        },
    )
    client.update_run(run.info.run_id, status=status)
    return run.info.run_id


def test_a_dead_owners_runs_are_failed_with_the_reason_whether_training_began_or_not(
    client, dead_owner: str
) -> None:
    running = make_run(client, "RUNNING", dead_owner)
    scheduled = make_run(client, "SCHEDULED", dead_owner)

    assert sorted(close_orphaned_local_runs(client)) == sorted([running, scheduled])
    pid = dead_owner.partition(":")[0]
    for run_id in (running, scheduled):
        run = client.get_run(run_id)
        assert run.info.status == "FAILED"
        assert run.info.end_time is not None
        assert f"pid {pid}" in run.data.tags[names.TAG_ERROR]
    assert close_orphaned_local_runs(client) == []  # nothing twice


def test_live_owners_other_hosts_and_queued_jobs_are_left_alone(client, dead_owner: str) -> None:
    mine = make_run(client, "RUNNING", process_identity(os.getpid()))
    elsewhere = make_run(client, "RUNNING", dead_owner, host="another-host")
    queued = make_run(client, "SCHEDULED", dead_owner, queue="cpu")

    assert close_orphaned_local_runs(client) == []
    assert client.get_run(mine).info.status == "RUNNING"
    assert client.get_run(elsewhere).info.status == "RUNNING"
    assert client.get_run(queued).info.status == "SCHEDULED"


def test_a_recycled_pid_is_not_mistaken_for_the_owner(client) -> None:
    pid, start = process_identity(os.getpid()).split(":")
    impostor = f"{pid}:{int(start) + 1}"  # same pid, another start time: a different process
    run_id = make_run(client, "RUNNING", impostor)

    assert close_orphaned_local_runs(client) == [run_id]
