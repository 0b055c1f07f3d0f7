"""Queues, priorities and the live worker view, against a real Redis and real workers."""

from __future__ import annotations

from pathlib import Path

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
        ended = ("FINISHED", "FAILED", "KILLED")
        wait_until(
            lambda: all(client.get_run(j).info.status in ended for j in [high, *low]),
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
