"""`seqq scheduler`: the control plane (the reaper, on a Celery beat)."""

from __future__ import annotations

import socket
from typing import Annotated

import typer


def register(app: typer.Typer) -> None:
    app.command("scheduler")(scheduler)


def scheduler(
    loglevel: Annotated[str, typer.Option("--loglevel", help="Celery log level.")] = "INFO",
) -> None:
    """Run the control plane: re-queue jobs whose worker died (run exactly one per broker).

    Every SEQQ_REAP_INTERVAL seconds (15) it looks for RUNNING jobs whose lease is gone
    for longer than SEQQ_LEASE_TTL (30 s), marks them SCHEDULED and sends them again; the next
    worker resumes them from their last checkpoint in the same MLflow run.

    Example: `SEQQ_BROKER_URL=redis://head:6379/0 SEQQ_MLFLOW_URI=http://head:5000 seqq scheduler`
    """
    from scheduler.tracking import check_tracking
    from shared import names
    from shared.connection import redis_client
    from shared.settings import get_settings

    settings = get_settings()
    redis_client(settings)
    check_tracking(settings)
    from scheduler.control import app

    settings.home.mkdir(parents=True, exist_ok=True)
    app.worker_main(
        [
            "worker",
            "--beat",
            f"--schedule={settings.home / 'beat-schedule'}",
            f"--queues={names.QUEUE_CONTROL}",
            "--pool=solo",
            f"--hostname=seqq-scheduler@{socket.gethostname()}",
            f"--loglevel={loglevel}",
        ]
    )
