"""The terminal output reads at 80 and 120 columns: nothing cut, no line wider than the terminal."""

from __future__ import annotations

import io
import math

import pytest
from rich.console import Console, RenderableType

from scheduler.cli import display
from scheduler.compare import Comparison
from scheduler.report import table_rows
from scheduler.result import ModelResult
from shared import names

WIDTHS = (80, 120)
URL = "http://mlflow.example.org:5000/#/experiments/12/runs/" + "e" * 32


def terminal(width: int) -> Console:
    """A terminal `width` columns wide, set up as the CLI's console is (soft-wrapping lines)."""
    return Console(width=width, soft_wrap=True, record=True, file=io.StringIO())


def render(renderable: RenderableType, width: int) -> list[str]:
    """The lines `seqq` shows on that terminal for a table or panel."""
    out = terminal(width)
    display.show(renderable, out)
    return out.export_text().splitlines()


def render_comparison(comparison: Comparison, width: int) -> list[str]:
    out = terminal(width)
    display.show_comparison(comparison, out)
    return out.export_text().splitlines()


def assert_fits(lines: list[str], width: int, allowed_wider: str = "\0") -> None:
    text = "\n".join(lines)
    assert "…" not in text, text
    too_wide = [line for line in lines if len(line) > width and allowed_wider not in line]
    assert not too_wide, text


def three_models() -> Comparison:
    """Two finished models with the widest numbers a long run produces, and a failed one."""

    def finished(model: str, job: str, val: float, test: float) -> ModelResult:
        return ModelResult(
            model,
            job * 32,
            "FINISHED",
            num_params=1_234_567,
            steps=100_000,
            train_time_s=12_345.6,
            chars_per_s=1_234_567.8,
            best_val_loss=val,
            best_val_bpc=val / math.log(2),
            best_step=99_500,
            test_loss=test,
            test_bpc=test / math.log(2),
            test_loss_best=test - 0.05,
            test_bpc_best=(test - 0.05) / math.log(2),
            sample="To be, " * 80,
            sample_length=1000,
            text_quality={  # the widest each cell gets: 100%, a judge of random text, 4 digits
                names.METRIC_SAMPLE_WORD_SHARE: 1.0,
                names.METRIC_HELDOUT_WORD_SHARE: 0.998,
                names.METRIC_SAMPLE_REF_BPC: 12.3456,
                names.METRIC_HELDOUT_REF_BPC: 2.1,
                names.METRIC_SAMPLE_COPY_SPAN: 1000.0,
                names.METRIC_HELDOUT_COPY_SPAN: 43.125,
                names.METRIC_SAMPLE_REPETITION: 0.987,
                names.METRIC_HELDOUT_REPETITION: 0.07,
            },
        )

    return Comparison(
        [
            finished("lstm", "a", 1.4567, 1.5),
            finished("rnn", "b", 1.8567, 1.9),
            ModelResult("gru", "c" * 32, "FAILED", error="CUDA out of memory"),
        ],
        parent_run_id="f" * 32,
        urls={"loss_vs_step": URL},
        levels={"chance": 3.2189, "perfect recall": 1.1},
    )


@pytest.mark.parametrize("width", WIDTHS)
def test_compare_shows_every_measure_and_value_whole(width: int) -> None:
    comparison = three_models()
    lines = render_comparison(comparison, width)
    assert_fits(lines, width, allowed_wider=URL)
    text = "\n".join(lines)
    for label, *values in table_rows(comparison.columns()):
        row = next(line for line in lines if line.startswith(f"│ {label} "))
        assert [cell.strip() for cell in row.strip("│").split("│")[1:]] == values
    assert f"loss vs step: {URL}" in text
    assert "chance 3.219, perfect recall 1.100" in text
    assert "gru sample" in text
    assert "the last samples' 1000 generated characters" in " ".join(text.split())


@pytest.mark.parametrize("width", WIDTHS)
def test_compare_heads_each_column_with_its_model(width: int) -> None:
    header = next(line for line in render_comparison(three_models(), width) if "lstm" in line)
    assert header.split() == ["┃", "┃", "lstm", "┃", "rnn", "┃", "gru", "┃"]


