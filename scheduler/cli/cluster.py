"""`seqq workers` and `seqq queue`: the cluster as it is right now."""

from __future__ import annotations

from typing import Annotated

import typer

JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON object instead of a table.")]


def register(app: typer.Typer) -> None:
    app.command("workers")(workers)
    app.command("queue")(queue)


def workers(json_out: JsonOpt = False) -> None:
    """List live workers: host, GPU, queues, current job, jobs done, uptime.

    Example: `seqq workers --json`
    """
    from scheduler.cli import display
    from scheduler.cluster import live_workers
    from shared.connection import redis_client
    from shared.settings import get_settings

    found = live_workers(redis_client(get_settings()))
    if json_out:
        display.print_json(found)
        return
    if not found:
        display.console.print("no live workers: start one with `seqq worker` (or `--gpus all`)")
        return
    display.show(display.workers_table(found))


def queue(json_out: JsonOpt = False) -> None:
    """Waiting jobs per queue, read from Redis itself (jobs being trained are not waiting).

    Example: `SEQQ_BROKER_URL=redis://head:6379/0 seqq queue`
    """
    from scheduler.cli import display
    from scheduler.cluster import waiting_jobs
    from shared.connection import redis_client
    from shared.settings import get_settings

    found = waiting_jobs(redis_client(get_settings()))
    if json_out:
        display.print_json(found)
        return
    display.show(display.queue_table(found))
