"""Sweeps on the queue end to end: real Redis (broker and study), real `seqq worker` and
`seqq scheduler` processes, a real MLflow store. The command that submits a sweep returns at
once; the sweep goes on without it, through crashes, and MLflow and the study agree at the end.
"""

from __future__ import annotations

import json
import os
import signal
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from shared import names
from shared.settings import Settings
from shared.state import TrialState
from shared.study import open_study, trial_state
from tests.helpers import (
    SEQQ,
    Service,
    free_port,
    pool_children,
    seqq,
    seqq_json,
    wait_for_port,
    wait_until,
)
from tests.integration.conftest import start_worker

# Tiny LSTMs on a small learnable text; a learning rate of 1e-5 barely moves one, so ASHA stops
# it at an evaluation behind a better trial. `{budget}` makes trials last long enough to be
# interrupted on any host (a fixed step count takes 1 s on a fast day).
SWEEP = """\
model: {{hidden_size: 16, num_layers: 1, embedding_dim: 16}}
data: {{dataset: {corpus}, seq_len: 32}}
optim: {{batch_size: 8, max_steps: {steps}, warmup_steps: 5{budget}}}
run: {{eval_every: 10, eval_batches: 2, sample_every: 100000, checkpoint_every: 20, experiment: sq}}
sample: {{length: 20}}
device: cpu
space:
  optim.lr: [3.0e-2, 1.0e-5, 1.0e-2]
sweep: {{trials: 6, sampler: tpe, pruner: asha, seed: 0}}
"""
MLFLOW_STATUS = {"COMPLETE": "FINISHED", "PRUNED": "KILLED", "FAILED": "FAILED"}


def _sweep_file(tmp_path: Path, steps: int = 60, budget: str | None = None) -> Path:
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("".join(f"{i % 7} little pigs went to market {i}.\n" for i in range(800)))
    path = tmp_path / "sweep.yaml"
    timed = f", time_budget: {budget}" if budget else ""
    path.write_text(SWEEP.format(corpus=corpus, steps=steps, budget=timed))
    return path


def _settings(env: dict[str, str]) -> Settings:
    return Settings(
        home=Path(env["SEQQ_HOME"]),
        mlflow_uri=env["SEQQ_MLFLOW_URI"],
        broker_url=env["SEQQ_BROKER_URL"],
    )


def _scheduler(env: dict[str, str], tmp_path: Path) -> Service:
    return Service([SEQQ, "scheduler"], tmp_path / "scheduler.log", env=env)


def _wait_ended(env: dict[str, str], sweep_id: str, timeout: float = 300) -> dict[str, Any]:
    def ended() -> dict[str, Any] | None:
        record = seqq_json(["sweep", "status", sweep_id], env)
        return record if record["status"] in ("FINISHED", "FAILED", "KILLED") else None

    return dict(wait_until(ended, timeout, f"sweep {sweep_id} to end", interval=1.0))


def assert_agrees(env: dict[str, str], sweep_id: str, wanted: int) -> list[Any]:
    """One parent, `wanted` child runs, and every trial's state and values the same in MLflow
    and in the study, no intermediate value reported twice; the study's trials."""
    from mlflow import MlflowClient

    client = MlflowClient(env["SEQQ_MLFLOW_URI"])
    parent = client.get_run(sweep_id)
    children = client.search_runs(
        [parent.info.experiment_id], f"tags.`mlflow.parentRunId` = '{sweep_id}'"
    )
    assert len(children) == wanted, [c.info.run_name for c in children]
    runs = {r.info.run_id: r for r in children}
    trials = open_study(sweep_id, "redis", _settings(env)).study.get_trials()
    assert len(trials) == wanted
    assert {t.user_attrs[names.TRIAL_ATTR_RUN_ID] for t in trials} == set(runs)
    for trial in trials:
        run = runs[trial.user_attrs[names.TRIAL_ATTR_RUN_ID]]
        state = trial_state(trial)
        assert state != TrialState.RUNNING, trial.number
        assert run.data.tags[names.TAG_TRIAL_STATE] == state.value, trial.number
        assert run.info.status == MLFLOW_STATUS[state.value], trial.number
        assert run.data.tags[names.TAG_TRIAL_NUMBER] == str(trial.number)
        assert run.data.tags[names.TAG_QUEUE] == "cpu"
        history = client.get_metric_history(run.info.run_id, names.METRIC_VAL_LOSS)
        steps = [m.step for m in history]
        assert len(steps) == len(set(steps)), (trial.number, steps)  # none logged twice
        assert {m.step: m.value for m in history} == trial.intermediate_values
        if state == TrialState.COMPLETE:
            assert trial.value == min(m.value for m in history)
    return trials


