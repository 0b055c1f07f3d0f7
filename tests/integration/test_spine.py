"""The spine, end to end with real components: CLI -> Redis -> worker process -> MLflow."""

from __future__ import annotations

from pathlib import Path

from shared.state import TERMINAL
from tests.helpers import TINY, Worker, seqq, seqq_json
from tests.integration.checks import assert_finished_job


def test_submitted_lstm_job_trains_on_a_worker_and_lands_finished_in_mlflow(
    env: dict[str, str], worker: Worker, tracking_uri: str, tmp_path: Path
) -> None:
    job = seqq_json(["submit", "--model", "lstm", *TINY, "--wait"], env)
    assert job["status"] == "FINISHED", worker.log()
    assert_finished_job(
        tracking_uri, job["job_id"], tmp_path, {"model.cell": "lstm", "model.hidden_size": "32"}
    )
    assert job["worker"]  # the run records which worker trained it
    assert job["best_step"] is not None and job["test_loss_best"] is not None

    # `seqq sample` takes the best checkpoint unless told otherwise, and says so on stderr.
    args = ["sample", job["job_id"], "--length", "40", "--seed", "3"]
    default, best = seqq(args, env), seqq([*args, "--checkpoint", "best"], env)
    assert default.returncode == 0, default.stderr
    assert f"checkpoint best (step {job['best_step']})" in default.stderr
    assert default.stdout == best.stdout


def test_submit_without_wait_prints_the_job_and_status_follows_it_to_the_end(
    env: dict[str, str], worker: Worker, tracking_uri: str, tmp_path: Path
) -> None:
    from tests.helpers import wait_until

    submitted = seqq_json(["submit", "--model", "rnn", *TINY, "--embedding-dim", "0"], env)
    job_id = submitted["job_id"]
    assert submitted["queue"] == "cpu" and job_id in submitted["url"]

    def finished() -> dict | None:
        state = seqq_json(["status", job_id], env)
        return state if state["status"] in TERMINAL else None

    final = wait_until(finished, 180, "the rnn job to end", interval=1.0)
    assert final["status"] == "FINISHED", final
    assert_finished_job(
        tracking_uri, job_id, tmp_path, {"model.cell": "rnn", "model.embedding_dim": "0"}
    )

    listed = seqq_json(["list"], env)
    assert [j["job_id"] for j in listed] == [job_id]
    assert listed[0]["model"] == "rnn" and listed[0]["val_loss"] == final["val_loss"]


def test_seqq_run_trains_here_without_a_broker_through_the_same_job(
    env: dict[str, str], tracking_uri: str, tmp_path: Path
) -> None:
    no_broker = {**env, "SEQQ_BROKER_URL": "redis://127.0.0.1:1/0"}
    done = seqq(["run", "--model", "gru", *TINY, "--json"], no_broker)
    assert done.returncode == 0, done.stderr
    import json

    outcome = json.loads(done.stdout)
    assert outcome["status"] == "FINISHED" and outcome["step"] == 80
    assert_finished_job(tracking_uri, outcome["job_id"], tmp_path, {"model.cell": "gru"})
