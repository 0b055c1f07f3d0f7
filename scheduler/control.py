"""The control plane's Celery app: the reaper as a beat-scheduled task on its own queue.

`seqq scheduler` runs this app's worker with an embedded beat. Training workers never consume
the `control` queue, and the control plane never trains.
"""

from __future__ import annotations

import logging
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
    }
}


@app.task(name=names.TASK_REAP)
def reap() -> list[str]:
    """Re-queue jobs whose worker vanished (see `scheduler.reaper`)."""
    from mlflow import MlflowClient

    from scheduler.reaper import reap_once

    client: Any = MlflowClient(settings.tracking_uri)
    conn = redis_client(settings, timeout=10, ping=False)
    return reap_once(client, conn, app, settings)
