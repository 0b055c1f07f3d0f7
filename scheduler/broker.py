"""The client's side of Redis and Celery: reachability, sending jobs, reading live progress.

Jobs are sent by task name (`seqq.train`) with the job id as the Celery task id, JSON only;
the client never imports the worker. Cancellation is a Redis flag the worker polls, because
Celery's `revoke` is forgotten on restart and cannot stop a running job cleanly.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from shared import names
from shared.settings import Settings
from shared.spec import TrainSpec

if TYPE_CHECKING:
    import redis
    from celery import Celery

CANCEL_TTL_S = 30 * 24 * 3600


def celery_app(settings: Settings) -> Celery:
    from shared.celery_app import make_app

    return make_app(settings)


def route(spec: TrainSpec, conn: redis.Redis, priority: str = "normal") -> str:
    """The queue a spec goes to: by device (`auto` prefers a live GPU worker) and priority."""
    from scheduler.cluster import live_workers

    kind = names.QUEUE_CPU
    if spec.device == "cuda":
        kind = names.QUEUE_GPU
    elif spec.device == "auto":
        gpu_queues = set(names.drain_order(names.QUEUE_GPU))
        if any(gpu_queues & set(w["queues"]) for w in live_workers(conn)):
            kind = names.QUEUE_GPU
    return names.queue_name(kind, priority)


def send_job(app: Celery, job_id: str, spec: TrainSpec, queue: str) -> None:
    app.send_task(
        names.TASK_TRAIN,
        kwargs={"job_id": job_id, "spec": spec.model_dump(mode="json")},
        task_id=job_id,
        queue=queue,
        routing_key=queue,
    )


@dataclass
class LiveState:
    """What Celery knows about a job right now."""

    state: str  # PENDING, STARTED, PROGRESS, SUCCESS, FAILURE, REVOKED, ...
    info: dict[str, Any]


def live_state(app: Celery, job_id: str) -> LiveState:
    result = app.AsyncResult(job_id)
    info = result.info
    return LiveState(result.state, info if isinstance(info, dict) else {})


def request_cancel(conn: redis.Redis, job_id: str) -> None:
    conn.set(names.cancel_key(job_id), b"1", ex=CANCEL_TTL_S)
