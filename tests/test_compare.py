"""A comparison over seeds: which children it trains, and how their figures are summarised."""

from __future__ import annotations

import statistics

import pytest

from scheduler import compare as cmp
from scheduler import result
from scheduler.compare import Comparison
from scheduler.result import ModelResult
from shared import names
from shared.errors import SpecError
from shared.spec import TrainSpec


@pytest.mark.parametrize("text", ["0", "-2", "abc", "1.5", ""])
def test_seeds_below_one_or_not_a_whole_number_are_refused_in_one_line_naming_the_flag(
    text: str,
) -> None:
    with pytest.raises(SpecError) as caught:
        cmp.parse_seeds(text)
    message = str(caught.value)
    assert message.startswith("--seeds: ") and "\n" not in message
    assert caught.value.exit_code == 2


def test_seeds_are_the_specs_seed_and_the_next_ones() -> None:
    spec = TrainSpec.model_validate({"run": {"seed": 7}})
    assert cmp.parse_seeds(" 3 ") == 3
    assert cmp.seed_list(spec, 3) == [7, 8, 9]
    assert cmp.seed_list(TrainSpec(), 1) == [TrainSpec().run.seed]
    with pytest.raises(SpecError, match="--seeds"):
        cmp.seed_list(spec, 0)


def test_every_model_trains_with_the_same_seeds_and_nothing_else_differs() -> None:
    spec = TrainSpec.model_validate({"run": {"seed": 7}, "optim": {"max_steps": 50}})
    specs = cmp.child_specs(spec, ["lstm", "rnn"], [7, 8])
    # Seed by seed: children trained one after another alternate models.
    assert list(specs) == ["lstm-seed-7", "rnn-seed-7", "lstm-seed-8", "rnn-seed-8"]
    assert {(s.model.cell, s.run.seed) for s in specs.values()} == {
        ("lstm", 7), ("rnn", 7), ("lstm", 8), ("rnn", 8)
    }  # fmt: skip
    base = spec.flat()
    for child in specs.values():
        differing = {k for k, v in child.flat().items() if base[k] != v}
        assert differing <= {"model.cell", "run.seed"}
    assert cmp.child_run_name(spec, "rnn-seed-8") == "compare-rnn-seed-8"


def test_one_seed_keeps_a_plain_comparisons_children_and_names() -> None:
    spec = TrainSpec()
    specs = cmp.child_specs(spec, ["lstm", "rnn"], [spec.run.seed])
    assert list(specs) == ["lstm", "rnn"]
    assert all(s.run.seed == spec.run.seed for s in specs.values())


def test_the_figures_are_the_numbers_a_run_reports_and_not_its_seed() -> None:
    assert result.FIGURES == (
        "num_params",
        "steps",
        "train_time_s",
        "chars_per_s",
        "best_val_loss",
        "best_val_bpc",
        "best_step",
        "test_loss",
        "test_bpc",
        "test_loss_best",
        "test_bpc_best",
    )
    # The text-quality figures live in `text_quality` by metric name, each beside its held-out one.
    assert result.TEXT_FIGURES[:2] == (
        names.METRIC_SAMPLE_WORD_SHARE,
        names.METRIC_HELDOUT_WORD_SHARE,
    )
    assert set(result.TEXT_FIGURES) == set(names.TEXT_METRICS) | set(names.TEXT_METRICS.values())


def run(model: str, seed: int, loss: float | None, status: str = "FINISHED") -> ModelResult:
    return ModelResult(
        model,
        f"{model}{seed}".ljust(32, "0"),
        status,
        seed=seed,
        num_params=1000,
        steps=50,
        best_val_loss=2.0 + seed / 10,
        test_loss=loss,
        sample=f"{model} {seed}",
    )


