"""Outages of the services a job depends on, and the death of a whole worker machine."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

from shared import names
from tests.helpers import Service, free_port, seqq_json, start_mlflow_server, wait_for_port
from tests.integration.conftest import start_worker
from tests.integration.test_reliability import (
    MEDIUM,
    TIMED,
    assert_clean_curves,
    celery,
    mlflow,
    wait_for_step,
    wait_status,
)


def test_a_redis_restart_mid_job_does_not_stop_the_job(env: dict[str, str], tmp_path: Path) -> None:
    port = free_port()
    argv = [
        "redis-server",
        "--port",
        str(port),
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--appendonly",
        "no",
    ]
    redis = Service(argv, tmp_path / "redis.log")
    wait_for_port(port)
    env = {**env, "SEQQ_BROKER_URL": f"redis://127.0.0.1:{port}/0"}
    worker = start_worker(env, tmp_path)
    try:
        job_id = seqq_json(["submit", *TIMED], env)["job_id"]
        wait_for_step(celery(env), job_id, 40)
        redis.stop()
        redis.start()
        wait_for_port(port)
        assert wait_status(env, job_id) == "FINISHED", worker.log()
        client = mlflow(env)
        last_logged = client.get_metric_history(job_id, names.METRIC_TRAIN_LOSS)[-1].step
        assert int(client.get_run(job_id).data.tags[names.TAG_STEPS]) == last_logged > 40
        assert_clean_curves(env, job_id)
    finally:
        worker.stop()
        redis.stop()


def test_mlflow_down_for_30_seconds_mid_job_loses_no_metric(
    env: dict[str, str], tmp_path: Path
) -> None:
    server, port = start_mlflow_server(tmp_path)
    env = {**env, "SEQQ_MLFLOW_URI": f"http://127.0.0.1:{port}"}
    worker = start_worker(env, tmp_path)
    try:
        job_id = seqq_json(["submit", *MEDIUM], env)["job_id"]
        wait_for_step(celery(env), job_id, 40)
        server.stop()
        outage_end = time.monotonic() + 30
        # The outage itself is the scenario: training goes on while nothing answers.
        while time.monotonic() < outage_end:
            time.sleep(1)
        server.start()
        wait_for_port(port, timeout=120)
        assert wait_status(env, job_id, timeout=600) == "FINISHED", worker.log()
        client = mlflow(env)
        val_steps = [m.step for m in client.get_metric_history(job_id, names.METRIC_VAL_LOSS)]
        assert val_steps == list(range(0, 501, 25))
        train_steps = [m.step for m in client.get_metric_history(job_id, names.METRIC_TRAIN_LOSS)]
        # Logged every log_every (10) steps and at every checkpoint (25).
        assert train_steps == sorted(set(range(10, 501, 10)) | set(range(25, 501, 25)))
        folders = {a.path.rsplit("/", 1)[-1] for a in client.list_artifacts(job_id, "checkpoints")}
        steps = {names.checkpoint_dir_name(step) for step in range(25, 500, 25)}
        assert folders == {*steps, names.FINAL_CHECKPOINT, names.BEST_CHECKPOINT}
    finally:
        worker.stop()
        server.stop()


def test_a_whole_worker_killed_mid_job_is_reaped_and_resumed_elsewhere(
    env: dict[str, str], tmp_path: Path
) -> None:
    from tests.helpers import SEQQ

    doomed = start_worker(env, tmp_path, "doomed")
    job_id = seqq_json(["submit", *TIMED], env)["job_id"]
    wait_for_step(celery(env), job_id, 60)
    os.killpg(doomed.proc.pid, signal.SIGKILL)  # the machine dies: main process and pool
    doomed.stop()
    assert mlflow(env).get_run(job_id).info.status == "RUNNING"

    scheduler = Service([SEQQ, "scheduler"], tmp_path / "scheduler.log", env=env)
    rescuer = start_worker(env, tmp_path, "rescuer")
    try:
        assert wait_status(env, job_id, timeout=300) == "FINISHED", rescuer.log()
    finally:
        rescuer.stop()
        scheduler.stop()
    run = mlflow(env).get_run(job_id)
    assert int(run.data.tags[names.TAG_REQUEUES]) >= 1
    assert int(run.data.tags[names.TAG_RESUMES]) >= 1
    assert_clean_curves(env, job_id)
