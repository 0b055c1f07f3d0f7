"""Celery tasks: thin wrappers that validate the message and call plain functions.

`seqq.train` is the wire name the client sends; everything it does lives in `worker.job`.
A GPU job runs in a fresh pool process, CPU pool processes serve several jobs. The worker's
main process imports torch and MLflow once, before it forks any (importing torch does not
initialise CUDA, and the main process never calls into torch.cuda), so a pool process starts
quickly and initialises CUDA itself. The task holds the job's lease while the job runs; a
worker shutting down (SIGTERM) checkpoints its job and sends it back to the queue.
"""

from __future__ import annotations

import logging
import math
import re
import signal
import socket
import threading
import time
from typing import Any

from celery import Task
from celery.exceptions import Ignore
from celery.signals import (
    task_postrun,
    task_prerun,
    worker_init,
    worker_process_init,
    worker_ready,
    worker_shutdown,
    worker_shutting_down,
)

from shared import names
from shared.celery_app import make_app
from shared.connection import redis_client
from shared.settings import get_settings
from shared.state import JobState

log = logging.getLogger(__name__)
app = make_app()

_JOB_ID = re.compile(r"^[0-9a-f]{32}$")
_PREEMPTED = threading.Event()  # set in a pool process when it receives SIGTERM


def _redis(timeout: float = 5) -> Any:
    """A connection to the broker's Redis (leases, stop flags, shutdown announcements)."""
    return redis_client(get_settings(), timeout, ping=False)


@worker_init.connect
def _preload(sender: Any = None, **_: Any) -> None:
    """In the worker's main process (not in Flower, which loads the same app): forget an earlier
    worker's shutdown under this name, then import the job code, torch and MLflow once, so the
    pool processes forked from it need not."""
    _clear_shutdown_flag(getattr(sender, "hostname", None) or socket.gethostname())
    started = time.monotonic()
    # torch._dynamo: an optimizer's first step imports it (~1.1 s here); once, before the fork,
    # not in the first job of every pool process. No threads, no CUDA (checked).
    import torch._dynamo  # noqa: F401

    import worker.job  # noqa: F401
    from worker.tracking import configure_mlflow_env

    configure_mlflow_env()
    import mlflow.artifacts  # noqa: F401
    from mlflow import MlflowClient  # noqa: F401
    from mlflow.entities import Metric, RunTag  # noqa: F401

    log.info("preloaded torch and MLflow in %.1fs", time.monotonic() - started)


def _clear_shutdown_flag(hostname: str) -> None:
    """A worker restarted under the same name (systemd, a redeployed pod) must not read the
    shutdown its predecessor announced: every job it took would be handed straight back."""
    try:
        _redis().delete(names.shutdown_key(hostname))
    except Exception as exc:  # Redis away: Celery's own start-up will say so
        log.warning("could not clear the shutdown flag: %s", exc)


@worker_process_init.connect
def _init_pool_process(**_: Any) -> None:
    """In each fresh pool process, while the worker is idle: open the tracking store and warm
    torch up, so a job starts training at once."""
    started = time.monotonic()
    from mlflow import MlflowClient

    import worker.job  # already imported by the main process: free

    try:  # a SQLite store checks its schema once per process; a server answers a first request
        MlflowClient(get_settings().tracking_uri).search_experiments(max_results=1)
    except Exception as exc:  # the job itself will report an unreachable store
        log.warning("tracking store not reachable yet (%s)", exc.__class__.__name__)
    worker.job.warm_up()
    log.info("pool process ready for a job (start-up %.1fs)", time.monotonic() - started)


@worker_ready.connect
def _register(sender: Any = None, **_: Any) -> None:
    from worker import registry

    queues = [q.name for q in sender.app.amqp.queues.consume_from.values()]
    slots = getattr(getattr(sender, "controller", None), "concurrency", None) or 1
    registry.announce(sender.hostname, queues, int(slots))


@worker_shutdown.connect
def _unregister(**_: Any) -> None:
    from worker import registry

    registry.withdraw()


@task_prerun.connect
def _job_started(task_id: str | None = None, task: Any = None, **_: Any) -> None:
    if task is not None and task.name == names.TASK_TRAIN and task_id:
        from worker import registry

        registry.job_started(task.request.hostname or "", task_id)


@task_postrun.connect
def _job_ended(task: Any = None, **_: Any) -> None:
    if task is not None and task.name == names.TASK_TRAIN:
        from worker import registry

        registry.job_ended(task.request.hostname or "")


