"""Nothing lost: worker deaths, duplicate deliveries, shutdowns, cancels, NaN, hostile input.

Each test injects a real fault into real processes and asserts the end state in MLflow (one
run, its status, its metric steps) and in Redis.
"""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Collection
from pathlib import Path
from typing import Any

import pytest

from shared import names
from shared.state import TERMINAL
from tests.helpers import CORPUS, Worker, pool_children, seqq, seqq_json, wait_until
from tests.integration.checks import assert_best_checkpoint
from tests.integration.conftest import start_worker

# Long enough to interrupt mid-way (~20 s on 2 idle cores), checkpoints every 25 steps.
MEDIUM = [
    "--data",
    str(CORPUS),
    "--model",
    "lstm",
    "--hidden-size",
    "96",
    "--num-layers",
    "1",
    "--embedding-dim",
    "16",
    "--seq-len",
    "64",
    "--batch-size",
    "32",
    "--max-steps",
    "500",
    "--eval-every",
    "25",
    "--checkpoint-every",
    "25",
    "--sample-every",
    "1000",
    "--lr",
    "0.01",
]
# Runs for a fixed 15 s of training on any host (500 steps took 2.3 s on a fast day, too short
# for a duplicate delivery to find the job still running).
TIMED = [
    *(
        "1000000" if prev == "--max-steps" else arg
        for prev, arg in zip(["", *MEDIUM[:-1]], MEDIUM, strict=True)
    ),
    "--time-budget",
    "15s",
]


def mlflow(env: dict[str, str]) -> Any:
    from mlflow import MlflowClient

    return MlflowClient(env["SEQQ_MLFLOW_URI"])


def celery(env: dict[str, str]) -> Any:
    from shared.celery_app import make_app
    from shared.settings import Settings

    return make_app(Settings(broker_url=env["SEQQ_BROKER_URL"]))


def live_step(app: Any, job_id: str) -> int:
    info = app.AsyncResult(job_id).info
    return int(info.get("step") or 0) if isinstance(info, dict) else 0


def wait_for_step(app: Any, job_id: str, step: int, timeout: float = 120) -> None:
    wait_until(lambda: live_step(app, job_id) >= step, timeout, f"job to reach step {step}")


def wait_status(
    env: dict[str, str], job_id: str, statuses: Collection[str] = TERMINAL, timeout: float = 180
) -> str:
    client = mlflow(env)
    return str(
        wait_until(
            lambda: (s := client.get_run(job_id).info.status) in statuses and s,
            timeout,
            f"job {job_id} to be {'/'.join(sorted(statuses))}",
        )
    )


def assert_clean_curves(env: dict[str, str], job_id: str) -> None:
    """Every metric's steps strictly increase: no overlap, no split after a resume."""
    client = mlflow(env)
    for key in (names.METRIC_VAL_LOSS, names.METRIC_TRAIN_LOSS, names.METRIC_LR):
        steps = [m.step for m in client.get_metric_history(job_id, key)]
        assert steps == sorted(steps) and len(steps) == len(set(steps)), (key, steps)


def submit(env: dict[str, str], *args: str) -> str:
    """A job that is interrupted mid-way: 15 s of training, whatever the host's speed."""
    return str(seqq_json(["submit", *TIMED, *args], env)["job_id"])


def test_sigkill_of_the_training_process_resumes_in_the_same_run(
    env: dict[str, str], worker: Worker, tmp_path: Path
) -> None:
    app = celery(env)
    job_id = submit(env)
    wait_for_step(app, job_id, 60)
    children = pool_children(worker.proc.pid)
    assert len(children) == 1
    os.kill(children[0], signal.SIGKILL)

    assert wait_status(env, job_id) == "FINISHED", worker.log()
    run = mlflow(env).get_run(job_id)
    assert int(run.data.tags[names.TAG_RESUMES]) >= 1
    last_logged = mlflow(env).get_metric_history(job_id, names.METRIC_TRAIN_LOSS)[-1].step
    assert int(run.data.tags[names.TAG_STEPS]) == last_logged > 60
    assert_clean_curves(env, job_id)
    experiment_runs = mlflow(env).search_runs([run.info.experiment_id])
    assert [r.info.run_id for r in experiment_runs] == [job_id]
    # The best checkpoint is the lowest validation loss of the whole history, before the kill
    # or after it, rebuilt from the file.
    assert_best_checkpoint(env["SEQQ_MLFLOW_URI"], job_id, tmp_path / "check")