def test_compare_tells_apart_two_runs_of_the_same_model_by_their_ids() -> None:
    twins = Comparison(
        [ModelResult("lstm", "a" * 32, "FINISHED"), ModelResult("lstm", "b" * 32, "FINISHED")]
    )
    text = "\n".join(render_comparison(twins, 80))
    assert "lstm aaaaaaaa" in text and "lstm bbbbbbbb" in text


def test_a_sample_without_spaces_wraps_inside_its_panel() -> None:
    one = Comparison([ModelResult("rnn", "a" * 32, "FINISHED", sample="x" * 300)])
    lines = render_comparison(one, 80)
    assert_fits(lines, 80)
    assert sum(line.count("x") for line in lines) == 300


def three_models_three_seeds() -> Comparison:
    """Each model over seeds 7, 8, 9 with the widest numbers a long run produces; one rnn seed
    failed, so it has no test loss."""
    runs = []
    for m, model in enumerate(("lstm", "rnn", "gru")):
        for seed in (7, 8, 9):
            failed = model == "rnn" and seed == 9
            runs.append(
                ModelResult(
                    model,
                    f"{m}{seed}" * 16,
                    "FAILED" if failed else "FINISHED",
                    seed=seed,
                    num_params=1_234_567,
                    steps=100_000 + seed,
                    train_time_s=12_345.6 + seed,
                    chars_per_s=1_234_567.8 * seed,
                    best_val_loss=1.4567 + seed / 100,
                    best_val_bpc=(1.4567 + seed / 100) / math.log(2),
                    test_loss=None if failed else 1.5 + seed / 100,
                    test_bpc=None if failed else (1.5 + seed / 100) / math.log(2),
                    sample=f"seed {seed} says: " + "To be, " * 80,
                    sample_length=1000,
                    text_quality={} if failed else wide_text_quality(seed),
                )
            )
    return Comparison(runs, parent_run_id="f" * 32, urls={"loss_vs_step": URL}, seeds=[7, 8, 9])


def wide_text_quality(seed: int) -> dict[str, float]:
    """The widest text-quality cells over seeds: a spread in every figure, 4-digit copies."""
    return {
        names.METRIC_SAMPLE_WORD_SHARE: 1.0 - seed / 100,
        names.METRIC_HELDOUT_WORD_SHARE: 0.998,
        names.METRIC_SAMPLE_REF_BPC: 12.3456 - seed,
        names.METRIC_HELDOUT_REF_BPC: 12.1,
        names.METRIC_SAMPLE_COPY_SPAN: 1000.0 * seed,
        names.METRIC_HELDOUT_COPY_SPAN: 1043.125,
        names.METRIC_SAMPLE_REPETITION: 0.1 * seed,
        names.METRIC_HELDOUT_REPETITION: 0.07,
    }


@pytest.mark.parametrize("width", WIDTHS)
def test_compare_over_seeds_shows_each_models_mean_and_spread_whole(width: int) -> None:
    lines = render_comparison(three_models_three_seeds(), width)
    assert_fits(lines, width, allowed_wider=URL)
    text = "\n".join(lines)
    header = next(line for line in lines if "lstm" in line and "┃" in line)
    assert header.split() == ["┃", "┃", "lstm", "┃", "rnn", "┃", "gru", "┃"]
    assert "3 seeds (7, 8, 9)" in " ".join(text.split())
    # The mean on the measure's line, the standard deviation under it.
    row = lines.index(next(line for line in lines if line.startswith("│ best val loss")))
    assert [c.strip() for c in lines[row].strip("│").split("│")[1:]] == ["1.537"] * 3
    assert [c.strip() for c in lines[row + 1].strip("│").split("│")[1:]] == ["± 0.010"] * 3
    assert "(2/3)" in text and "1 FAILED" in text
    # A text figure: the mean, then the spread with the held-out text's in brackets.
    row = lines.index(next(line for line in lines if line.startswith("│ sample judge")))
    assert [c.strip() for c in lines[row].strip("│").split("│")[1:]] == ["4.35", "4.85", "4.35"]
    assert [c.strip() for c in lines[row + 1].strip("│").split("│")[1:]] == [
        "± 1.00 (12.10)", "± 0.71 (12.10) (2/3)", "± 1.00 (12.10)"
    ]  # fmt: skip
    assert "the last samples' 1000 generated characters" in " ".join(text.split())
    assert "lstm (seed 7) sample" in text and "seed 7 says" in text