@worker_shutting_down.connect
def _announce_shutdown(sender: str | None = None, sig: str | None = None, **_: Any) -> None:
    """Tell this worker's running jobs (in pool processes) to checkpoint and hand back."""
    try:
        _redis().set(names.shutdown_key(sender or socket.gethostname()), sig or "1", ex=3600)
    except Exception as exc:  # shutting down anyway; the SIGTERM path still works
        log.warning("could not announce shutdown: %s", exc)


class CeleryReporter:
    """Progress through Celery task state; stop requests through Redis flags (throttled)."""

    def __init__(self, task: Task, job_id: str, lease: Any, interval: float = 1.0) -> None:
        self.task = task
        self.job_id = job_id
        self.lease = lease
        self.interval = interval
        self.keys = [names.cancel_key(job_id), names.shutdown_key(task.request.hostname or "")]
        self.redis = _redis()
        self._last_progress = 0.0
        self._last_check = 0.0
        self._flags: list[Any] = [None, None]

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

    def stop_reason(self) -> str | None:
        if self.lease is not None and self.lease.lost.is_set():
            return "lease-lost"
        now = time.monotonic()
        if now - self._last_check >= 0.5:
            self._last_check = now
            try:
                self._flags = self.redis.mget(self.keys)
            except Exception as exc:  # Redis away: keep training, look again later
                log.warning("stop-flag check failed: %s", exc)
        if self._flags[0] is not None:
            return "cancel"
        if self._flags[1] is not None or _PREEMPTED.is_set():
            return "preempt"
        return None


def _advance_sweep(task: Task, spec: dict[str, Any], status: JobState) -> None:
    """A queue sweep's trial ended: ask the control plane to start the next one now (its beat
    would, within a reap interval; this spares a freed worker the wait)."""
    trial = spec.get("trial")
    if not isinstance(trial, dict) or trial.get("storage") != "redis":
        return
    if status in (JobState.PREEMPTED, JobState.STOOD_DOWN):
        return  # the trial goes on, here or elsewhere
    try:
        task.app.send_task(
            names.TASK_SWEEP_ADVANCE,
            kwargs={"sweep_id": str(trial.get("sweep"))},
            queue=names.QUEUE_CONTROL,
            routing_key=names.QUEUE_CONTROL,
        )
    except Exception as exc:  # the beat's pass covers it
        log.warning("could not ask to advance sweep %s: %s", trial.get("sweep"), exc)


@app.task(name=names.TASK_PING)
def ping() -> str:
    """A no-op round trip: health checks and the dispatch-rate benchmark."""
    return "pong"


@app.task(name=names.TASK_TRAIN, bind=True)
def train(self: Task, job_id: str, spec: dict[str, Any]) -> dict[str, Any]:
    """Train one job under its lease; the result is the job's outcome."""
    if (
        not isinstance(job_id, str)
        or not _JOB_ID.match(job_id)
        or self.request.id != job_id  # one job id = one task id = one run id
        or not isinstance(spec, dict)
    ):
        log.error("rejected malformed seqq.train message (job_id=%r)", job_id)
        raise Ignore()
    from worker.job import run_job

    # SIGTERM straight to the pool process (systemd, `kill` of the process group): checkpoint
    # and hand the job back instead of dying mid-step. Installed here because billiard resets
    # signal handlers after the process initializer.
    # A pool process serves several CPU jobs: a SIGTERM that handed back an earlier job is spent
    # (a worker that is shutting down starts no new job, so this one is wanted).
    _PREEMPTED.clear()
    signal.signal(signal.SIGTERM, lambda *_: _PREEMPTED.set())
    from worker.lease import Lease

    settings = get_settings()
    conn = _redis(timeout=10)
    lease = Lease(conn, job_id, settings.lease_ttl, holder=self.request.hostname or "worker")
    if not lease.acquire():
        log.info("job %s is held by a live worker; this delivery stands down", job_id)
        raise Ignore()
    lease.start_heartbeat()
    try:
        outcome = run_job(job_id, spec, CeleryReporter(self, job_id, lease), settings)
    finally:
        lease.release()
    _advance_sweep(self, spec, outcome.status)
    if outcome.status == JobState.PREEMPTED:
        queue = (self.request.delivery_info or {}).get("routing_key") or names.QUEUE_CPU
        self.app.send_task(
            names.TASK_TRAIN, kwargs={"job_id": job_id, "spec": spec}, task_id=job_id, queue=queue
        )
        log.info("job %s checkpointed and handed back to queue %s", job_id, queue)
        raise Ignore()
    if outcome.status == JobState.STOOD_DOWN:
        raise Ignore()
    return outcome.as_dict()
