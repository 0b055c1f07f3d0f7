"""`seqq worker`: a Celery worker process for seqq jobs."""

from __future__ import annotations

import os
import socket
from typing import Annotated

import typer


def register(app: typer.Typer) -> None:
    app.command("worker")(worker)


def worker(
    queues: Annotated[
        str, typer.Option("--queues", "-Q", help="Comma-separated queues to drain.")
    ] = "cpu",
    concurrency: Annotated[
        int, typer.Option("--concurrency", "-c", min=1, help="Jobs at once.")
    ] = 1,
    name: Annotated[
        str | None, typer.Option("--name", help="Worker name (default seqq-QUEUES@host).")
    ] = None,
    loglevel: Annotated[str, typer.Option("--loglevel", help="Celery log level.")] = "INFO",
) -> None:
    """Start a worker that trains seqq jobs from the queue(s).

    Each job runs in a fresh pool process that gets cores / concurrency torch threads.
    Point it at the shared broker and tracking server with SEQQ_BROKER_URL and
    SEQQ_MLFLOW_URI.

    Example: `SEQQ_BROKER_URL=redis://head:6379/0 SEQQ_MLFLOW_URI=http://head:5000 seqq worker`
    """
    from scheduler.broker import redis_client
    from shared.settings import get_settings

    settings = get_settings()
    redis_client(settings)  # one-line error now rather than Celery's retry loop
    if not settings.torch_threads:
        os.environ["SEQQ_TORCH_THREADS"] = str(max(1, (os.cpu_count() or 1) // concurrency))
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    from worker.tasks import app

    hostname = name or f"seqq-{queues.replace(',', '-')}@{socket.gethostname()}"
    app.worker_main(
        [
            "worker",
            f"--queues={queues}",
            f"--concurrency={concurrency}",
            "--pool=prefork",
            f"--hostname={hostname}",
            f"--loglevel={loglevel}",
            # A fresh process per job: no memory or CUDA state carries over between jobs.
            "--max-tasks-per-child=1",
        ]
    )
