"""The comparison report: loss curves against steps and wall time, the table, a sample grid.

Written as Markdown with PNG plots (matplotlib, headless), to a folder and to the parent run's
artifacts, so the evidence of a comparison stays where anyone can open it. Over several seeds
a model's figure is its mean ± sample standard deviation and its curve the mean with the
min-max band of its runs; the report then also lists every run.
"""

from __future__ import annotations

import math
import statistics
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

from scheduler.compare import Comparison
from scheduler.result import ModelResult, Spread, figure_values
from shared import names

if TYPE_CHECKING:
    import numpy as np

SAMPLE_CHARS = 160


def fmt(value: float | int | None, digits: int | None = 3) -> str:
    """A figure as the table shows it; `digits=None`: a whole number with thousands separators."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    if digits is None:
        return f"{round(value):,}"
    return f"{value:.{digits}f}"


class Measure(NamedTuple):
    """One row of the comparison table: a run's figure (`result.FIGURES` or `TEXT_FIGURES`) and
    how to print it."""

    label: str
    figure: str
    digits: int | None  # decimals; None: a whole number with thousands separators
    percent: bool = False  # a share, printed as a percentage with `digits` decimals

    def show(self, value: float) -> str:
        return f"{value:.{self.digits or 0}%}" if self.percent else fmt(value, self.digits)


# The comparison table, one row per measure and one column per model, in the report and in the
# terminal alike: a model or a measure more adds a line, not width, so it reads at 80 columns.
# Losses are the best validation loss (and its step), and the test loss of the weights that
# reached it beside the final weights' one, each in nats/char and bits/char; the sample rows are
# the last samples' text quality, held-out text's in brackets (`text_note`).
MEASURES: list[Measure] = [
    Measure("parameters", "num_params", None),
    Measure("steps", "steps", None),
    Measure("train time (s)", "train_time_s", 1),
    Measure("chars/s", "chars_per_s", None),
    Measure("best val loss (nats/char)", "best_val_loss", 3),
    Measure("best val bits/char", "best_val_bpc", 3),
    Measure("best val at step", "best_step", None),
    Measure("test loss at best val (nats/char)", "test_loss_best", 3),
    Measure("test bits/char at best val", "test_bpc_best", 3),
    Measure("final test loss (nats/char)", "test_loss", 3),
    Measure("final test bits/char", "test_bpc", 3),
    Measure("sample words in train", names.METRIC_SAMPLE_WORD_SHARE, 0, percent=True),
    Measure("sample judge bits/char", names.METRIC_SAMPLE_REF_BPC, 2),
    Measure("sample longest copy", names.METRIC_SAMPLE_COPY_SPAN, None),
    Measure("sample repeated 3-grams", names.METRIC_SAMPLE_REPETITION, 0, percent=True),
]
SPREAD = " ± "  # between a mean and its standard deviation in a cell


def status_cell(runs: list[ModelResult]) -> str:
    """A run's status; over several runs, how many ended each way (`2 FINISHED, 1 FAILED`)."""
    if len(runs) == 1:
        return runs[0].status
    return ", ".join(f"{n} {status}" for status, n in Counter(r.status for r in runs).items())


def figure_cell(runs: list[ModelResult], measure: Measure) -> str:
    """A run's figure; over several runs `mean ± std` (the mean alone when all runs agree), and
    `(k/n)` when only k of the n runs have it. A sample measure is followed by the held-out
    text's in brackets, over several runs their mean (the same text for every seed)."""
    values = figure_values(runs, measure.figure)
    if not values:
        return "-"
    reference = names.TEXT_METRICS.get(measure.figure)
    held_out = figure_values(runs, reference) if reference else []
    against = f" ({measure.show(statistics.fmean(held_out))})" if held_out else ""
    if len(runs) == 1:
        return measure.show(values[0]) + against
    spread = Spread.of(values)
    text = measure.show(spread.mean)
    if spread.std is not None and spread.min != spread.max:
        text += SPREAD + measure.show(spread.std)
    return text + against + (f" ({spread.n}/{len(runs)})" if spread.n < len(runs) else "")


def table_rows(columns: dict[str, list[ModelResult]]) -> list[list[str]]:
    """The measure's name, then its cell for each column (a model's runs, or one run)."""
    rows = [["status", *(status_cell(runs) for runs in columns.values())]]
    rows += [[m.label, *(figure_cell(runs, m) for runs in columns.values())] for m in MEASURES]
    return rows


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


def seeds_caption(comparison: Comparison) -> str:
    """What the figures are when each model ran with several seeds; empty otherwise."""
    seeds = comparison.seeds or []
    if len(seeds) < 2:
        return ""
    return (
        f"Mean ± sample standard deviation over {len(seeds)} seeds "
        f"({', '.join(map(str, seeds))}); "
        "(k/n): only k of the n runs have the figure."
    )


