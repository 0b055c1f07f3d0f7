"""The control plane's Celery app: the reaper and the sweeps' advance, on their own queue.

`seqq scheduler` runs this app's worker with an embedded beat. Training workers never consume
the `control` queue, and the control plane never trains. A worker whose sweep trial ended sends
`seqq.sweep.advance` for its sweep here; the beat sends it for every sweep not yet ended, every
reap interval, so a sweep moves on after any crash (`scheduler.sweep_queue`).
"""

from __future__ import annotations

import logging
import socket
from typing import Any

from shared import names
from shared.celery_app import make_app
from shared.connection import redis_client
from shared.settings import get_settings, mlflow_env_defaults

log = logging.getLogger(__name__)
settings = get_settings()
mlflow_env_defaults()
app = make_app(settings)
app.conf.beat_schedule = {
    "reap-lost-jobs": {
        "task": names.TASK_REAP,
        "schedule": settings.reap_interval,
        "options": {"queue": names.QUEUE_CONTROL, "expires": settings.reap_interval},
    },
    "advance-sweeps": {
        "task": names.TASK_SWEEP_ADVANCE,
        "schedule": settings.reap_interval,
        "options": {"queue": names.QUEUE_CONTROL, "expires": settings.reap_interval},
    },
}


@app.task(name=names.TASK_REAP)
def reap() -> list[str]:
    """Re-queue jobs whose worker vanished (see `scheduler.reaper`)."""
    from mlflow import MlflowClient

    from scheduler.reaper import reap_once

    client: Any = MlflowClient(settings.tracking_uri)
    conn = redis_client(settings, timeout=10, ping=False)
    # Seen by `seqq sweep`, which warns when no control plane would move its sweep on.
    conn.set(names.SCHEDULER_KEY, socket.gethostname(), ex=int(max(3 * settings.reap_interval, 30)))
    return reap_once(client, conn, app, settings)


@app.task(name=names.TASK_SWEEP_ADVANCE)
def advance_sweep(sweep_id: str | None = None) -> list[str]:
    """Move one queue sweep on (a trial of it ended), or every sweep not yet ended (the beat);
    the ids of the sweeps that ended now."""
    from mlflow import MlflowClient

    from scheduler import sweep_queue

    client: Any = MlflowClient(settings.tracking_uri)
    conn = redis_client(settings, timeout=10, ping=False)
    if sweep_id is None:
        return sweep_queue.advance_all(settings, client, conn, app)
    if not isinstance(sweep_id, str) or not sweep_id.isalnum():
        log.error("rejected malformed seqq.sweep.advance message (sweep_id=%r)", sweep_id)
        return []
    ended = sweep_queue.advance(sweep_id, settings, client, conn, app)
    return [sweep_id] if ended is not None else []
