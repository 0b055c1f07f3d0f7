"""`seqq worker`: Celery workers for seqq jobs, one per GPU or a pool of CPU workers."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from typing import Annotated

import typer


def register(app: typer.Typer) -> None:
    app.command("worker")(worker)


def worker(
    gpus: Annotated[
        str | None,
        typer.Option("--gpus", help="'all' or indices '0,1': one pinned worker process per GPU."),
    ] = None,
    cpus: Annotated[
        int | None,
        typer.Option("--cpus", min=1, help="N CPU jobs at once; torch threads split across them."),
    ] = None,
    queues: Annotated[
        str | None,
        typer.Option(
            "--queues", "-Q", help="Queues to drain, most urgent first (default by kind)."
        ),
    ] = None,
    concurrency: Annotated[
        int, typer.Option("--concurrency", "-c", min=1, help="Jobs at once (CPU workers).")
    ] = 1,
    name: Annotated[
        str | None, typer.Option("--name", help="Worker name (default seqq-cpu@host).")
    ] = None,
    loglevel: Annotated[str, typer.Option("--loglevel", help="Celery log level.")] = "INFO",
) -> None:
    """Start workers that train seqq jobs from the queues.

    * `seqq worker` - one CPU worker on cpu.high, cpu, cpu.low (in that order).
    * `seqq worker --cpus 2` - two CPU jobs at once, each with half the cores.
    * `seqq worker --gpus all` - one worker process per GPU, each pinned with
      CUDA_VISIBLE_DEVICES, one job at a time, on gpu.high, gpu, gpu.low.

    This process never touches CUDA. Point workers at the shared services with
    SEQQ_BROKER_URL and SEQQ_MLFLOW_URI. SIGTERM checkpoints running jobs and hands them back.

    Example: `SEQQ_BROKER_URL=redis://head:6379/0 seqq worker --gpus all`
    """
    from shared import names
    from shared.connection import redis_client
    from shared.errors import SpecError
    from shared.settings import get_settings, override_settings, usable_cores

    settings = get_settings()
    redis_client(settings)  # one-line error now rather than Celery's retry loop
    host = socket.gethostname()
    if gpus is not None:
        if cpus is not None:
            raise SpecError("--gpus and --cpus: choose one kind of worker per command")
        from scheduler.gpus import select_gpus, visible_gpus

        devices = select_gpus(gpus, visible_gpus())
        order = queues or ",".join(names.drain_order(names.QUEUE_GPU))
        if len(devices) == 1:
            os.environ["CUDA_VISIBLE_DEVICES"] = devices[0]
            _run_celery(
                order, 1, name or f"seqq-gpu{devices[0]}@{host}", loglevel, JOBS_PER_GPU_PROCESS
            )
            return
        raise typer.Exit(_supervise(devices, order, name or "seqq", host, loglevel))
    n = cpus or concurrency
    if not settings.torch_threads:
        # Each of the n jobs at once gets its share of the cores; the pool processes forked
        # below inherit these settings (the cached ones read above still said "all cores").
        override_settings(torch_threads=max(1, usable_cores() // n))
    order = queues or ",".join(names.drain_order(names.QUEUE_CPU))
    hostname = name or f"seqq-cpu@{host}"
    _run_celery(order, n, hostname, loglevel, JOBS_PER_CPU_PROCESS, CPU_PROCESS_MAX_RSS_KIB)


# A GPU job gets a fresh pool process: the CUDA context and the caching allocator's memory go
# with it. CPU pool processes are reused (replacing one costs ~2 s here: exit, fork, start-up;
# longer than a short job) and replaced after a job that left them over 2 GiB resident (a big
# corpus, a leak), or after 100 jobs whatever they hold, so that nothing can accumulate.
JOBS_PER_GPU_PROCESS = 1
JOBS_PER_CPU_PROCESS = 100
CPU_PROCESS_MAX_RSS_KIB = 2 * 1024 * 1024


def _run_celery(
    queues: str,
    concurrency: int,
    hostname: str,
    loglevel: str,
    jobs_per_process: int,
    max_rss_kib: int | None = None,
) -> None:
    from worker.tasks import app

    argv = [
        "worker",
        f"--queues={queues}",
        f"--concurrency={concurrency}",
        "--pool=prefork",
        f"--hostname={hostname}",
        f"--loglevel={loglevel}",
        f"--max-tasks-per-child={jobs_per_process}",
    ]
    if max_rss_kib:  # Celery checks the pool process's peak RSS after each task
        argv.append(f"--max-memory-per-child={max_rss_kib}")
    app.worker_main(argv)


def _supervise(devices: list[str], queues: str, prefix: str, host: str, loglevel: str) -> int:
    """One `seqq worker --gpus i` child per device; signals are passed on; exits when all do."""
    children = []
    for index, device in enumerate(devices):
        env = {**os.environ, "CUDA_VISIBLE_DEVICES": device}
        argv = [
            sys.executable,
            "-m",
            "scheduler.cli",
            "worker",
            "--gpus",
            "0",
            "--queues",
            queues,
            "--name",
            f"{prefix}-gpu{device}@{host}",
            "--loglevel",
            loglevel,
        ]
        children.append(subprocess.Popen(argv, env=env))
        typer.echo(f"worker {index}: GPU {device} (pid {children[-1].pid})", err=True)

    def forward(signum: int, _frame: object) -> None:
        for child in children:
            if child.poll() is None:
                child.send_signal(signum)

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, forward)
    codes = [child.wait() for child in children]
    return max(codes, default=0)
