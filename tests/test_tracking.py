"""Tests for worker/tracking.py: RunLogger batching, retries and uploads; a real MLflow round trip.

Most tests drive one class, RunLogger, against a fake client that records calls (and can fail on
demand); the last one logs through a real MLflow SQLite store and reads the metrics back.
"""

from __future__ import annotations

import math
import os
import threading
from collections import Counter
from pathlib import Path

import pytest

from worker.tracking import MAX_METRICS_PER_BATCH, RunLogger

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

RUN_ID = "run-under-test"


class FakeClient:
    """Records log_batch / log_artifact calls; raises on the first `fail_first` calls."""

    def __init__(self, fail_first: int = 0) -> None:
        self.fail_first = fail_first
        self.calls = 0
        self.batches: list[list] = []
        self.artifacts: list[tuple[str, str | None, str]] = []
        self.run_ids: set[str] = set()
        self.events: list[str] = []  # "metrics" / "artifact", in delivery order
        self.batch_delivered = threading.Event()
        self.artifact_delivered = threading.Event()
        self._lock = threading.Lock()

    def _maybe_fail(self) -> None:
        with self._lock:
            self.calls += 1
            if self.calls <= self.fail_first:
                raise ConnectionError(f"tracking server down (call {self.calls})")

    def log_batch(self, run_id, metrics=(), params=(), tags=(), synchronous=None):
        self._maybe_fail()
        self.run_ids.add(run_id)
        self.batches.append(list(metrics))
        self.events.append("metrics")
        self.batch_delivered.set()

    def log_artifact(self, run_id, local_path, artifact_path=None):
        self._maybe_fail()
        self.run_ids.add(run_id)
        content = Path(local_path).read_text(encoding="utf-8")
        self.artifacts.append((Path(local_path).name, artifact_path, content))
        self.events.append("artifact")
        self.artifact_delivered.set()

    def delivered(self) -> Counter:
        return Counter((m.key, m.step, m.value) for batch in self.batches for m in batch)


@pytest.fixture
def make_logger():
    """RunLoggers that are always closed, so no background thread outlives its test."""
    loggers: list[RunLogger] = []

    def make(client, flush_interval: float = 60.0) -> RunLogger:
        logger = RunLogger(client, RUN_ID, flush_interval=flush_interval)
        loggers.append(logger)
        return logger

    yield make
    for logger in loggers:
        logger.close(timeout=10)


def _log_curve(logger: RunLogger, steps: int) -> Counter:
    expected: Counter = Counter()
    for step in range(steps):
        values = {"train_loss": 3.0 / (step + 1), "lr": 1e-3 * math.cos(step / steps)}
        logger.metrics(values, step)
        expected.update((key, step, float(value)) for key, value in values.items())
    return expected


def test_flush_delivers_every_metric_once_with_its_step(make_logger):
    client = FakeClient()
    logger = make_logger(client)
    expected = _log_curve(logger, 150)
    assert logger.flush(timeout=30)
    assert client.delivered() == expected
    assert client.run_ids == {RUN_ID}
    assert logger.failures == 0


def test_metrics_are_sent_in_batches_of_at_most_the_mlflow_limit(make_logger):
    client = FakeClient()
    logger = make_logger(client)
    expected = _log_curve(logger, MAX_METRICS_PER_BATCH + 300)  # two keys per step
    n_metrics = sum(expected.values())
    assert logger.flush(timeout=30)
    assert client.delivered() == expected
    assert len(client.batches) <= math.ceil(n_metrics / MAX_METRICS_PER_BATCH) + 1
    assert len(client.batches) < n_metrics / 100
    assert all(0 < len(batch) <= MAX_METRICS_PER_BATCH for batch in client.batches)


def test_failing_client_still_gets_everything_exactly_once_and_failures_are_counted(
    make_logger, tmp_path: Path
):
    client = FakeClient(fail_first=2)
    logger = make_logger(client)
    expected = _log_curve(logger, 40)
    sample = tmp_path / "sample.txt"
    sample.write_text("generated text", encoding="utf-8")
    logger.artifact(sample, "samples", delete_after=True)
    assert logger.flush(timeout=60)
    assert logger.failures == client.fail_first
    assert client.delivered() == expected
    assert client.artifacts == [("sample.txt", "samples", "generated text")]
    assert not sample.exists()


