"""MLflow logging that never blocks the training step.

`RunLogger` queues metrics and artifact uploads and sends them from one background thread:
metrics go in `log_batch` calls (one request per flush, not per value), uploads follow in
order. When the tracking server is unreachable the thread keeps everything and retries with
back-off, so an outage costs nothing but delay; `close()` waits until all is delivered.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mlflow import MlflowClient

log = logging.getLogger(__name__)

MAX_METRICS_PER_BATCH = 1000  # MLflow's log_batch limit


def configure_mlflow_env() -> None:
    """Bound MLflow's own HTTP retries: our logger retries itself, without stalling a step."""
    from shared.settings import mlflow_env_defaults

    os.environ.setdefault("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "1")
    mlflow_env_defaults(http_retries=2, http_timeout=30)


PERMANENT_ERRORS = ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE", "INVALID_STATE")


def is_permanent(exc: Exception) -> bool:
    """An MLflow answer that retrying cannot change (unknown run, bad value)."""
    return getattr(exc, "error_code", None) in PERMANENT_ERRORS


def with_retry(call: Any, *args: Any, deadline_s: float = 600.0, **kwargs: Any) -> Any:
    """Run a tracking call, retrying transient failures with back-off until the deadline."""
    start = time.monotonic()
    delay = 0.5
    while True:
        try:
            return call(*args, **kwargs)
        except Exception as exc:
            if is_permanent(exc) or time.monotonic() - start + delay > deadline_s:
                raise
            log.warning("MLflow call %s failed (%s); retrying in %.1fs", call.__name__, exc, delay)
            time.sleep(delay)
            delay = min(delay * 2, 10.0)


class RunLogger:
    """Asynchronous, batched, outage-tolerant metric and artifact logging for one run."""

    def __init__(
        self,
        client: MlflowClient,
        run_id: str,
        flush_interval: float = 5.0,  # one log_batch per 5 s: the UI lags little, training less
        logged_until: dict[str, int] | None = None,
    ) -> None:
        self.client = client
        # After a resume: drop values at steps the run already has, so curves never overlap.
        self.logged_until = dict(logged_until or {})
        self.run_id = run_id
        self.flush_interval = flush_interval
        self._metrics: deque[Any] = deque()
        self._calls: deque[Callable[[], object]] = deque()
        self._cond = threading.Condition()
        self._closing = False
        self._busy = False
        self._flush_requested = False
        self._last_sent = time.monotonic()
        self.failures = 0
        # Files written only to be uploaded (samples, the vocabulary); removed on close.
        self.scratch = Path(tempfile.mkdtemp(prefix="seqq-upload-"))
        self._thread = threading.Thread(target=self._loop, name="seqq-mlflow-logger", daemon=True)
        self._thread.start()

    # -- producer side (the training thread): O(1), never touches the network --------------
    def metrics(self, values: dict[str, float], step: int) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        with self._cond:
            for key, value in values.items():
                if step > self.logged_until.get(key, -1):
                    self._metrics.append(Metric(key, float(value), now, step))

    def artifact(
        self, local_path: Path, artifact_path: str | None = None, delete_after: bool = False
    ) -> None:
        """Upload a file (in order, after the metrics queued before it); optionally delete it."""

        def upload() -> None:
            self.client.log_artifact(self.run_id, str(local_path), artifact_path)
            if delete_after:
                local_path.unlink(missing_ok=True)

        self.call(upload)

    def artifact_text(self, name: str, text: str, artifact_path: str | None = None) -> None:
        """Upload `text` as an artifact file called `name` (written to the scratch dir)."""
        path = self.scratch / name
        path.write_text(text, encoding="utf-8")
        self.artifact(path, artifact_path, delete_after=True)

    def call(self, fn: Callable[[], object]) -> None:
        """Run any tracking call in the background, retried until it succeeds."""
        with self._cond:
            self._calls.append(fn)
            self._cond.notify_all()

    def flush(self, timeout: float | None = None) -> bool:
        """Block until everything queued so far is delivered; False on timeout."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            self._flush_requested = True
            self._cond.notify_all()
            while self._metrics or self._calls or self._busy:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                self._cond.wait(timeout=0.1 if remaining is None else min(remaining, 0.1))
        return True

    def discard(self) -> None:
        """Drop everything still queued and stop (the run belongs to another worker now)."""
        with self._cond:
            self._metrics.clear()
            self._calls.clear()
        self.close(timeout=5)

    def close(self, timeout: float | None = None) -> bool:
        delivered = self.flush(timeout)
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        self._thread.join(timeout=5)
        if not self._thread.is_alive():
            shutil.rmtree(self.scratch, ignore_errors=True)
        return delivered

    # -- consumer side (the background thread) ----------------------------------------------
    def _next_work(self) -> tuple[list[Any], Callable[[], object] | None] | None:
        """Wait (holding the lock) for due work; None when closed and drained."""
        while True:
            since = time.monotonic() - self._last_sent
            due = bool(self._metrics) and (
                self._closing
                or self._flush_requested
                or since >= self.flush_interval
                or len(self._metrics) >= MAX_METRICS_PER_BATCH
                or bool(self._calls)  # calls run after the metrics queued before them
            )
            if due:
                n = min(len(self._metrics), MAX_METRICS_PER_BATCH)
                return [self._metrics[i] for i in range(n)], None
            if self._calls:
                return [], self._calls[0]
            if not self._metrics:
                self._flush_requested = False
                if self._closing:
                    return None
            self._cond.notify_all()
            # Idle: sleep a whole interval (no 50 ms polling that steals CPU from training).
            idle = not self._metrics
            self._cond.wait(
                timeout=self.flush_interval if idle else max(0.05, self.flush_interval - since)
            )

    def _loop(self) -> None:
        delay = 0.5
        while True:
            with self._cond:
                work = self._next_work()
                if work is None:
                    return
                batch, call = work
                self._busy = True
            try:
                if batch:
                    self.client.log_batch(self.run_id, metrics=batch, synchronous=True)
                elif call is not None:
                    call()
            except Exception as exc:
                self.failures += 1
                log.warning("MLflow logging failed (%s); retrying in %.1fs", exc, delay)
                with self._cond:
                    self._busy = False
                    self._cond.notify_all()
                time.sleep(delay)
                delay = min(delay * 2, 10.0)
                continue
            delay = 0.5
            with self._cond:
                for _ in batch:
                    self._metrics.popleft()
                if batch:
                    self._last_sent = time.monotonic()
                if call is not None:
                    self._calls.popleft()
                self._busy = False
                self._cond.notify_all()
