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
from typing import TYPE_CHECKING, Any

from rich.console import Console, Group, RenderableType
from rich.panel import Panel
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
from rich.text import Text

from shared.spec import UNCAPPED_STEPS
from shared.state import TERMINAL, JobState

if TYPE_CHECKING:
    from scheduler.compare import Comparison

console = Console(soft_wrap=True)
err_console = Console(stderr=True)

JOB_ID_WIDTH = 32  # an MLflow run id, which is the job id: shown whole, or it cannot be used
SAMPLE_CHARS = 400  # of each model's sample under the comparison table


def error(message: str) -> None:
    """One line on stderr; the caller exits with the error's code."""
    err_console.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)


def show(renderable: RenderableType, out: Console | None = None) -> None:
    """Print a table or panel laid out to the terminal's width, its cells wrapped to fit.

    The console soft-wraps plain lines (so a URL stays whole and clickable), but that stops
    table cells from wrapping: Rich then cuts them ("stat…"). Tables turn it off here."""
    (out or console).print(renderable, soft_wrap=False)


def show_comparison(comparison: Comparison, out: Console | None = None) -> None:
    show(comparison_view(comparison), out)
    for label, url in comparison.urls.items():
        # soft_wrap: a long address stays one line a terminal can copy, not folded by Rich
        (out or console).print(f"{label.replace('_', ' ')}: {url}", soft_wrap=True, markup=False)


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


def frameless_table(**kwargs: Any) -> Table:
    """A table without its outer frame: two columns more of a 80-column terminal for data."""
    return Table(show_edge=False, pad_edge=False, **kwargs)


def jobs_table(jobs: list[dict[str, Any]]) -> Table:
    """Recent jobs. The whole job id (what status and cancel take) is never cut; the run's name
    and start go under it, so the table reads at 80 columns."""
    table = frameless_table()
    # A fixed width: Rich never narrows it to fit, and the name under the id wraps within it.
    table.add_column("job", width=JOB_ID_WIDTH, overflow="fold")
    table.add_column("status", no_wrap=True)
    table.add_column("model", no_wrap=True)
    table.add_column("step", justify="right", no_wrap=True)
    table.add_column("val loss", justify="right")  # headers wrap: "val" over "loss"
    table.add_column("test loss", justify="right")
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
        started = fmt_time(job.get("start_time"))
        about = f"{job['name']}  {started}" if job.get("name") else started
        table.add_row(
            Group(Text(job["job_id"], no_wrap=True), Text(about, style="dim")),
            f"[{colour}]{job['status']}[/]",
            fmt(job.get("model")),
            step,
            fmt(job.get("val_loss"), 3),
            fmt(job.get("test_loss"), 3),
        )
    return table


_RUN_COLOURS = {"FINISHED": "green", "FAILED": "red", "KILLED": "yellow", "RUNNING": "cyan"}


def _parent_cells(record: dict[str, Any], run_id: str) -> tuple[Group, str]:
    """A parent run's first two cells (a sweep's or a comparison's): its whole id over its name
    and start time, then its coloured status."""
    started = fmt_time(record.get("start_time"))
    about = f"{record['name']}  {started}" if record.get("name") else started
    colour = _RUN_COLOURS.get(record["status"], "white")
    return (
        Group(Text(run_id, no_wrap=True), Text(about, style="dim")),
        f"[{colour}]{record['status']}[/]",
    )


def sweeps_table(sweeps: list[dict[str, Any]]) -> Table:
    """Recent sweeps: the whole sweep id (what `seqq sweep status` and cancel take), its state,
    trials ended of those wanted, and the best validation loss once it has ended."""
    table = frameless_table(title="sweeps")
    table.add_column("sweep", width=JOB_ID_WIDTH, overflow="fold")
    table.add_column("status", no_wrap=True)
    table.add_column("trials", justify="right", no_wrap=True)
    table.add_column("best val", justify="right")
    for sweep in sweeps:
        table.add_row(
            *_parent_cells(sweep, sweep["sweep_id"]),
            f"{sweep['trials_ended']}/{fmt(sweep.get('trials_wanted'))}",
            fmt(sweep.get("best_val_loss"), 3),
        )
    return table


def compares_table(compares: list[dict[str, Any]]) -> Table:
    """Recent comparisons: the parent run's whole id, its state, the models and seeds, and its
    child runs ended of those started."""
    table = frameless_table(title="comparisons")
    table.add_column("comparison", width=JOB_ID_WIDTH, overflow="fold")
    table.add_column("status", no_wrap=True)
    table.add_column("models")
    table.add_column("seeds", justify="right", no_wrap=True)
    table.add_column("runs", justify="right", no_wrap=True)
    for compare in compares:
        tuned = " (tuned)" if compare.get("tune_budget_s") else ""
        table.add_row(
            *_parent_cells(compare, compare["compare_id"]),
            ",".join(compare.get("models") or []) + tuned,
            str(len(compare.get("seeds") or [])),
            f"{compare['children_ended']}/{compare['children_started']}",
        )
    return table


def job_panel(job: dict[str, Any]) -> Table:
    table = Table(show_header=False, box=None)
    table.add_column(style="bold", no_wrap=True)
    table.add_column(overflow="fold")  # a long value (an error, a URL) wraps, never cut
    for key, value in job.items():
        if value is not None:
            shown = fmt_time(value) if key.endswith("_time") else fmt(value)
            table.add_row(key.replace("_", " "), shown)
    return table


