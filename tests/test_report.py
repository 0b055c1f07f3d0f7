"""The comparison report over seeds: mean ± deviation cells, mean curves with their band."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from scheduler import report
from scheduler.compare import Comparison
from scheduler.result import ModelResult
from shared import names


def quality(word_share: float, judge: float, copy: float, repetition: float) -> dict[str, float]:
    """A run's text quality: its last samples' measures, and the held-out text's (fixed)."""
    return {
        names.METRIC_SAMPLE_WORD_SHARE: word_share,
        names.METRIC_SAMPLE_REF_BPC: judge,
        names.METRIC_SAMPLE_COPY_SPAN: copy,
        names.METRIC_SAMPLE_REPETITION: repetition,
        names.METRIC_HELDOUT_WORD_SHARE: 0.99,
        names.METRIC_HELDOUT_REF_BPC: 2.1,
        names.METRIC_HELDOUT_COPY_SPAN: 43.125,
        names.METRIC_HELDOUT_REPETITION: 0.07,
    }


def run(
    model: str,
    seed: int,
    losses: list[float],
    times: list[float],
    text: dict[str, float] | None = None,
) -> ModelResult:
    steps = [20 * (i + 1) for i in range(len(losses))]
    return ModelResult(
        model,
        f"{model}{seed}".ljust(32, "0"),
        "FINISHED",
        seed=seed,
        num_params=4321,
        steps=steps[-1],
        chars_per_s=1000.0 * seed,
        best_val_loss=min(losses),
        best_step=steps[losses.index(min(losses))],
        test_loss=min(losses) + 0.1,
        test_loss_best=min(losses) + 0.05,
        curve_steps=steps,
        curve_time_s=times,
        curve_val_loss=losses,
        samples_by_step={40: f"{model} seed {seed}"},
        sample_length=1000 if text else None,
        text_quality=text or {},
    )


def seeded() -> Comparison:
    return Comparison(
        [
            run("lstm", 1, [2.0, 1.5, 1.0], [1.0, 2.0, 3.0]),
            run("lstm", 2, [2.2, 1.7, 1.4], [1.5, 2.5, 3.5]),
            run("rnn", 1, [2.1, 1.9], [0.5, 1.0]),
            run("rnn", 2, [2.3, 2.0], [0.6, 1.2]),
        ],
        seeds=[1, 2],
    )


def test_a_cell_over_seeds_is_the_mean_with_its_sample_deviation() -> None:
    rows = {row[0]: row[1:] for row in report.table_rows(seeded().columns())}
    assert rows["status"] == ["2 FINISHED", "2 FINISHED"]
    assert rows["best val loss (nats/char)"] == ["1.200 ± 0.283", "1.950 ± 0.071"]
    assert rows["chars/s"] == ["1,500 ± 707", "1,500 ± 707"]
    assert rows["parameters"] == ["4,321", "4,321"]  # every run agrees: no spread to show
    assert rows["train time (s)"] == ["-", "-"]


def test_a_text_figure_over_seeds_is_the_mean_and_deviation_then_the_held_out_texts() -> None:
    runs = [
        run("lstm", 1, [1.0], [1.0], quality(0.96, 2.5, 120.0, 0.1)),
        run("lstm", 2, [1.0], [1.0], quality(0.98, 2.7, 80.0, 0.3)),
        run("rnn", 1, [1.0], [1.0], quality(0.5, 4.0, 20.0, 0.0)),
        run("rnn", 2, [1.0], [1.0]),  # ended before its first sample step
    ]
    comparison = Comparison(runs, seeds=[1, 2])
    rows = {row[0]: row[1:] for row in report.table_rows(comparison.columns())}
    assert rows["sample words in train"] == ["97% ± 1% (99%)", "50% (99%) (1/2)"]
    assert rows["sample judge bits/char"] == ["2.60 ± 0.14 (2.10)", "4.00 (2.10) (1/2)"]
    assert rows["sample longest copy"] == ["100 ± 28 (43)", "20 (43) (1/2)"]
    assert rows["sample repeated 3-grams"] == ["20% ± 14% (7%)", "0% (7%) (1/2)"]
    text = report.markdown(comparison, "t")
    assert "| sample judge bits/char | 2.60 ± 0.14 (2.10) | 4.00 (2.10) (1/2) |" in text
    assert "| sample judge bits/char | 2.50 (2.10) | 2.70 (2.10) | 4.00 (2.10) | - |" in text
    assert "Sample rows: the last samples' 1000 generated characters" in text


