"""Celery tasks: thin wrappers that validate the message and call plain functions.

`seqq.train` is the wire name the client sends; everything it does lives in `worker.job`.
Heavy imports (torch, mlflow) happen in each pool process after the fork, never in the parent,
so no CUDA state is ever inherited across a fork.
"""

from __future__ import annotations

import logging
import math
import re
import time
from typing import Any

from celery import Task
from celery.exceptions import Ignore
from celery.signals import worker_process_init

from shared import names
from shared.celery_app import make_app
from shared.settings import get_settings

log = logging.getLogger(__name__)
app = make_app()

_JOB_ID = re.compile(r"^[0-9a-f]{32}$")


@worker_process_init.connect
def _preload(**_: Any) -> None:
    """Import torch and the job code in each pool process, so a job starts training at once."""
    import worker.job  # noqa: F401


class CeleryReporter:
    """Progress through Celery task state; cancellation through a Redis flag (both throttled)."""

    def __init__(self, task: Task, job_id: str, interval: float = 1.0) -> None:
        import redis

        self.task = task
        self.job_id = job_id
        self.interval = interval
        self.redis = redis.Redis.from_url(get_settings().broker_url, socket_timeout=5)
        self._last_progress = 0.0
        self._last_check = 0.0
        self._cancelled = False

    def progress(self, info: dict[str, Any]) -> None:
        now = time.monotonic()
        if now - self._last_progress < self.interval:
            return
        self._last_progress = now
        meta = {
            k: (None if isinstance(v, float) and not math.isfinite(v) else v)
            for k, v in info.items()
        }
        try:
            self.task.update_state(task_id=self.job_id, state=names.STATE_PROGRESS, meta=meta)
        except Exception as exc:  # progress is best effort: never fail a job over it
            log.warning("progress update failed: %s", exc)

    def cancelled(self) -> bool:
        now = time.monotonic()
        if self._cancelled or now - self._last_check < 0.5:
            return self._cancelled
        self._last_check = now
        try:
            self._cancelled = bool(self.redis.exists(names.cancel_key(self.job_id)))
        except Exception as exc:
            log.warning("cancel check failed: %s", exc)
        return self._cancelled


@app.task(name=names.TASK_TRAIN, bind=True)
def train(self: Task, job_id: str, spec: dict[str, Any]) -> dict[str, Any]:
    """Train one job; the result is the job's outcome (status FINISHED, FAILED or KILLED)."""
    if not isinstance(job_id, str) or not _JOB_ID.match(job_id) or not isinstance(spec, dict):
        log.error("rejected malformed seqq.train message (job_id=%r)", job_id)
        raise Ignore()
    from worker.job import run_job

    outcome = run_job(job_id, spec, CeleryReporter(self, job_id))
    return outcome.as_dict()
