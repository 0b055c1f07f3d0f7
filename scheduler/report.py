"""The comparison report: loss curves against steps and wall time, the table, a sample grid.

Written as Markdown with PNG plots (matplotlib, headless), to a folder and to the parent run's
artifacts, so the evidence of a comparison stays where anyone can open it.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from scheduler.compare import ModelResult
from shared import names

SAMPLE_CHARS = 160


def fmt(value: float | int | None, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    if isinstance(value, int):
        return f"{value:,}"
    return f"{value:.{digits}f}"


def _text(metric: str, show: Callable[[float], str]) -> Callable[[ModelResult], str]:
    """A text-quality cell: the model's last samples, then the held-out text's in brackets."""

    def cell(r: ModelResult) -> str:
        value, held_out = r.text_quality.get(metric), r.text_quality.get(names.TEXT_METRICS[metric])
        if value is None:
            return "-"
        return show(value) + ("" if held_out is None else f" ({show(held_out)})")

    return cell


def _percent(value: float) -> str:
    return f"{value:.0%}"


# The comparison table, one row per measure and one column per model, in the report and in the
# terminal alike: a model or a measure more adds a line, not width, so it reads at 80 columns.
# Losses are the best validation loss and the test loss, each in nats/char and bits/char; the
# sample rows are the last samples' text quality, held-out text's in brackets (`text_note`).
MEASURES: list[tuple[str, Callable[[ModelResult], str]]] = [
    ("status", lambda r: r.status),
    ("parameters", lambda r: fmt(r.num_params)),
    ("steps", lambda r: fmt(r.steps)),
    ("train time (s)", lambda r: fmt(r.train_time_s, 1)),
    ("chars/s", lambda r: fmt(round(r.chars_per_s)) if r.chars_per_s else "-"),
    ("best val loss (nats/char)", lambda r: fmt(r.best_val_loss)),
    ("best val bits/char", lambda r: fmt(r.best_val_bpc)),
    ("test loss (nats/char)", lambda r: fmt(r.test_loss)),
    ("test bits/char", lambda r: fmt(r.test_bpc)),
    ("sample words in train", _text(names.METRIC_SAMPLE_WORD_SHARE, _percent)),
    ("sample judge bits/char", _text(names.METRIC_SAMPLE_REF_BPC, lambda v: fmt(v, 2))),
    ("sample longest copy", _text(names.METRIC_SAMPLE_COPY_SPAN, lambda v: fmt(round(v)))),
    ("sample repeated 3-grams", _text(names.METRIC_SAMPLE_REPETITION, _percent)),
]


def text_note(results: list[ModelResult]) -> str | None:
    """What the sample rows measure, under the table that shows them."""
    lengths = sorted({r.sample_length for r in results if r.text_quality and r.sample_length})
    if not lengths:
        return None
    return (
        f"sample rows: the last samples' {' or '.join(map(str, lengths))} generated characters "
        "(mean over prompts); in brackets, held-out text as long. words in train: share of "
        "words (runs of letters) found in the training text; judge: a character n-gram model "
        "of the training text; longest copy: characters found verbatim in it; repeated "
        "3-grams: share of word 3-grams repeating an earlier one."
    )


def model_labels(results: list[ModelResult]) -> list[str]:
    """Column headings: the model, with the run id's start when two runs share a model."""
    counts = Counter(r.model for r in results)
    return [r.model if counts[r.model] == 1 else f"{r.model} {r.job_id[:8]}" for r in results]


def table_rows(results: list[ModelResult]) -> list[list[str]]:
    """The measure's name, then its value for each model."""
    return [[label, *(show(r) for r in results)] for label, show in MEASURES]


def plot_curves(results: list[ModelResult], out_dir: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paths = []
    for axis, label, name in (
        ("steps", "optimizer step", "loss_vs_step.png"),
        ("time", "training wall time (s)", "loss_vs_time.png"),
    ):
        fig, ax = plt.subplots(figsize=(7, 4.2), dpi=110)
        for r in results:
            xs = r.curve_steps if axis == "steps" else r.curve_time_s
            ax.plot(xs, r.curve_val_loss, marker="o", markersize=3, label=r.model)
        ax.set_xlabel(label)
        ax.set_ylabel("validation loss (nats/char)")
        ax.set_title(f"validation loss vs {label}")
        ax.grid(alpha=0.3)
        ax.legend()
        fig.tight_layout()
        path = out_dir / name
        fig.savefig(path)
        plt.close(fig)
        paths.append(path)
    return paths


def _cell(text: str) -> str:
    short = text[:SAMPLE_CHARS] + ("…" if len(text) > SAMPLE_CHARS else "")
    return short.replace("\\", "\\\\").replace("|", "\\|").replace("\n", "⏎").replace("`", "'")


def markdown(results: list[ModelResult], title: str, levels: dict[str, float] | None = None) -> str:
    lines = [f"# {title}", ""]
    labels = model_labels(results)
    lines += ["| measure | " + " | ".join(labels) + " |", "|---|" + "---:|" * len(labels)]
    lines += ["| " + " | ".join(row) + " |" for row in table_rows(results)]
    note = text_note(results)
    if note:
        lines += ["", note[0].upper() + note[1:]]
    if levels:
        lines += [
            "",
            "Reference levels for this synthetic task (nats/char): "
            + ", ".join(f"{k} {v:.3f}" for k, v in levels.items()),
        ]
    lines += [
        "",
        "![validation loss vs step](loss_vs_step.png)",
        "",
        "![validation loss vs wall time](loss_vs_time.png)",
        "",
        "## Samples",
        "",
    ]
    steps = sorted({s for r in results for s in r.samples_by_step})
    lines += [
        "| step | " + " | ".join(model_labels(results)) + " |",
        "|---|" + "---|" * len(results),
    ]
    for step in steps:
        cells = [_cell(r.samples_by_step.get(step, "")) for r in results]
        lines.append(f"| {step} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def write_report(
    results: list[ModelResult], out_dir: Path, title: str, levels: dict[str, float] | None = None
) -> list[Path]:
    """report.md and its plots in `out_dir`; the written paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = plot_curves(results, out_dir)
    report = out_dir / names.REPORT_FILE
    report.write_text(markdown(results, title, levels), encoding="utf-8")
    return [report, *paths]
