"""The benchmarks' own plumbing (tests/bench/): what they name, how their tables are drawn, and
`make gpu-check`'s behaviour on a machine without a GPU. The benchmarks themselves run on demand."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from tests.bench import common, gpu_check, memory_probe, render
from tests.bench.train_overhead import spread

BENCH = Path(__file__).parent / "bench"


# The paths a script would reach outside the repository by; built, not spelled, so that a grep
# for such paths (the project's before-stop hook) finds the scripts, not this check.
OUTSIDE = ("REPO.parent", "/".join(("..", "shared")))


def test_no_benchmark_reads_a_file_outside_the_repository():
    for script in BENCH.glob("*.py"):
        text = script.read_text(encoding="utf-8")
        assert not any(path in text for path in OUTSIDE), script.name


def test_the_corpus_a_benchmark_measured_is_named_by_its_hash_and_size(tmp_path: Path):
    text = "to be or not to be\n" * 2000
    path = tmp_path / "verse.txt"
    path.write_text(text, encoding="utf-8")
    corpus = common.describe_corpus(str(path))
    assert corpus["name"] == "verse.txt" and corpus["chars"] == len(text)
    assert corpus["sha256"] == __import__("hashlib").sha256(text.encode()).hexdigest()
    assert corpus["sha256"][:16] in common.corpus_line(corpus)


def test_the_default_reference_text_is_the_built_in_corpus():
    parser = __import__("argparse").ArgumentParser()
    common.add_data_option(parser)
    assert parser.parse_args([]).data == "builtin:stdlib"


def test_a_headline_ratio_is_the_median_of_per_round_ratios_with_its_spread():
    stats = spread([1.2, 0.9, 1.0, 0.8, 1.1])
    assert stats == {"median": 1.0, "q1": 0.9, "q3": 1.1, "min": 0.8, "max": 1.2, "rounds": 5}
    assert spread([0.95])["q1"] == spread([0.95])["q3"] == 0.95


def _stats(median: float) -> dict[str, float]:
    return {"median": median, "q1": median, "q3": median, "min": median - 0.1, "max": median + 0.1}


def _overhead_result() -> dict[str, Any]:
    def versus(bare: str, ratio: float) -> dict[str, Any]:
        return {"bare": bare, "bare_chars_per_s": 1000, "seqq_chars_per_s": 990,
                "ratio": _stats(ratio)}  # fmt: skip

    cell = {
        "fp32": versus("bare_fp32", 0.981),
        "default": versus("bare_bf16", 0.972) | {"precision": "bf16"},
        "hardware_bf16_over_fp32": _stats(1.777),
        "default_vs_bare_fp32": _stats(1.733),
    }
    config = {"quick": False, "layers": 2, "hidden": 256, "embedding": 64, "batch": 64,
              "seq": 128, "rounds": 5, "steps": 20, "steps_trained_lstm": 103,
              "other_processes_cores": 0.01}  # fmt: skip
    return {
        "bench": "train_overhead",
        "device": "cpu",
        "corpus": {
            "dataset": "builtin:stdlib",
            "name": "builtin-stdlib",
            "chars": 1000,
            "sha256": "ab" * 32,
        },
        "host": {"cpu": "a CPU", "usable_cores": 2, "torch": "2.13.0", "python": "3.11"},
        "cells": {"lstm": cell, "rnn": cell, "gru": cell},
        "lstm_val_loss": dict.fromkeys(
            ("seqq_default", "seqq_fp32", "bare_fp32", "bare_bf16"), 2.0
        ),
        "config": config,
        "targets": {"ratio_min": 0.97, "met": True},
    }


def test_the_overhead_table_compares_seqq_with_the_bare_loop_in_the_same_precision():
    table = render.markdown(_overhead_result())
    assert "| LSTM | fp32 | 1,000 | 990 | **0.981** [0.88-1.08] |" in table
    assert "| LSTM | default (bf16) | 1,000 | 990 | **0.972** [0.87-1.07] |" in table
    # bf16 over fp32 is the hardware's gain, on its own line, never in a seqq row.
    hardware = next(line for line in table.splitlines() if "Not seqq's doing" in line)
    assert "1.777" in hardware and "|" not in hardware
    assert "builtin-stdlib" in table and "abababababab" in table


def test_a_saved_result_renders_to_the_same_table_as_the_run_printed(tmp_path: Path, capsys):
    result = _overhead_result()
    saved = tmp_path / "train_overhead.json"
    saved.write_text(json.dumps(result), encoding="utf-8")
    render.main([str(saved)])
    assert capsys.readouterr().out == render.markdown(result)


def test_rendering_a_file_that_is_not_a_benchmark_result_fails_in_one_line(tmp_path: Path):
    other = tmp_path / "other.json"
    other.write_text('{"rows": []}', encoding="utf-8")
    with pytest.raises(SystemExit, match=r"other\.json: no known 'bench' name"):
        render.load(other)
    with pytest.raises(SystemExit, match=r"missing\.json: not found"):
        render.load(tmp_path / "missing.json")


def _compare_json(losses: dict[str, list[float]], chance: float, perfect: float) -> dict[str, Any]:
    """What `seqq compare --seeds N --json` prints, reduced to what the memory probe reads."""
    runs = [
        {"model": model, "seed": 7 + i, "job_id": f"{model}{i}", "status": "FINISHED",
         "best_val_loss": loss, "steps": 100 + i}
        for model, values in losses.items()
        for i, loss in enumerate(values)
    ]  # fmt: skip
    return {"levels": {"chance": chance, "perfect recall": perfect}, "runs": runs}


def test_the_memory_probe_gives_each_models_recall_over_seeds_and_the_lag_it_reaches():
    # chance 2, perfect 1: recall is 2 - loss.
    rows = [
        memory_probe.lag_row(5, _compare_json({"lstm": [1.1, 1.3], "rnn": [1.2, 1.6]}, 2, 1)),
        memory_probe.lag_row(10, _compare_json({"lstm": [1.4, 1.6], "rnn": [1.5, 1.9]}, 2, 1)),
        memory_probe.lag_row(20, _compare_json({"lstm": [1.9, 1.9], "rnn": [1.7, 2.0]}, 2, 1)),
    ]
    lstm = rows[0]["models"]["lstm"]
    assert [r["recall"] for r in lstm["runs"]] == pytest.approx([0.9, 0.7])
    assert [r["seed"] for r in lstm["runs"]] == [7, 8]
    assert lstm["recall"]["mean"] == pytest.approx(0.8) and lstm["recall"]["n"] == 2
    assert lstm["recall"]["std"] == pytest.approx(0.1414213, abs=1e-6)
    assert (lstm["recall"]["min"], lstm["recall"]["max"]) == pytest.approx((0.7, 0.9))
    # lstm's mean recall is 0.8, 0.5, 0.1; rnn's 0.6, 0.3, 0.15: it stops remembering earlier.
    assert render.memory_reach(rows, "lstm") == 10 and render.memory_reach(rows, "rnn") == 5
    result = {"bench": "memory_probe", "budget": "60s", "seeds": [7, 8], "rows": rows}
    text = render.markdown(result)
    assert "the same 2 seeds for every model and lag (7, 8)" in text
    assert "| 5 | 2.000 | 1.000 | 0.80 ± 0.14 [0.70, 0.90] | 1.200 ± 0.141 |" in text
    assert "Largest lag with mean recall >= 0.5: LSTM 10, simple RNN 5." in text


def test_a_memory_probe_result_saved_before_seeds_draws_as_one_seed():
    def row(lag: int, lstm: float, rnn: float) -> dict[str, Any]:
        return {"lag": lag, "dataset": "d", "chance": 2.0, "perfect": 1.0,
                "lstm": {"best_val_loss": 2.0 - lstm, "steps": 10, "recall": lstm},
                "rnn": {"best_val_loss": 2.0 - rnn, "steps": 20, "recall": rnn}}  # fmt: skip

    old = {"bench": "memory_probe", "budget": "60s", "rows": [row(5, 0.8, 0.3), row(10, 0.6, 0.1)]}
    text = render.markdown(old)
    assert "one seed per model and lag" in text and "±" not in text
    assert "| 5 | 2.000 | 1.000 | 0.80 | 1.200 | 0.30 | 1.700 | 10 / 20 |" in text
    assert "Largest lag with mean recall >= 0.5: LSTM 10, simple RNN none of these lags." in text


def _quality_run(seed: int, loss: float, share: float) -> dict[str, Any]:
    return {"seed": seed, "status": "FINISHED", "steps": 1000 + seed, "chars_per_s": 5000.0,
            "best_val_loss": loss, "best_step": 900, "test_loss_best": loss - 0.1,
            "final_val_loss": loss + 0.02, "test_loss": loss - 0.08,
            "last10_loss_best": loss - 0.05,
            "text_quality": {"sample_word_share": share, "heldout_word_share": 0.9,
                             "sample_ref_bpc": 3.0, "heldout_ref_bpc": 2.5,
                             "sample_copy_span": 20.0, "heldout_copy_span": 15.0,
                             "sample_repetition": 0.01, "heldout_repetition": 0.0},
            "curve": []}  # fmt: skip


def test_the_quality_table_gives_each_figure_and_text_measure_over_seeds():
    from tests.bench import quality

    runs = {"lstm": [_quality_run(0, 1.3, 0.8), _quality_run(1, 1.5, 0.6)],
            "rnn": [_quality_run(0, 1.6, 0.5), _quality_run(1, 1.6, 0.7)]}  # fmt: skip
    models = {m: {"runs": r, "summary": quality.spreads(r)} for m, r in runs.items()}
    lstm = models["lstm"]["summary"]
    assert lstm["best_val_loss"]["mean"] == pytest.approx(1.4)
    assert lstm["best_val_loss"]["std"] == pytest.approx(0.1414213, abs=1e-6)
    assert lstm["text_quality"]["sample_word_share"]["mean"] == pytest.approx(0.7)
    result = {"bench": "quality", "budget_s": 120.0, "seeds": [0, 1], "sample_length": 1000,
              "models": models}  # fmt: skip
    text = render.markdown(result)
    assert "the same 2 seeds for every model (0, 1)" in text
    assert (
        "| LSTM | 1,000 ± 1 | 5,000 ± 0 | **1.400 ± 0.141** (step 900) | **1.300 ± 0.141** |"
        in text
    )
    assert "| simple RNN | 0.60 ± 0.14 | 3.00 ± 0.00 | 20 ± 0 | 0.010 ± 0.000 |" in text
    assert "| held-out text | 0.90 | 2.50 | 15 | 0.000 |" in text
    assert "(1000 characters)" in text
    assert "| last 10% at best val |" in text and "| 1.320 ± 0.141 | 1.350 ± 0.141 |" in text


def test_a_quality_result_saved_before_seeds_draws_as_one_seed():
    old = {"bench": "quality", "budget_s": 180.0, "models": {"lstm": {
        "best_val_loss": 1.35, "best_val_step": 1412, "test_loss_at_best": 1.17,
        "final_val_loss": 1.36, "test_loss_final": 1.18, "steps": 1412, "chars_per_s": 6e4,
        "curve": []}}}  # fmt: skip
    text = render.markdown(old)
    assert "one seed" in text and "±" not in text and "held-out text" not in text
    assert "| last 10% at best val |" not in text
    assert "| LSTM | 1,412 | 60,000 | **1.350** (step 1,412) | **1.170** | 1.360 | 1.180 |" in text


@pytest.mark.integration
def test_the_memory_probe_runs_one_seeded_compare_per_lag_and_its_json_draws_its_table(
    tmp_path: Path, capsys
):
    memory_probe.main(["--lags", "3,4", "--seeds", "2", "--budget", "1s", "--json"])
    printed = capsys.readouterr().out
    result = json.loads(printed)
    assert result["seeds"] == [1337, 1338] and [row["lag"] for row in result["rows"]] == [3, 4]
    for row in result["rows"]:
        assert set(row["models"]) == {"lstm", "rnn"}
        for model in row["models"].values():
            assert [run["seed"] for run in model["runs"]] == [1337, 1338]
            assert model["recall"]["n"] == 2 and model["best_val_loss"]["n"] == 2
    assert set(result["reach"]) == {"lstm", "rnn"} and result["threshold"] == 0.5
    saved = tmp_path / "memory_probe.json"
    saved.write_text(printed, encoding="utf-8")
    memory_probe.main(["--markdown-from", str(saved)])
    assert capsys.readouterr().out == render.markdown(result)


def test_gpu_check_without_nvidia_smi_stops_in_one_line_with_exit_code_2(monkeypatch, capsys):
    monkeypatch.setattr(gpu_check.shutil, "which", lambda _name: None)
    assert gpu_check.main([]) == gpu_check.NO_GPU_EXIT
    assert gpu_check.main(["--preflight"]) == gpu_check.NO_GPU_EXIT
    err = capsys.readouterr().err.strip().splitlines()
    assert (
        err == ["gpu-check: no nvidia-smi on PATH: this machine has no NVIDIA driver (or GPU)"] * 2
    )


def test_gpu_check_with_a_driver_but_a_torch_without_cuda_names_the_torch_build(monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    reason = gpu_check.missing_gpu(which=lambda _name: "/usr/bin/nvidia-smi")
    assert reason is not None and "\n" not in reason
    assert f"torch {torch.__version__}" in reason and "sees no CUDA device" in reason


def test_gpu_check_writes_its_summary_where_the_environment_says(monkeypatch, tmp_path: Path):
    out = tmp_path / "summary.json"
    monkeypatch.setenv("SEQQ_GPU_CHECK_OUT", str(out))
    monkeypatch.setattr(gpu_check, "missing_gpu", lambda: None)
    monkeypatch.setattr(gpu_check, "check", lambda name, summary, _body: summary.update(
        {name: {"ok": True, "result": name}}))  # fmt: skip
    import torch

    monkeypatch.setattr(torch.cuda, "get_device_name", lambda: "a GPU")
    assert gpu_check.main([]) == 0
    summary = json.loads(out.read_text(encoding="utf-8"))
    assert summary["ok"] and summary["gpu"] == "a GPU" and summary["worker_job"]["ok"]
    assert os.environ["SEQQ_GPU_CHECK_OUT"] == str(out)


def test_the_sweep_table_shows_each_seed_and_every_target_beside_its_figure():
    def sweep(best: float, seconds: float, pruned: int) -> dict[str, Any]:
        return {"best_val_loss": best, "train_s": seconds, "counts": {"PRUNED": pruned}}

    result = {
        "bench": "sweep",
        "host": {"cpu": "x", "usable_cores": 2, "python": "3.11", "torch": "2.13.0"},
        "corpus": {"dataset": "builtin:stdlib", "name": "b", "sha256": "0" * 64, "chars": 10},
        "trials": 8,
        "rate_trials": 4,
        "steps": 600,
        "eval_every": 50,
        "space": ["optim.lr: {log: [1.0e-4, 3.0e-2]}"],
        "pruning": [
            {
                "seed": 0,
                "none": sweep(1.50, 300, 0),
                "asha": sweep(1.51, 90, 5),
                "loss_gap": 0.01,
                "time_ratio": 0.3,
                "replay": {
                    "asha 50x4 (seqq's)": {
                        "loss_gap": 0.0,
                        "time_ratio": 0.31,
                        "shuffled": {
                            "orders": 20,
                            "mean_gap": 0.0,
                            "misses": 0.0,
                            "mean_time_ratio": 0.25,
                        },
                    },
                    "asha 50x2": {
                        "loss_gap": 0.004,
                        "time_ratio": 0.52,
                        "shuffled": {
                            "orders": 20,
                            "mean_gap": 0.011,
                            "misses": 0.15,
                            "mean_time_ratio": 0.4,
                        },
                    },
                },
            },
            {
                "seed": 1,
                "none": sweep(1.40, 310, 0),
                "asha": sweep(1.45, 120, 4),
                "loss_gap": 0.05,
                "time_ratio": 0.387,
            },
        ],
        "prune_to_next_trial_s": {"median": 0.6, "min": 0.5, "max": 0.9, "n": 9},
        "report_overhead": {"median": 1.004, "min": 0.99, "max": 1.01, "n": 3},
        "report_share": {"median": 0.0012, "min": 0.0008, "max": 0.0031, "n": 32},
        "trials_per_hour": {"1": 100.0, "2": 190.0},
        "efficiency_2_workers": 0.95,
    }
    text = render.markdown(result)
    assert "| 0 | 1.500 | 1.510 | +0.010 | 300 | 90 | **0.30** | 5 |" in text
    assert "| 1 | 1.400 | 1.450 | +0.050 | 310 | 120 | **0.39** | 4 |" in text
    assert "median **0.60 s**" in text and "target <= 2 s" in text
    assert "**1.004**" in text and "target < 1.01" in text
    assert "median **0.120%** of a trial's training time (max 0.310%, 32 trials" in text
    assert "efficiency **0.95** (target >= 0.9)" in text
    assert "trials per hour (4-trial sweeps): 100 on one one-core worker, 190 on two" in text
    # The replay table has a column for the seeds that carry one, here seed 0 alone.
    assert "| replayed over the unpruned trials | seed 0: gap / time |" in text
    assert "| asha 50x4 (seqq's) | +0.000 / 0.31 (+0.000 / 0.25, 0%) |" in text
    assert "| asha 50x2 | +0.004 / 0.52 (+0.011 / 0.40, 15%) |" in text
    assert "mean over 20 shuffled orders" in text


def test_the_tuned_comparison_table_shows_default_beside_tuned_and_the_values_chosen():
    def figures(val: float, std: float | None) -> dict[str, Any]:
        def s(mean: float, sd: float | None) -> dict[str, Any]:
            return {"mean": mean, "std": sd, "min": mean, "max": mean, "n": 2}

        return {
            "best_val_loss": s(val, std),
            "test_loss_best": s(val + 0.1, std),
            "steps": s(400.0, 10.0),
            "chars_per_s": s(30000.0, 500.0),
            "sample_ref_bpc": s(2.5, 0.1),
        }

    model = {
        "default_values": {"optim.lr": 0.003, "model.hidden_size": 256},
        "sweep_best_val_loss": 1.3,
        "counts": {"RUNNING": 0, "COMPLETE": 3, "PRUNED": 5, "FAILED": 0},
    }
    result = {
        "bench": "tuned_compare",
        "host": {"cpu": "x", "usable_cores": 2, "python": "3.11", "torch": "2.13.0"},
        "corpus": {"dataset": "builtin:stdlib", "name": "b", "sha256": "0" * 64, "chars": 10},
        "budget_s": 1200.0,
        "trial_budget_s": 150.0,
        "trials": 8,
        "seeds": 2,
        "space": ["optim.lr: {log: [3.0e-4, 3.0e-2]}", "model.hidden_size: [128, 256, 512]"],
        "models": {
            "lstm": {
                **model,
                "variants": {"default": figures(1.5, 0.02), "tuned": figures(1.4, 0.01)},
                "tuned_values": {"optim.lr": 0.0123, "model.hidden_size": 512},
            },
            "rnn": {
                **model,
                "variants": {"default": figures(1.9, None)},
                "tuned_values": None,  # its sweep completed no trial
            },
        },
    }
    text = render.markdown(result)
    # A result saved before the last-10% figure draws "-" in its column.
    assert "| LSTM default | 1.500 ± 0.020 | 1.600 ± 0.020 | - | 400 ± 10 | 30,000 ± 500 |" in text
    assert "| LSTM tuned | 1.400 ± 0.010 |" in text
    assert "| simple RNN default | 1.900 | 2.000 |" in text
    assert "simple RNN tuned" not in text
    assert "| optim.lr | 0.003 -> 0.0123 | 0.003 -> - |" in text
    assert "| model.hidden_size | 256 -> 512 | 256 -> - |" in text
    assert "| sweep trials | 3 complete, 5 pruned | 3 complete, 5 pruned |" in text
    assert "1200 s of training time (150 s a trial)" in text
    assert "ranking trials" not in text  # a result from before the rungs were seconds

    # A model whose sweep chose its default shows its default runs as its tuned row, so said.
    result["models"]["rnn"] |= {
        "variants": {"default": figures(1.9, None), "tuned": figures(1.9, None)},
        "tuned_values": {"optim.lr": 0.003, "model.hidden_size": 256},
        "default_won": True,
    }
    result["asha_first_rung_s"] = 6.0
    text = render.markdown(result)
    assert "| simple RNN tuned (= default: its sweep chose it; the same runs) | 1.900 |" in text
    assert "(8 trials, TPE, ASHA ranking trials at 6 s and 30 s of training)" in text
    assert "| LSTM tuned | 1.400 ± 0.010 |" in text


def test_a_replayed_pruner_loses_the_trial_that_starts_slow_and_ends_best():
    from tests.bench import sweep as sweep_bench

    def trial(number: int, values: list[float]) -> dict[str, Any]:
        return {
            "number": number,
            "train_s": 10.0,
            "curve": [[100 * (i + 1), v] for i, v in enumerate(values)],
        }

    # Trial 1 trails trial 0 at the first evaluation (step 100) and ends best: ASHA's first
    # rung, with a factor of 5 and trial 0 leading there, stops it at step 100 of 400.
    trials = [trial(0, [2.0, 1.8, 1.6, 1.5]), trial(1, [2.5, 1.7, 1.3, 1.0])]
    out = sweep_bench.replay(trials, steps=400, eval_every=100, orders=2)
    seqq = out["asha 100x5 (seqq's)"]
    assert seqq["loss_gap"] == pytest.approx(0.5)  # 1.5 kept, 1.0 lost
    assert seqq["time_ratio"] == pytest.approx((10.0 + 10.0 * 100 / 400) / 20.0)
    # Shuffled, trial 1 first is kept (first at its rung), then trial 0 is pruned: no gap.
    assert seqq["shuffled"]["orders"] == 2
    assert out["median 100"]["loss_gap"] == pytest.approx(0.0)  # median waits for 5 trials


def test_the_tuned_comparisons_last_10_percent_is_each_runs_mean_of_val_and_test_over_seeds():
    from tests.bench import tuned_compare

    runs = [
        {"best_val_loss": 1.4, "test_loss_best": 1.6},
        {"best_val_loss": 1.2, "test_loss_best": 1.6},
        {"best_val_loss": 1.3, "test_loss_best": None},  # failed before its test: left out
    ]
    spread = tuned_compare.last10(runs)
    assert spread is not None and spread["n"] == 2
    assert spread["mean"] == pytest.approx(1.45) and spread["min"] == pytest.approx(1.4)
    assert tuned_compare.last10([]) is None


def _defaults_check(spec: str, budget_s: float, best: float, final: float) -> dict[str, Any]:
    def s(v: float) -> dict[str, Any]:
        return {"mean": v, "std": None, "min": v, "max": v, "n": 1}

    summary = {"steps": s(500.0), "best_val_loss": s(best), "best_step": s(400.0),
               "final_val_loss": s(final), "end_gap": s(final - best),
               "test_loss_best": s(best + 0.2), "test_loss": s(final + 0.2)}  # fmt: skip
    return {"spec": spec, "budget_s": budget_s, "runs": [], "summary": summary}


def test_the_defaults_table_shows_each_budget_with_how_far_the_end_is_above_the_best():
    result = {
        "bench": "defaults", "model": "lstm", "seeds": 1,
        "host": {"cpu": "x", "usable_cores": 2, "python": "3.11", "torch": "2.13.0"},
        "corpus": {"dataset": "t.txt", "name": "t", "sha256": "0" * 64, "chars": 10},
        "sweep": {"trials": 8, "trial_budget_s": 600.0,
                  "space": {"model.dropout": {"range": [0, 0.3]}}, "best_value": 1.4,
                  "best_values": {"model.dropout": 0.2},
                  "counts": {"RUNNING": 0, "COMPLETE": 2, "PRUNED": 6, "FAILED": 0}},
        "candidates": {"default": {"model.dropout": 0.0}, "chosen": {"model.dropout": 0.2}},
        "checks": [_defaults_check("default", 120.0, 1.6, 1.6),
                   {**_defaults_check("default", 600.0, 1.45, 1.5), "source": "sweep trial 0"}],
    }  # fmt: skip
    text = render.markdown(result)
    assert "8 trials of 10 min" in text and "2 complete, 6 pruned" in text
    assert "| 2 min | default (dropout 0) | 500 | 1.600 (step 400) | 1.600 | 0.000 |" in text
    assert (
        "| 10 min (sweep trial 0) | default (dropout 0) | 500 | 1.450 (step 400) | 1.500 | 0.050 |"
        in text
    )


def test_the_defaults_sweep_lists_every_trial_with_its_values_when_the_result_keeps_them():
    rows = [{"number": 0, "state": "COMPLETE", "values": {"optim.lr": 0.003}, "steps": 2500,
             "best_val_loss": 1.42, "pruned_step": None, "base": True},
            {"number": 1, "state": "PRUNED", "values": {"optim.lr": 0.0123}, "steps": None,
             "best_val_loss": 1.91, "pruned_step": 200, "base": False}]  # fmt: skip
    result = {
        "bench": "defaults", "model": "lstm", "seeds": 1,
        "host": {"cpu": "x", "usable_cores": 2, "python": "3.11", "torch": "2.13.0"},
        "corpus": {"dataset": "t.txt", "name": "t", "sha256": "0" * 64, "chars": 10},
        "sweep": {"trials": 2, "trial_budget_s": 600.0, "pruner": "none",
                  "space": {"optim.lr": {"log": [0.001, 0.02]}}, "best_value": 1.42,
                  "best_values": {"optim.lr": 0.003}, "best_is_base": True, "trial_rows": rows,
                  "counts": {"COMPLETE": 1, "PRUNED": 1}},
        "candidates": {"default": {"optim.lr": 0.003}, "chosen": {"optim.lr": 0.003}},
        "checks": [{**_defaults_check("default", 600.0, 1.42, 1.42), "source": "sweep trial 0"}],
    }  # fmt: skip
    text = render.markdown(result)
    assert "TPE, no pruning," in text and "was the default." in text
    assert "| 0 (default) | lr 0.003 | complete | 2,500 | 1.420 |" in text
    assert "| 1 | lr 0.0123 | pruned |  | 1.910 |" in text


def test_a_grid_sweep_marks_the_point_that_draws_the_default_as_the_default():
    rows = [{"number": n, "state": "COMPLETE", "values": {"model.dropout": d}, "steps": 900,
             "best_val_loss": v, "pruned_step": None, "base": False}
            for n, d, v in ((0, 0.4, 1.41), (1, 0.3, 1.40), (2, 0.2, 1.43))]  # fmt: skip
    result = {
        "bench": "defaults", "model": "lstm", "seeds": 1,
        "host": {"cpu": "x", "usable_cores": 2, "python": "3.11", "torch": "2.13.0"},
        "corpus": {"dataset": "t.txt", "name": "t", "sha256": "0" * 64, "chars": 10},
        "sweep": {"trials": 3, "trial_budget_s": 1800.0, "pruner": "none", "sampler": "grid",
                  "space": {"model.dropout": [0.2, 0.3, 0.4]}, "best_value": 1.40,
                  "best_values": {"model.dropout": 0.3}, "best_is_base": True, "trial_rows": rows,
                  "counts": {"COMPLETE": 3}},
        "candidates": {"default": {"model.dropout": 0.3}, "chosen": {"model.dropout": 0.3}},
        "checks": [{**_defaults_check("default", 1800.0, 1.40, 1.40), "source": "sweep trial 1"}],
    }  # fmt: skip
    text = render.markdown(result)
    assert "grid, no pruning, the default of the day one of its points;" in text
    assert "| 1 (default) | dropout 0.3 | complete |" in text
    assert "| 0 | dropout 0.4 | complete |" in text and "| 2 | dropout 0.2 | complete |" in text
    assert "was the default. Then the default trained at each budget" in text


def test_the_defaults_check_at_the_trial_budget_is_the_trial_that_trained_the_default():
    grid = [{"number": 0, "values": {"model.dropout": 0.4}},
            {"number": 1, "values": {"model.dropout": 0.3}}]  # fmt: skip
    assert render.default_trial(grid, {"model.dropout": 0.3}) == grid[1]
    assert render.default_trial(grid, {"model.dropout": 0.1}) is None
    based = [{"number": 0, "values": {"optim.lr": 0.003}, "base": True},
             {"number": 1, "values": {"optim.lr": 0.003}}]  # fmt: skip
    assert render.default_trial(based, {"optim.lr": 0.003}) == based[0]


def test_a_defaults_candidate_given_with_values_is_labelled_a_candidate_not_a_choice():
    result = {
        "bench": "defaults", "model": "lstm", "seeds": 1, "sweep": None,
        "host": {"cpu": "x", "usable_cores": 2, "python": "3.11", "torch": "2.13.0"},
        "corpus": {"dataset": "t.txt", "name": "t", "sha256": "0" * 64, "chars": 10},
        "candidates": {"default": {"model.dropout": 0.0}, "chosen": {"model.dropout": 0.3}},
        "checks": [_defaults_check("default", 1800.0, 1.45, 1.65),
                   _defaults_check("chosen", 1800.0, 1.40, 1.40)],
    }  # fmt: skip
    text = render.markdown(result)
    assert "given (`--values`), not searched" in text and "chosen" not in text
    assert "| 30 min | default (dropout 0) | 500 | 1.450 (step 400) | 1.650 | 0.200 |" in text
    assert "| 30 min | candidate (dropout 0.3) | 500 | 1.400 (step 400) | 1.400 | 0.000 |" in text


def test_merging_defaults_checks_adds_new_budgets_and_replaces_a_remeasured_one():
    from tests.bench import defaults

    candidates = {"default": {"model.dropout": 0.0}, "chosen": {"model.dropout": 0.2}}
    saved = {"candidates": candidates, "corpus": {"sha256": "a"}, "sweep": {"trials": 8},
             "checks": [_defaults_check("default", 120.0, 1.6, 1.6),
                        _defaults_check("chosen", 120.0, 1.7, 1.7)]}  # fmt: skip
    new = {"candidates": candidates, "corpus": {"sha256": "a"}, "sweep": None,
           "checks": [_defaults_check("chosen", 120.0, 1.5, 1.5),
                      _defaults_check("default", 1800.0, 1.3, 1.4)]}  # fmt: skip
    merged = defaults.merge(saved, new)
    assert [(c["spec"], c["budget_s"]) for c in merged["checks"]] == [
        ("default", 120.0),
        ("chosen", 120.0),
        ("default", 1800.0),
    ]
    assert merged["checks"][1]["summary"]["best_val_loss"]["mean"] == 1.5  # the new one
    assert merged["sweep"] == {"trials": 8}
    with pytest.raises(SystemExit, match="--merge"):
        defaults.merge(saved, {**new, "corpus": {"sha256": "b"}})


def test_the_tuned_comparison_records_asha_ranking_its_timed_trials_at_equal_time():
    from tests.bench import tuned_compare

    # 8 trials of 150 s: rungs at 150 / 5^2 and 150 / 5 seconds of training.
    assert tuned_compare.first_rung_s(150.0, 8) == pytest.approx(6.0)