def test_a_queue_sweep_goes_on_without_the_command_and_prunes_with_asha(
    env: dict[str, str], tmp_path: Path
) -> None:
    path = _sweep_file(tmp_path)
    scheduler = _scheduler(env, tmp_path)
    worker = start_worker(env, tmp_path)
    try:
        out = seqq_json(["sweep", "-f", str(path), "--parallel", "1"], env)  # returns at once
        sweep_id = out["sweep_id"]
        assert out["dispatch"] == {"queue": "cpu", "parallel": 1, "register": None}
        assert out["status"] == "RUNNING" and out["trials_wanted"] == 6
        record = _wait_ended(env, sweep_id)
    finally:
        worker.stop()
        scheduler.stop()
    assert record["status"] == "FINISHED", worker.log()[-3000:]
    trials = assert_agrees(env, sweep_id, 6)
    states = [trial_state(t) for t in trials]
    assert TrialState.PRUNED in states and TrialState.COMPLETE in states, [
        (t.params, t.intermediate_values) for t in trials
    ]
    assert record["counts"]["PRUNED"] == states.count(TrialState.PRUNED)
    complete = [t for t in trials if trial_state(t) == TrialState.COMPLETE]
    best = min(complete, key=lambda t: t.value or 0.0)
    assert record["best"]["number"] == best.number
    # Optuna's plots are PNGs on the parent run.
    from mlflow import MlflowClient

    client = MlflowClient(env["SEQQ_MLFLOW_URI"])
    plots = {a.path.rsplit("/", 1)[-1] for a in client.list_artifacts(sweep_id, "plots")}
    assert {"optimization_history.png", "intermediate_values.png"} <= plots, plots
    for name in plots:
        png = Path(client.download_artifacts(sweep_id, f"plots/{name}", str(tmp_path)))
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # `seqq list` shows the sweep after its trials' jobs, in the table and in the JSON.
    listed = seqq_json(["list", "--limit", "50"], env)
    (entry,) = [r for r in listed if r["kind"] == "sweep"]
    assert entry["sweep_id"] == sweep_id and entry["status"] == "FINISHED"
    assert (entry["trials_ended"], entry["trials_wanted"]) == (6, 6)
    assert entry["best_val_loss"] == record["best"]["value"]
    assert sum(r["kind"] == "job" for r in listed) == 6
    table = seqq(["list"], {**env, "COLUMNS": "120"}).stdout
    assert "sweeps" in table and sweep_id in table and "6/6" in table
    # Optuna's dashboard serves the same study, read from Redis.
    port = free_port()
    dashboard = Service(
        [SEQQ, "sweep", "dashboard", sweep_id, "--port", str(port)],
        tmp_path / "dashboard.log",
        env=env,
    )
    try:
        wait_for_port(port, timeout=60)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/studies", timeout=10) as reply:
            (study,) = json.load(reply)["study_summaries"]
        with urllib.request.urlopen(
            f"http://127.0.0.1:{port}/api/studies/{study['study_id']}", timeout=10
        ) as reply:
            served = json.load(reply)["trials"]
    finally:
        dashboard.stop()
    assert study["study_name"] == sweep_id
    assert sorted(t["state"] for t in served) == sorted(
        t.state.name.capitalize() for t in trials
    ), served
    # The study is on Redis and the beat knows the sweep no more.
    import redis

    assert not redis.Redis.from_url(env["SEQQ_BROKER_URL"]).sismember(
        names.SWEEPS_ACTIVE_KEY, sweep_id
    )