def mean_band(
    curves: list[tuple[list[float], list[float]]],
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None:
    """Several runs' curves as one: x, mean, min and max of y, or None without a common range.

    Each curve is interpolated linearly at every x any curve has, within the range all of them
    cover (runs on a time budget end at different steps and times), so every point is the mean
    of every run. One curve comes back as it is.
    """
    import numpy as np

    clean = []
    for xs, ys in curves:
        x, y = np.asarray(xs, dtype=float), np.asarray(ys, dtype=float)
        keep = np.isfinite(x) & np.isfinite(y)
        order = np.argsort(x[keep], kind="stable")
        if keep.any():
            clean.append((x[keep][order], y[keep][order]))
    if not clean:
        return None
    low, high = max(x[0] for x, _ in clean), min(x[-1] for x, _ in clean)
    grid = np.unique(np.concatenate([x for x, _ in clean]))
    grid = grid[(grid >= low) & (grid <= high)]
    if not grid.size:
        return None
    values = np.stack([np.interp(grid, x, y) for x, y in clean])
    return grid, values.mean(axis=0), values.min(axis=0), values.max(axis=0)


def plot_curves(comparison: Comparison, out_dir: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    columns = comparison.columns()
    seeds = comparison.seeds or []
    over = f", mean and min-max of {len(seeds)} seeds" if len(seeds) > 1 else ""
    paths = []
    for axis, label, name in (
        ("steps", "optimizer step", "loss_vs_step.png"),
        ("time", "training wall time (s)", "loss_vs_time.png"),
    ):
        fig, ax = plt.subplots(figsize=(7, 4.2), dpi=110)
        for model, runs in columns.items():
            curves = [
                (r.curve_steps if axis == "steps" else r.curve_time_s, r.curve_val_loss)
                for r in runs
            ]
            band = mean_band([(list(map(float, xs)), ys) for xs, ys in curves])
            if band is None:
                continue
            x, mean, low, high = band
            (line,) = ax.plot(x, mean, marker="o", markersize=3, label=model)
            if len(runs) > 1:
                ax.fill_between(x, low, high, color=line.get_color(), alpha=0.2, linewidth=0)
        ax.set_xlabel(label)
        ax.set_ylabel("validation loss (nats/char)")
        ax.set_title(f"validation loss vs {label}{over}", fontsize=10)
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


def _table(columns: dict[str, list[ModelResult]]) -> list[str]:
    lines = ["| measure | " + " | ".join(columns) + " |", "|---|" + "---:|" * len(columns)]
    return lines + ["| " + " | ".join(row) + " |" for row in table_rows(columns)]


def sample_runs(comparison: Comparison) -> dict[str, ModelResult]:
    """Whose samples are shown: each column's first run, labelled with its seed over several."""
    out = {}
    for label, runs in comparison.columns().items():
        first = runs[0]
        out[f"{label} (seed {first.seed})" if comparison.several_seeds else label] = first
    return out


def markdown(comparison: Comparison, title: str, sections: Sequence[str] = ()) -> str:
    """The report; `sections` (Markdown lines, e.g. a tuned comparison's sweeps) follow the
    table."""
    columns = comparison.columns()
    lines = [f"# {title}", ""]
    caption = seeds_caption(comparison)
    lines += [caption, ""] if caption else []
    lines += _table(columns)
    lines += ["", *sections] if sections else []
    note = text_note(comparison.results)
    if note:
        lines += ["", note[0].upper() + note[1:]]
    if comparison.levels:
        lines += [
            "",
            "Reference levels for this synthetic task (nats/char): "
            + ", ".join(f"{k} {v:.3f}" for k, v in comparison.levels.items()),
        ]
    lines += [
        "",
        "![validation loss vs step](loss_vs_step.png)",
        "",
        "![validation loss vs wall time](loss_vs_time.png)",
        "",
    ]
    if comparison.several_seeds:
        every = {f"{r.model} seed {r.seed}": [r] for r in comparison.results}
        lines += ["## Every run", "", *_table(every), ""]
    shown = sample_runs(comparison)
    lines += ["## Samples", ""]
    steps = sorted({s for r in shown.values() for s in r.samples_by_step})
    lines += ["| step | " + " | ".join(shown) + " |", "|---|" + "---|" * len(shown)]
    for step in steps:
        cells = [_cell(r.samples_by_step.get(step, "")) for r in shown.values()]
        lines.append(f"| {step} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def write_report(
    comparison: Comparison, out_dir: Path, title: str, sections: Sequence[str] = ()
) -> list[Path]:
    """report.md and its plots in `out_dir`; the written paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = plot_curves(comparison, out_dir)
    report = out_dir / names.REPORT_FILE
    report.write_text(markdown(comparison, title, sections), encoding="utf-8")
    return [report, *paths]