def jobs() -> list[dict[str, object]]:
    return [
        {
            "job_id": "3f2a" * 8,
            "status": "FINISHED",
            "model": "lstm",
            "name": "compare-lstm",
            "step": 2000,
            "max_steps": 2000,
            "val_loss": 1.23456,
            "test_loss": 1.34567,
            "start_time": 1_750_000_000_000,
        },
        {
            "job_id": "9b1c" * 8,
            "status": "RUNNING",
            "model": "gru",
            "name": "a-rather-long-run-name-for-a-sweep",
            "step": 200,
            "max_steps": 20_000,
            "val_loss": None,
            "test_loss": None,
            "start_time": 1_750_000_000_000,
        },
    ]


@pytest.mark.parametrize("width", WIDTHS)
def test_list_shows_whole_job_ids_names_and_numbers(width: int) -> None:
    lines = render(display.jobs_table(jobs()), width)
    assert_fits(lines, width)
    text = "\n".join(lines)
    for needle in ("3f2a" * 8, "9b1c" * 8, "FINISHED", "RUNNING", "200/20000", "1.235", "1.346"):
        assert needle in text
    first_column = "".join(line[: display.JOB_ID_WIDTH] for line in lines)
    assert "a-rather-long-run-name-for-a-sweep" in first_column  # folded in its column, not cut


@pytest.mark.parametrize("width", WIDTHS)
def test_status_shows_a_long_error_and_url_without_cutting_them(width: int) -> None:
    error = "RuntimeError: the worker lost its lease while training step 1234 of this job"
    job = {"job_id": "3f2a" * 8, "status": "FAILED", "error": error, "url": URL}
    lines = render(display.job_panel(job), width)
    assert_fits(lines, width)
    joined = " ".join(line.strip() for line in lines)
    assert error in joined
    assert URL in "".join(line.strip().removeprefix("url").strip() for line in lines)


@pytest.mark.parametrize("width", WIDTHS)
def test_workers_and_queue_show_whole_job_ids(width: int) -> None:
    worker = {
        "name": "seqq-gpu0@train-node-07",
        "host": "train-node-07",
        "gpu": "0",
        "queues": ["gpu.high", "gpu", "gpu.low"],
        "job": "9b1c" * 8,
        "jobs_done": 12,
        "uptime_s": 5432.1,
    }
    lines = render(display.workers_table([worker]), width)
    assert_fits(lines, width)
    assert "9b1c" * 8 in "\n".join(lines)
    queues = {"gpu": {"waiting": 4, "next": ["3f2a" * 8, "9b1c" * 8, "0d0e" * 8, "7777" * 8]}}
    lines = render(display.queue_table(queues), width)
    assert_fits(lines, width)
    text = "\n".join(lines)
    assert all(job * 8 in text for job in ("3f2a", "9b1c", "0d0e")) and "7777" not in text


@pytest.mark.parametrize("width", WIDTHS)
def test_a_sweeps_table_marks_the_trial_that_trains_the_base_spec(width: int) -> None:
    def row(number: int, state: str, lr: float, base: bool = False) -> dict[str, object]:
        return {"number": number, "state": state, "values": {"optim.lr": lr}, "value": None,
                "best_val_loss": 1.5, "steps": 300, "pruned_step": None, "run_id": "r" * 32,
                "error": None, "base": base}  # fmt: skip

    record = {
        "sweep_id": "s" * 32, "status": "FINISHED", "trials_wanted": 2,
        "counts": {"COMPLETE": 1, "PRUNED": 1}, "best": None, "url": URL,
        "trials": [row(0, "COMPLETE", 0.003, base=True), row(1, "PRUNED", 0.02)],
    }  # fmt: skip
    lines = render(display.sweep_view(record), width)
    assert_fits(lines, width, allowed_wider=URL)
    marked = [line for line in lines if "(base)" in line]
    assert len(marked) == 1 and marked[0].split()[0] == "0"
