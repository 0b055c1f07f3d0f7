"""`seqq workers` and `seqq queue`: the cluster as it is right now."""

from __future__ import annotations

from typing import Annotated

import typer

JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON object instead of a table.")]


def register(app: typer.Typer) -> None:
    app.command("workers")(workers)
    app.command("queue")(queue)


def workers(json_out: JsonOpt = False) -> None:
    """List live workers: host, GPU, queues, current job, jobs done, uptime."""
    from rich.table import Table

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
    table = Table()
    for column in ("worker", "host", "gpu", "queues", "job", "done", "uptime"):
        table.add_column(column)
    for w in found:
        table.add_row(
            w["name"],
            w["host"],
            w["gpu"] or "-",
            ",".join(w["queues"]),
            w["job"] or "idle",
            str(w["jobs_done"]),
            f"{w['uptime_s'] / 60:.1f} min",
        )
    display.console.print(table)


def queue(json_out: JsonOpt = False) -> None:
    """Waiting jobs per queue, read from Redis itself (jobs being trained are not waiting)."""
    from rich.table import Table

    from scheduler.cli import display
    from scheduler.cluster import waiting_jobs
    from shared.connection import redis_client
    from shared.settings import get_settings

    found = waiting_jobs(redis_client(get_settings()))
    if json_out:
        display.print_json(found)
        return
    table = Table()
    for column in ("queue", "waiting", "next jobs"):
        table.add_column(column)
    for name, info in found.items():
        table.add_row(name, str(info["waiting"]), ", ".join(info["next"][:3]) or "-")
    display.console.print(table)