def test_a_second_delivery_of_a_running_job_stands_down(
    env: dict[str, str], tmp_path: Path
) -> None:
    # A lease long enough that a heartbeat delayed by a busy 2-core CI machine cannot lapse: with
    # the suite's 3 s TTL, a 2 s stall of the holder let the duplicate take the job over, which is
    # right for a dead holder but is not what this test is about.
    env = {**env, "SEQQ_LEASE_TTL": "10"}
    first = start_worker(env, tmp_path, "first")
    second = start_worker(env, tmp_path, "second")
    logs = lambda: first.log() + second.log()  # noqa: E731
    try:
        app = celery(env)
        job_id = submit(env)
        wait_for_step(app, job_id, 30)
        spec_path = mlflow(env).download_artifacts(job_id, names.ARTIFACT_SPEC, str(tmp_path))
        spec = json.loads(Path(spec_path).read_text())
        app.send_task(
            names.TASK_TRAIN, kwargs={"job_id": job_id, "spec": spec}, task_id=job_id, queue="cpu"
        )
        try:
            wait_until(lambda: "stands down" in logs(), 60, "the duplicate to stand down")
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{logs()[-6000:]}") from None
        assert wait_status(env, job_id) == "FINISHED"
        run = mlflow(env).get_run(job_id)
        assert names.TAG_RESUMES not in run.data.tags, "no second trainer ever took the job over"
        assert_clean_curves(env, job_id)
    finally:
        first.stop()
        second.stop()


def test_sigterm_checkpoints_hands_the_job_back_and_another_worker_finishes_it(
    env: dict[str, str], tmp_path: Path
) -> None:
    first = start_worker(env, tmp_path, "first")
    app = celery(env)
    job_id = submit(env)
    wait_for_step(app, job_id, 60)
    stopped_at = time.monotonic()
    os.kill(first.proc.pid, signal.SIGTERM)  # like `docker stop`: the main process only
    first.proc.wait(timeout=60)
    assert time.monotonic() - stopped_at < 30, "the worker exits promptly"
    first.stop()
    client = mlflow(env)
    assert client.get_run(job_id).info.status == "SCHEDULED"
    checkpoints = [a.path for a in client.list_artifacts(job_id, names.ARTIFACT_CHECKPOINTS)]
    assert checkpoints, "a checkpoint was taken on the way out"

    second = start_worker(env, tmp_path, "second")
    try:
        assert wait_status(env, job_id) == "FINISHED", second.log()
    finally:
        second.stop()
    run = client.get_run(job_id)
    assert int(run.data.tags[names.TAG_RESUMES]) == 1
    assert_clean_curves(env, job_id)


def test_cancel_of_a_queued_job_means_it_never_starts(env: dict[str, str], tmp_path: Path) -> None:
    job_id = submit(env)
    done = seqq(["cancel", job_id], env)
    assert done.returncode == 0 and "KILLED" in done.stdout
    assert mlflow(env).get_run(job_id).info.status == "KILLED"
    late = start_worker(env, tmp_path, "late")
    try:
        wait_until(
            lambda: job_id in late.log() and "standing down" in late.log(),
            60,
            "the worker to skip it",
        )
    finally:
        late.stop()
    run = mlflow(env).get_run(job_id)
    assert run.info.status == "KILLED"
    assert names.METRIC_TRAIN_LOSS not in run.data.metrics


def test_cancel_of_a_running_job_ends_it_killed_within_5_seconds_with_a_checkpoint(
    env: dict[str, str], worker: Worker
) -> None:
    app = celery(env)
    job_id = submit(env)
    wait_for_step(app, job_id, 40)
    asked = time.monotonic()
    assert seqq(["cancel", job_id], env).returncode == 0
    assert wait_status(env, job_id, timeout=30) == "KILLED"
    assert time.monotonic() - asked < 5 + 2  # the CLI's own start-up is the 2 s margin
    client = mlflow(env)
    run = client.get_run(job_id)
    stopped = int(run.data.tags[names.TAG_STEPS])
    assert 40 <= stopped < 1_000_000
    folders = [
        a.path.rsplit("/", 1)[-1] for a in client.list_artifacts(job_id, names.ARTIFACT_CHECKPOINTS)
    ]
    assert names.checkpoint_dir_name(stopped) in folders


def test_a_diverging_job_fails_with_the_reason_keeps_its_last_good_checkpoint_and_is_not_retried(
    env: dict[str, str], worker: Worker, tmp_path: Path
) -> None:
    spec = tmp_path / "diverge.yaml"
    spec.write_text("optim:\n  weight_decay: 1.0\n")
    args = ["submit", "-f", str(spec), "--lr", "10000", *MEDIUM[:-2]]
    done = seqq([*args, "--checkpoint-every", "2", "--wait", "--json"], env)
    assert done.returncode == 1, "--wait exits non-zero when the job fails"
    job = json.loads(done.stdout)
    assert job["status"] == "FAILED"
    assert "non-finite" in job["error"] or "nan" in job["error"]
    client = mlflow(env)
    folders = [
        a.path.rsplit("/", 1)[-1]
        for a in client.list_artifacts(job["job_id"], names.ARTIFACT_CHECKPOINTS)
    ]
    assert folders, "the last good checkpoint is kept"
    from worker import checkpoint

    newest = max(folders)
    path = client.download_artifacts(
        job["job_id"], f"checkpoints/{newest}/checkpoint.pt", str(tmp_path)
    )
    import torch

    state = checkpoint.load(Path(path))["model_state"]
    assert all(bool(torch.isfinite(t).all()) for t in state.values())
    # Not retried: the worker logs exactly one run of this task.
    assert worker.log().count(f"Task seqq.train[{job['job_id']}] received") == 1