def test_a_sweep_survives_a_sigkilled_trial_and_a_restarted_scheduler(
    env: dict[str, str], tmp_path: Path
) -> None:
    path = _sweep_file(tmp_path, steps=1_000_000, budget="4s")
    scheduler = _scheduler(env, tmp_path)
    worker = start_worker(env, tmp_path)
    try:
        args = ["sweep", "-f", str(path), "--parallel", "1", "--register", "queue-best"]
        sweep_id = seqq_json(args, env)["sweep_id"]

        from mlflow import MlflowClient

        client = MlflowClient(env["SEQQ_MLFLOW_URI"])

        def training() -> bool:  # a trial past its first checkpoint
            rows = seqq_json(["sweep", "status", sweep_id], env)["trials"]
            live = [r["run_id"] for r in rows if r["state"] == "RUNNING" and r["run_id"]]
            return any(client.list_artifacts(run_id, names.ARTIFACT_CHECKPOINTS) for run_id in live)

        wait_until(training, 120, "a trial to train")
        (child,) = pool_children(worker.proc.pid)
        os.kill(child, signal.SIGKILL)  # the trial's training process dies mid-trial
        assert scheduler.proc is not None
        os.killpg(scheduler.proc.pid, signal.SIGKILL)  # and so does the control plane
        scheduler.proc.wait(timeout=30)
        scheduler.start()
        record = _wait_ended(env, sweep_id, timeout=400)
    finally:
        worker.stop()
        scheduler.stop()
    assert record["status"] == "FINISHED", worker.log()[-3000:]
    assert_agrees(env, sweep_id, 6)
    resumed = [
        r
        for r in (client.get_run(row["run_id"]) for row in record["trials"])
        if int(r.data.tags.get(names.TAG_RESUMES, "0")) >= 1
    ]
    assert resumed, "the killed trial resumed in its own run"
    # --register on the queue: the control plane registered the best trial's best checkpoint.
    assert record["registered_uri"] == "models:/queue-best/1"
    version = client.get_model_version("queue-best", "1")
    assert version.run_id == record["best"]["run_id"]
    assert version.source.endswith(f"{names.ARTIFACT_CHECKPOINTS}/{names.BEST_CHECKPOINT}")
    done = seqq(["sample", "models:/queue-best/1", "--length", "20"], env)
    assert done.returncode == 0 and len(done.stdout) > 20, done.stderr


def test_cancel_stops_a_queue_sweep_and_starts_no_more_trials(
    env: dict[str, str], tmp_path: Path
) -> None:
    path = _sweep_file(tmp_path, steps=1_000_000, budget="60s")
    scheduler = _scheduler(env, tmp_path)
    worker = start_worker(env, tmp_path)
    try:
        out = seqq_json(["sweep", "-f", str(path)], env)
        sweep_id = out["sweep_id"]
        assert out["dispatch"]["parallel"] == 1  # the default: the one live worker's one slot
        wait_until(
            lambda: seqq_json(["sweep", "status", sweep_id], env)["trials"][0]["best_val_loss"],
            60,
            "the first trial to train",
        )
        done = seqq(["cancel", sweep_id], env)
        assert done.returncode == 0 and "cancelled" in done.stdout, done.stderr
        waited = seqq(["sweep", "status", sweep_id, "--wait", "--json"], env, timeout=120)
        assert waited.returncode == 0, waited.stderr  # --wait returns once the sweep has ended
        record = json.loads(waited.stdout)
    finally:
        worker.stop()
        scheduler.stop()
    assert record["status"] == "KILLED"
    assert len(record["trials"]) == 1 and record["trials"][0]["state"] == "FAILED"
    again = seqq(["cancel", sweep_id], env)
    assert again.returncode == 0 and "already ended KILLED" in again.stdout


@pytest.mark.parametrize(
    ("args", "field"),
    [
        (["--parallel", "0"], "parallel"),
        (["--queue", "nowhere"], "--queue"),
        (["--priority", "urgent"], "--priority"),
    ],
)
def test_a_refused_queue_sweep_leaves_nothing_behind(
    env: dict[str, str], tmp_path: Path, args: list[str], field: str
) -> None:
    import redis
    from mlflow import MlflowClient

    path = _sweep_file(tmp_path)
    done = seqq(["sweep", "-f", str(path), *args], env)
    assert done.returncode == 2, done.stderr
    (line,) = done.stderr.strip().splitlines()
    assert field in line
    assert (
        MlflowClient(env["SEQQ_MLFLOW_URI"]).search_experiments(filter_string="name = 'sq'") == []
    )
    conn = redis.Redis.from_url(env["SEQQ_BROKER_URL"])
    assert conn.scard(names.SWEEPS_ACTIVE_KEY) == 0
    assert not list(conn.scan_iter(match=f"{names.REDIS_PREFIX}sweep:*"))
    assert conn.llen("cpu") == 0