def test_artifacts_are_uploaded_in_order_and_delete_after_removes_only_those_files(
    make_logger, tmp_path: Path
):
    client = FakeClient()
    logger = make_logger(client)
    plan = [
        ("step-1-p0.txt", "samples", True),
        ("checkpoint.pt", "checkpoints/step-00000001", False),
        ("step-2-p0.txt", "samples", True),
        ("spec.json", None, False),
    ]
    paths = []
    for i, (name, artifact_path, delete_after) in enumerate(plan):
        path = tmp_path / f"{i}" / name
        path.parent.mkdir()
        path.write_text(f"content {i}", encoding="utf-8")
        paths.append(path)
        logger.artifact(path, artifact_path, delete_after=delete_after)
    assert logger.flush(timeout=30)
    assert client.artifacts == [
        (name, artifact_path, f"content {i}") for i, (name, artifact_path, _) in enumerate(plan)
    ]
    assert [path.exists() for path in paths] == [not delete for _, _, delete in plan]


def test_text_artifacts_are_uploaded_and_leave_no_files_behind_after_close(make_logger):
    client = FakeClient()
    logger = make_logger(client)
    logger.artifact_text("step-1-p0.txt", "To be, or not", "samples")
    logger.artifact_text("vocab.json", '{"chars": ["a"]}')
    scratch = logger.scratch
    assert logger.close(timeout=30)
    assert client.artifacts == [
        ("step-1-p0.txt", "samples", "To be, or not"),
        ("vocab.json", None, '{"chars": ["a"]}'),
    ]
    assert not scratch.exists()


def test_close_delivers_what_is_still_queued(make_logger, tmp_path: Path):
    client = FakeClient()
    logger = make_logger(client)
    expected = _log_curve(logger, 25)
    note = tmp_path / "note.txt"
    note.write_text("last words", encoding="utf-8")
    logger.artifact(note, "notes")
    assert logger.close(timeout=30)
    assert client.delivered() == expected
    assert client.artifacts == [("note.txt", "notes", "last words")]


def test_metrics_are_sent_in_the_background_once_the_flush_interval_passes(make_logger):
    client = FakeClient()
    logger = make_logger(client, flush_interval=0.05)
    logger.metrics({"train_loss": 2.0, "lr": 0.1}, 10)
    assert client.batch_delivered.wait(timeout=30)  # no flush() call
    assert client.delivered() == Counter({("train_loss", 10, 2.0): 1, ("lr", 10, 0.1): 1})


def test_an_artifact_is_uploaded_after_the_metrics_queued_before_it(make_logger, tmp_path: Path):
    client = FakeClient()
    logger = make_logger(client)  # long flush interval: only ordering can send the metric early
    logger.metrics({"val_loss": 1.25}, 100)
    path = tmp_path / "checkpoint.pt"
    path.write_text("weights", encoding="utf-8")
    logger.artifact(path, "checkpoints/step-00000100")
    assert client.artifact_delivered.wait(timeout=30)
    assert client.events[0] == "metrics"


def test_flush_with_nothing_queued_returns_at_once(make_logger):
    client = FakeClient()
    logger = make_logger(client)
    assert logger.flush(timeout=5)
    assert client.batches == []
    assert client.artifacts == []


def test_metrics_round_trip_through_a_real_mlflow_sqlite_store(tmp_path: Path):
    from mlflow import MlflowClient

    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    experiment = client.create_experiment("unit", artifact_location=(tmp_path / "art").as_uri())
    run_id = client.create_run(experiment).info.run_id
    logger = RunLogger(client, run_id, flush_interval=60.0)
    expected = [(step, 2.5 * math.exp(-step / 10)) for step in range(50)]
    for step, value in expected:
        logger.metrics({"val_loss": value}, step)
    sample = tmp_path / "sample.txt"
    sample.write_text("once upon a time", encoding="utf-8")
    logger.artifact(sample, "samples", delete_after=True)
    assert logger.close(timeout=60)
    assert logger.failures == 0
    history = client.get_metric_history(run_id, "val_loss")
    assert sorted((m.step, m.value) for m in history) == expected
    assert [a.path for a in client.list_artifacts(run_id, "samples")] == ["samples/sample.txt"]
    assert not sample.exists()