def test_a_models_summary_is_the_mean_and_sample_deviation_of_its_runs() -> None:
    runs = [run("lstm", 1, 1.0), run("lstm", 2, 1.5), run("lstm", 3, None, "FAILED")]
    summary = result.summarise(runs)
    assert summary["runs"] == 3 and summary["seeds"] == [1, 2, 3]
    assert summary["statuses"] == {"FINISHED": 2, "FAILED": 1}
    val = summary["best_val_loss"]
    assert val["mean"] == pytest.approx(2.2) and val["n"] == 3
    assert val["std"] == pytest.approx(statistics.stdev([2.1, 2.2, 2.3]))
    assert (val["min"], val["max"]) == (pytest.approx(2.1), pytest.approx(2.3))
    # The failed run has no test loss: the mean is over the two that do, and says so.
    assert summary["test_loss"] == {"mean": 1.25, "std": pytest.approx(0.35355339), "min": 1.0,
                                    "max": 1.5, "n": 2}  # fmt: skip
    assert summary["num_params"]["std"] == 0.0 and summary["train_time_s"] is None
    assert result.summarise([run("rnn", 1, 1.0)])["test_loss"]["std"] is None


def test_a_models_summary_has_its_text_quality_spread_by_metric_as_a_run_has_its_values() -> None:
    runs = [run("lstm", 1, 1.0), run("lstm", 2, 1.5), run("lstm", 3, None, "FAILED")]
    runs[0].text_quality = {names.METRIC_SAMPLE_REF_BPC: 2.5, names.METRIC_HELDOUT_REF_BPC: 2.1}
    runs[1].text_quality = {names.METRIC_SAMPLE_REF_BPC: 2.7, names.METRIC_HELDOUT_REF_BPC: 2.1}
    quality = result.summarise(runs)["text_quality"]
    assert set(quality) == {names.METRIC_SAMPLE_REF_BPC, names.METRIC_HELDOUT_REF_BPC}
    judge = quality[names.METRIC_SAMPLE_REF_BPC]
    assert judge["mean"] == pytest.approx(2.6) and judge["n"] == 2
    assert judge["std"] == pytest.approx(statistics.stdev([2.5, 2.7]))
    assert quality[names.METRIC_HELDOUT_REF_BPC]["std"] == 0.0
    assert result.summarise([run("rnn", 1, 1.0)])["text_quality"] == {}


def test_the_json_has_every_runs_figures_and_each_models_summary() -> None:
    results = [run("lstm", 7, 1.0), run("lstm", 8, 1.2), run("rnn", 7, 1.4), run("rnn", 8, 1.8)]
    out = Comparison(results, parent_run_id="p" * 32, seeds=[7, 8]).summary()
    assert out["seeds"] == [7, 8] and "models" not in out
    assert [(r["model"], r["seed"]) for r in out["runs"]] == [
        ("lstm", 7), ("lstm", 8), ("rnn", 7), ("rnn", 8)
    ]  # fmt: skip
    assert out["runs"][3]["test_loss"] == 1.8 and out["runs"][3]["job_id"] == results[3].job_id
    assert set(out["summary"]) == {"lstm", "rnn"}
    assert out["summary"]["rnn"]["test_loss"]["mean"] == pytest.approx(1.6)


def test_one_seed_keeps_the_models_object_scripts_read() -> None:
    results = [run("lstm", 7, 1.0), run("rnn", 7, 1.4)]
    out = Comparison(results, seeds=[7]).summary()
    assert out["models"] == {"lstm": results[0].summary(), "rnn": results[1].summary()}
    assert out["summary"]["lstm"]["test_loss"] == {
        "mean": 1.0, "std": None, "min": 1.0, "max": 1.0, "n": 1
    }  # fmt: skip


def test_existing_runs_stay_one_column_each_even_of_one_model() -> None:
    twins = Comparison([run("lstm", 7, 1.0), run("lstm", 8, 1.2)])
    assert list(twins.columns()) == ["lstm lstm7000", "lstm lstm8000"]
    out = twins.summary()
    assert out["seeds"] is None and out["summary"]["lstm lstm8000"]["test_loss"]["mean"] == 1.2