def workers_table(workers: list[dict[str, Any]]) -> Table:
    """Live workers, each with the whole id of the job it trains under its name."""
    table = frameless_table()
    table.add_column("worker", width=len("job ") + JOB_ID_WIDTH, overflow="fold")
    table.add_column("gpu", overflow="fold")
    table.add_column("queues")
    table.add_column("done", justify="right", no_wrap=True)
    table.add_column("uptime", justify="right", no_wrap=True)
    for w in workers:
        name = w["name"] if w["host"] in w["name"] else f"{w['name']} on {w['host']}"
        job = f"job {w['job']}" if w["job"] else "idle"
        table.add_row(
            Group(Text(name), Text(job, style="dim")),
            w["gpu"] or "-",
            ", ".join(w["queues"]),  # a space after each comma lets a narrow column wrap
            str(w["jobs_done"]),
            f"{w['uptime_s'] / 60:.1f} min",
        )
    return table


def queue_table(queues: dict[str, dict[str, Any]]) -> Table:
    """Waiting jobs per queue, with the whole ids of the next three, one per line."""
    table = frameless_table()
    table.add_column("queue", no_wrap=True)
    table.add_column("waiting", justify="right")
    table.add_column("next jobs", width=JOB_ID_WIDTH)
    for name, info in queues.items():
        table.add_row(name, str(info["waiting"]), "\n".join(info["next"][:3]) or "-")
    return table


def comparison_view(comparison: Comparison) -> Group:
    """`seqq compare`'s screen: a row per measure and a column per model (more models or
    measures add lines, not width), the reference levels and each model's sample. Over several
    seeds a cell is the mean with the standard deviation on a second line (and a status count
    one line per status), so it stays narrow."""
    from scheduler.report import SPREAD, sample_runs, seeds_caption, table_rows, text_note

    columns = comparison.columns()
    table = Table(
        title="seqq compare",
        title_justify="left",
        caption=seeds_caption(comparison) or None,
        caption_justify="left",
    )
    table.add_column("")
    for label in columns:
        table.add_column(label, justify="right", no_wrap=True)
    for row in table_rows(columns):
        table.add_row(row[0], *(c.replace(SPREAD, "\n± ").replace(", ", "\n") for c in row[1:]))
    parts: list[Any] = [table]
    note = text_note(comparison.results)
    if note:
        parts.append(Text(note))
    if comparison.levels:
        levels = ", ".join(f"{k} {v:.3f}" for k, v in comparison.levels.items())
        parts.append(Text(f"reference levels (nats/char): {levels}"))
    parts += [
        # Text, not a str: generated text may hold "[...]", which Rich would read as markup.
        Panel(Text(r.sample[:SAMPLE_CHARS] or "-"), title=f"{label} sample")
        for label, r in sample_runs(comparison).items()
    ]
    return Group(*parts)


def sweep_view(record: dict[str, Any]) -> Group:
    """A sweep as one renderable: a row per trial (its sampled values in their own columns),
    then the best trial and where the curves are."""
    searched = sorted({key for row in record["trials"] for key in row["values"]})
    counts = record.get("counts") or {}
    ended = sum(n for state, n in counts.items() if state != "RUNNING")
    title = (
        f"sweep {record['sweep_id']}  {record['status']}  {ended}/{record['trials_wanted']} ended"
    )
    table = frameless_table(title=title)
    for header in ("trial", "state", *searched, "best val", "steps", "pruned at"):
        table.add_column(header, justify="left" if header == "state" else "right")
    colours = {"COMPLETE": "green", "PRUNED": "yellow", "FAILED": "red", "RUNNING": "cyan"}
    for row in record["trials"]:
        colour = colours.get(row["state"], "white")
        table.add_row(
            f"{row['number']} (base)" if row.get("base") else str(row["number"]),
            f"[{colour}]{row['state']}[/]",
            *(_value(row["values"].get(key)) for key in searched),
            fmt(row["best_val_loss"], 4),
            fmt(row["steps"]),
            fmt(row["pruned_step"]),
        )
    best = record["best"]
    line = "no trial completed"
    if best:
        line = (
            f"best: trial {best['number']}, val loss {fmt(best['value'], 4)}, run {best['run_id']}"
        )
    return Group(
        table,
        Text(line, no_wrap=False),
        Text(f"loss curves: {record['url']}", overflow="ignore", no_wrap=True),
    )


def show_sweep(record: dict[str, Any], out: Console | None = None) -> None:
    """`seqq sweep`'s screen (see `sweep_view`)."""
    show(sweep_view(record), out)


def follow_sweep(read: Any, poll_s: float = 2.0) -> dict[str, Any]:
    """Redraw a sweep's table until its parent run has ended (`read()` gives the record);
    the last record. Ctrl-C stops watching, never the sweep."""
    from rich.live import Live

    record = read()
    with Live(sweep_view(record), console=console, auto_refresh=False) as live:
        while record["status"] not in TERMINAL:
            time.sleep(poll_s)  # a screen's refresh, not a synchronisation
            record = read()
            live.update(sweep_view(record), refresh=True)
    return dict(record)


def _value(value: Any) -> str:
    """A sampled value, short: 4 significant digits for a float."""
    return f"{value:.4g}" if isinstance(value, float) else fmt(value)


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
