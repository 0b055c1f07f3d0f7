"""Queues, priorities and the live worker view, against a real Redis and real workers."""

from __future__ import annotations

import os
from pathlib import Path

from shared import names
from shared.state import TERMINAL
from tests.helpers import TINY, seqq, seqq_json, wait_until
from tests.integration.conftest import start_worker


def test_queue_shows_waiting_jobs_and_workers_drain_high_priority_first(
    env: dict[str, str], tracking_uri: str, tmp_path: Path
) -> None:
    from mlflow import MlflowClient

    low = [seqq_json(["submit", *TINY, "--priority", "low"], env)["job_id"] for _ in range(2)]
    high = seqq_json(["submit", *TINY, "--priority", "high"], env)["job_id"]
    waiting = seqq_json(["queue"], env)
    assert waiting["cpu.low"]["waiting"] == 2 and set(waiting["cpu.low"]["next"]) == set(low)
    assert waiting["cpu.high"] == {"waiting": 1, "next": [high]}
    assert waiting["cpu"]["waiting"] == 0
    assert seqq_json(["workers"], env) == []

    worker = start_worker(env, tmp_path)
    try:
        client = MlflowClient(tracking_uri)
        wait_until(
            lambda: all(client.get_run(j).info.status in TERMINAL for j in [high, *low]),
            300,
            "all three jobs to end",
            interval=1.0,
        )
        assert all(client.get_run(j).info.status == "FINISHED" for j in [high, *low])
        first_metric = {
            j: client.get_metric_history(j, "train_loss")[0].timestamp for j in [high, *low]
        }
        assert min(first_metric, key=lambda j: first_metric[j]) == high, first_metric
        live = seqq_json(["workers"], env)
        assert [w["name"] for w in live] == ["worker@test"]
        assert live[0]["queues"] == ["cpu.high", "cpu", "cpu.low"]
        assert live[0]["jobs_done"] == 3 and live[0]["job"] is None
        assert seqq_json(["queue"], env)["cpu.low"]["waiting"] == 0
    finally:
        worker.stop()
    gone = seqq(["workers", "--json"], env)
    assert gone.returncode == 0 and gone.stdout.strip() == "[]", "a stopped worker withdraws"


def test_a_worker_with_two_cpu_slots_gives_each_of_two_concurrent_jobs_half_the_cores(
    env: dict[str, str], tracking_uri: str, tmp_path: Path
) -> None:
    from mlflow import MlflowClient

    # Both jobs wait in the queue before the worker starts, so its two pool processes take one
    # each at once; 400 steps (a few seconds) outlast the skew of their start-ups (~0.5 s).
    longer = [*TINY, "--max-steps", "400", "--eval-every", "100", "--checkpoint-every", "200"]
    jobs = [seqq_json(["submit", *longer], env)["job_id"] for _ in range(2)]
    worker = start_worker(env, tmp_path, "pair", ("--cpus", "2"))
    try:
        client = MlflowClient(tracking_uri)
        wait_until(
            lambda: all(client.get_run(j).info.status in TERMINAL for j in jobs),
            300,
            "both jobs to end",
            interval=1.0,
        )
    finally:
        worker.stop()
    runs = [client.get_run(j) for j in jobs]
    assert [r.info.status for r in runs] == ["FINISHED", "FINISHED"], worker.log()[-3000:]
    share = max(1, len(os.sched_getaffinity(0)) // 2)
    assert [r.data.tags[names.TAG_TORCH_THREADS] for r in runs] == [str(share)] * 2
    assert all(f"{share} threads" in r.data.tags[names.TAG_DEVICE] for r in runs)
    # They trained at the same time: each one's first step came before the other's last.
    steps = [client.get_metric_history(j, names.METRIC_TRAIN_LOSS) for j in jobs]
    spans = [(min(m.timestamp for m in s), max(m.timestamp for m in s)) for s in steps]
    assert max(start for start, _ in spans) < min(end for _, end in spans), spans


def test_flower_on_the_same_broker_sees_the_worker_and_its_job(
    env: dict[str, str], tmp_path: Path
) -> None:
    import json
    import sys
    import urllib.request

    from tests.helpers import Service, free_port, wait_for_port

    port = free_port()
    flower = Service(
        [
            str(Path(sys.executable).parent / "celery"),
            "-A",
            "worker.tasks",
            "flower",
            f"--port={port}",
            "--address=127.0.0.1",
        ],
        tmp_path / "flower.log",
        # Flower 2 serves its JSON API only with auth, or with this set (a test on localhost).
        env={**env, "FLOWER_UNAUTHENTICATED_API": "true"},
    )

    def api(path: str) -> object:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as reply:
            return json.loads(reply.read())

    worker = start_worker(env, tmp_path)
    try:
        wait_for_port(port, timeout=120)
        job = seqq_json(["submit", *TINY, "--max-steps", "20", "--wait"], env)
        assert job["status"] == "FINISHED"
        wait_until(
            lambda: "worker@test" in api("/api/workers?refresh=1"), 60, "flower to list the worker"
        )
        task = wait_until(
            lambda: api("/api/tasks").get(job["job_id"]), 60, "flower to show the job's task"
        )
        assert task["name"] == "seqq.train" and task["state"] == "SUCCESS", task
    finally:
        worker.stop()
        flower.stop()