@pytest.mark.parametrize("content_type", ["pickle"])
def test_hostile_messages_are_rejected_and_the_worker_keeps_serving(
    env: dict[str, str], worker: Worker, tmp_path: Path, content_type: str
) -> None:
    from celery import Celery

    marker = tmp_path / "executed"

    def send(name: str, serializer: str = "json", **kwargs: Any) -> None:
        sender = Celery("hostile", broker=env["SEQQ_BROKER_URL"])
        sender.conf.update(task_serializer=serializer, accept_content=[serializer])
        sender.send_task(name, queue="cpu", **kwargs)

    # A pickle payload that would create a file if it were ever unpickled.
    send(names.TASK_TRAIN, content_type, args=[Exploit(str(marker))])
    send(names.TASK_TRAIN, kwargs={"job_id": "../../etc", "spec": "x"})  # wrong schema
    send(names.TASK_TRAIN, kwargs={"nope": 1})  # wrong arguments
    send("os.system", args=["touch " + str(marker)])  # unknown task name
    send(names.TASK_TRAIN, kwargs={"job_id": "0" * 32, "spec": {"x": "y" * 5_000_000}})  # huge

    wait_until(
        lambda: "unregistered task" in worker.log().lower(), 60, "the unknown task to be refused"
    )
    wait_until(lambda: "Refusing to deserialize" in worker.log(), 60, "the pickle to be refused")
    wait_until(
        lambda: "rejected malformed seqq.train message" in worker.log(), 60, "bad schema refused"
    )
    assert not marker.exists()
    # Still serving: a real job completes afterwards.
    job = seqq_json(
        ["submit", *MEDIUM[:-12], "--max-steps", "20", "--eval-every", "10", "--wait"], env
    )
    assert job["status"] == "FINISHED"
    assert worker.proc.poll() is None


class Exploit:
    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        return (os.system, (f"touch {self.path}",))


def test_a_worker_refuses_a_local_path_outside_its_data_roots(
    env: dict[str, str], worker: Worker
) -> None:
    from shared.spec import TrainSpec

    client = mlflow(env)
    experiment = client.create_experiment("roots")
    run = client.create_run(experiment, tags={names.TAG_KIND: "job"})
    spec = TrainSpec.model_validate({"data": {"dataset": "/etc/passwd", "seq_len": 4}})
    celery(env).send_task(
        names.TASK_TRAIN,
        kwargs={"job_id": run.info.run_id, "spec": spec.model_dump(mode="json")},
        task_id=run.info.run_id,
        queue="cpu",
    )
    assert wait_status(env, run.info.run_id) == "FAILED"
    assert "SEQQ_DATA_ROOTS" in client.get_run(run.info.run_id).data.tags[names.TAG_ERROR]


def test_a_killed_seqq_run_leaves_no_run_running_once_seqq_run_is_used_again(
    env: dict[str, str], tmp_path: Path
) -> None:
    import subprocess

    from tests.helpers import SEQQ, TINY

    client = mlflow(env)
    log = (tmp_path / "killed-run.log").open("wb")
    killed = subprocess.Popen(
        [SEQQ, "run", *MEDIUM, "--max-steps", "100000", "--experiment", "embedded"],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )

    def running() -> str | None:
        if killed.poll() is not None:
            raise AssertionError((tmp_path / "killed-run.log").read_text())
        experiment = client.get_experiment_by_name("embedded")
        if experiment is None:
            return None
        runs = client.search_runs([experiment.experiment_id], "attributes.status = 'RUNNING'")
        # training, not the moment between MLflow's create_run (RUNNING) and SCHEDULED
        training = [r for r in runs if names.METRIC_TRAIN_LOSS in r.data.metrics]
        return training[0].info.run_id if training else None

    orphan = wait_until(running, 120, "the embedded run to log a training loss")
    os.killpg(killed.pid, signal.SIGKILL)
    killed.wait(timeout=10)
    log.close()
    assert client.get_run(orphan).info.status == "RUNNING"  # nobody could close it

    done = seqq(["run", *TINY, "--max-steps", "10", "--experiment", "embedded"], env)
    assert done.returncode == 0, done.stderr
    assert orphan in done.stderr  # said so, on stderr
    run = client.get_run(orphan)
    assert run.info.status == "FAILED"
    assert f"pid {killed.pid}" in run.data.tags[names.TAG_ERROR]


def test_a_worker_restarted_under_the_same_name_trains_instead_of_handing_jobs_back(
    env: dict[str, str], tmp_path: Path
) -> None:
    from tests.helpers import TINY

    first = start_worker(env, tmp_path)
    first.stop()  # a graceful stop announces the shutdown under the worker's name
    import redis

    assert redis.Redis.from_url(env["SEQQ_BROKER_URL"]).exists(names.shutdown_key("worker@test"))
    again = start_worker(env, tmp_path)
    try:
        job = seqq_json(["submit", *TINY, "--wait"], env)
    finally:
        again.stop()
    assert job["status"] == "FINISHED", again.log()[-3000:]
    run = mlflow(env).get_run(job["job_id"])
    assert names.TAG_RESUMES not in run.data.tags
    assert "handed back" not in again.log()
