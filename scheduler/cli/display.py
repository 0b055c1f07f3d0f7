"""Terminal output: errors on stderr, live progress bars, job tables and summaries.

Everything a command prints goes through here, so every command looks the same and `--json`
output stays pure (nothing but the JSON object on stdout).
"""

from __future__ import annotations

import json
import math
import signal
import sys
import time
from datetime import datetime
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from shared.spec import UNCAPPED_STEPS
from shared.state import TERMINAL, JobState

console = Console(soft_wrap=True)
err_console = Console(stderr=True)


def error(message: str) -> None:
    """One line on stderr; the caller exits with the error's code."""
    err_console.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")


def fmt(value: Any, digits: int = 4) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def fmt_time(ms: int | None) -> str:
    return datetime.fromtimestamp(ms / 1000).strftime("%Y-%m-%d %H:%M:%S") if ms else "-"


def make_progress(console: Console | None = None) -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[stats]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console or err_console,
        transient=False,
        # The bar changes every log_every steps: redraw once a second, not ten times.
        refresh_per_second=1,
    )


def stats_text(info: dict[str, Any]) -> str:
    parts = [f"loss {fmt(info.get('train_loss'), 3)}"]
    if info.get("val_loss") is not None:
        parts.append(f"val {fmt(info.get('val_loss'), 3)}")
    if info.get("tokens_per_sec"):
        parts.append(f"{info['tokens_per_sec'] / 1000:.1f}k chars/s")
    return "  ".join(parts)


def progress_update(progress: Progress, task: TaskID, info: dict[str, Any]) -> None:
    """Advance a bar by steps, or by seconds when a time budget ends the job first."""
    budget = info.get("time_budget")
    max_steps = info.get("max_steps") or 1
    if budget and (
        max_steps >= UNCAPPED_STEPS
        or info.get("elapsed_s", 0) / budget > info.get("step", 0) / max_steps
    ):
        progress.update(
            task,
            total=budget,
            completed=min(info.get("elapsed_s", 0), budget),
            stats=stats_text(info),
        )
    else:
        progress.update(
            task, total=max_steps, completed=info.get("step", 0), stats=stats_text(info)
        )


class ProgressReporter:
    """The embedded run's reporter: a live bar; Ctrl-C asks the job to stop (twice: abort)."""

    def __init__(self, progress: Progress, task: TaskID) -> None:
        self.bar = progress
        self.task = task
        self._stop = False
        self._previous = signal.getsignal(signal.SIGINT)

    def __enter__(self) -> ProgressReporter:
        signal.signal(signal.SIGINT, self._on_sigint)
        return self

    def __exit__(self, *_: Any) -> None:
        signal.signal(signal.SIGINT, self._previous)

    def _on_sigint(self, *_: Any) -> None:
        if self._stop:
            raise KeyboardInterrupt
        self._stop = True
        err_console.print("stopping after this step (checkpoint kept); Ctrl-C again to abort")

    def progress(self, info: dict[str, Any]) -> None:
        progress_update(self.bar, self.task, info)

    def stop_reason(self) -> str | None:
        return "cancel" if self._stop else None


def jobs_table(jobs: list[dict[str, Any]]) -> Table:
    table = Table(show_lines=False)
    for column in ("job", "status", "model", "name", "step", "val loss", "test loss", "started"):
        table.add_column(column)
    colours = {
        JobState.FINISHED: "green",
        JobState.FAILED: "red",
        JobState.KILLED: "yellow",
        JobState.RUNNING: "cyan",
        "QUEUED": "blue",
    }
    for job in jobs:
        step = fmt(job.get("step"))
        capped = (job.get("max_steps") or UNCAPPED_STEPS) < UNCAPPED_STEPS
        if capped and job.get("status") in (JobState.RUNNING, "QUEUED"):
            step = f"{fmt(job.get('step') or 0)}/{job['max_steps']}"
        colour = colours.get(job["status"], "white")
        table.add_row(
            job["job_id"],
            f"[{colour}]{job['status']}[/]",
            fmt(job.get("model")),
            fmt(job.get("name")),
            step,
            fmt(job.get("val_loss")),
            fmt(job.get("test_loss")),
            fmt_time(job.get("start_time")),
        )
    return table


def job_panel(job: dict[str, Any]) -> Table:
    table = Table(show_header=False, box=None)
    table.add_column(style="bold")
    table.add_column()
    for key, value in job.items():
        if value is not None:
            shown = fmt_time(value) if key.endswith("_time") else fmt(value)
            table.add_row(key.replace("_", " "), shown)
    return table


def follow(jobs: dict[str, str], app: Any, client: Any, poll_s: float = 0.5) -> dict[str, str]:
    """Live bars for queued jobs (label -> job id) until MLflow has each one ended.

    Celery state carries live progress; MLflow is the record of the end (a job cancelled while
    queued never reaches a worker, so only MLflow knows it ended). Returns label -> status.
    """
    from scheduler.broker import live_state

    ended: dict[str, str] = {}
    last_check = 0.0
    with make_progress() as progress:
        bars = {label: progress.add_task(label, total=None, stats="queued") for label in jobs}
        while len(ended) < len(jobs):
            for label, job_id in jobs.items():
                if label in ended:
                    continue
                live = live_state(app, job_id)
                if live.info.get("step") is not None and live.info.get("max_steps"):
                    progress_update(progress, bars[label], live.info)
                elif live.state == "STARTED":
                    progress.update(bars[label], stats="preparing data and model")
            if time.monotonic() - last_check > 2.0:
                last_check = time.monotonic()
                for label, job_id in jobs.items():
                    status = client.get_run(job_id).info.status
                    if status in TERMINAL and label not in ended:
                        ended[label] = status
                        task = progress.tasks[bars[label]]
                        progress.update(
                            bars[label],
                            total=task.total or 1,
                            completed=task.total or 1,
                            stats=status,
                        )
            if len(ended) < len(jobs):
                time.sleep(poll_s)
    return ended