def test_one_run_per_column_prints_as_before_seeds_existed() -> None:
    one = Comparison(
        [run("lstm", 1, [2.0, 1.0], [1.0, 2.0], quality(1.0, 12.3456, 1000.0, 0.987))], seeds=[1]
    )
    rows = {row[0]: row[1:] for row in report.table_rows(one.columns())}
    assert rows == {
        "status": ["FINISHED"],
        "parameters": ["4,321"],
        "steps": ["40"],
        "train time (s)": ["-"],
        "chars/s": ["1,000"],
        "best val loss (nats/char)": ["1.000"],
        "best val bits/char": ["-"],
        "best val at step": ["40"],
        "test loss at best val (nats/char)": ["1.050"],
        "test bits/char at best val": ["-"],
        "final test loss (nats/char)": ["1.100"],
        "final test bits/char": ["-"],
        "sample words in train": ["100% (99%)"],
        "sample judge bits/char": ["12.35 (2.10)"],
        "sample longest copy": ["1,000 (43)"],
        "sample repeated 3-grams": ["99% (7%)"],
    }
    text = report.markdown(one, "t")
    assert "±" not in text and "Every run" not in text and "| lstm |" in text


def test_the_seeded_report_says_what_its_figures_are_and_lists_every_run() -> None:
    text = report.markdown(seeded(), "seqq compare: lstm vs rnn")
    assert "over 2 seeds (1, 2)" in text
    assert "| measure | lstm | rnn |" in text
    assert "## Every run" in text and "| measure | lstm seed 1 | lstm seed 2 | rnn seed 1 |" in text
    assert "| 40 | lstm seed 1 | rnn seed 1 |" in text  # each model's first seed's samples
    assert "lstm (seed 1)" in text


def test_the_mean_curve_is_every_run_interpolated_on_the_range_all_cover() -> None:
    band = report.mean_band([([0, 10, 20], [3.0, 2.0, 1.0]), ([5, 15, 30], [4.0, 3.0, 0.0])])
    assert band is not None
    x, mean, low, high = band
    assert x.tolist() == [5, 10, 15, 20]  # the second run starts at 5, the first ends at 20
    first, second = np.array([2.5, 2.0, 1.5, 1.0]), np.array([4.0, 3.5, 3.0, 2.0])
    assert mean.tolist() == pytest.approx(((first + second) / 2).tolist())
    assert low.tolist() == first.tolist() and high.tolist() == second.tolist()


def test_one_curve_is_its_own_mean_and_unusable_points_are_left_out() -> None:
    band = report.mean_band([([20, 40, 60], [2.0, math.nan, 1.0])])
    assert band is not None
    x, mean, low, high = band
    assert x.tolist() == [20, 60] and mean.tolist() == low.tolist() == high.tolist() == [2.0, 1.0]
    assert report.mean_band([([0, 1], [1.0, 1.0]), ([2, 3], [1.0, 1.0])]) is None
    assert report.mean_band([([math.nan], [1.0])]) is None


def test_the_seeded_report_draws_both_plots(tmp_path: Path) -> None:
    paths = report.write_report(seeded(), tmp_path, "t")
    assert sorted(p.name for p in paths) == ["loss_vs_step.png", "loss_vs_time.png", "report.md"]
    assert all(p.stat().st_size > 1000 for p in paths)
