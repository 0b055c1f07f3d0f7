"""`seqq compare --tune`: the plan's checks (budget, space against each cell) and the flow
against a real MLflow SQLite store and real journal studies, with stand-in jobs (the real ones
run end to end in tests/integration/test_compare_tune.py)."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest

from scheduler import compare_tune as ct
from shared import names
from shared.errors import SpecError
from shared.settings import Settings
from shared.spec import UNCAPPED_STEPS, TrainSpec
from tests.test_sweep import BAD, GOOD, stand_in


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(home=tmp_path / "home", mlflow_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")


@pytest.fixture
def corpus(text_file: Any) -> Path:
    return text_file("".join(f"line {i}: the quick brown fox jumps.\n" for i in range(600)))


def _raw(corpus: Path | str = "builtin:stdlib", **space: Any) -> dict[str, Any]:
    return {
        "model": {"cell": "gru", "hidden_size": 16},
        "data": {"dataset": str(corpus)},
        "optim": {"max_steps": 300, "time_budget": "1h"},
        "run": {"eval_every": 10, "experiment": "tune"},
        "space": space or {"optim.lr": [GOOD, BAD]},
        "sweep": {"trials": 4, "sampler": "random", "seed": 0},
    }


def _refused(raw: dict[str, Any], budget: str = "1h", models: tuple[str, ...] = ("lstm", "rnn")):
    with pytest.raises(SpecError) as caught:
        ct.plan_tune(raw, {}, list(models), budget, 1)
    assert "\n" not in str(caught.value) and caught.value.exit_code == 2
    return str(caught.value)


def test_each_model_sweeps_the_same_space_with_its_cell_and_budget_over_trials_per_trial() -> None:
    plan = ct.plan_tune(_raw(), {"model.hidden_size": 8}, ["lstm", "rnn"], "20m", 2)
    assert plan.budget_s == 1200 and plan.trials == 4 and plan.trial_budget_s == 300
    assert plan.seeds == [TrainSpec().run.seed, TrainSpec().run.seed + 1]
    for model in ("lstm", "rnn"):
        base = plan.sweeps[model].base
        assert base.model.cell == model and base.model.hidden_size == 8  # the flag over the file
        # The budget replaces the file's own: each run trains for the trial budget, no step cap.
        assert base.optim.time_budget == 300 and base.optim.max_steps == UNCAPPED_STEPS
        assert list(plan.sweeps[model].space) == ["optim.lr"]
    lstm, rnn = (plan.sweeps[m].base.flat() for m in ("lstm", "rnn"))
    assert {k for k in lstm if lstm[k] != rnn[k]} == {"model.cell"}


def test_a_grid_smaller_than_the_trials_divides_the_budget_by_its_size() -> None:
    raw = {**_raw(), "sweep": {"trials": 50, "sampler": "grid"}}
    plan = ct.plan_tune(raw, {}, ["lstm"], "60s", 1)
    assert plan.trials == 2 and plan.trial_budget_s == 30


@pytest.mark.parametrize("budget", ["0", "-5m", "soon", "", "10"])
def test_a_budget_that_is_no_duration_or_cannot_hold_one_trial_is_refused_naming_the_flag(
    budget: str,
) -> None:
    message = _refused(_raw(), budget)
    assert message.startswith("--budget: ")
    if budget == "10":  # 10 s over 4 trials: 2.5 s each
        assert "2.5s per trial" in message and "at least 20s" in message


@pytest.mark.parametrize("dotted", ["model.cell", "optim.time_budget", "optim.max_steps"])
def test_a_space_over_what_tune_sets_itself_is_refused(dotted: str) -> None:
    message = _refused(_raw(**{dotted: [1, 2] if dotted != "model.cell" else ["lstm", "gru"]}))
    assert f"space.{dotted}: " in message and "cannot be searched" in message


def test_a_space_value_the_spec_refuses_is_said_once_not_once_per_cell() -> None:
    message = _refused(_raw(**{"model.hidden_size": [0, 16]}))
    assert message.count("space.model.hidden_size: 0 is refused") == 1
    assert "model.cell" not in message


def test_final_specs_are_the_default_and_the_tuned_spec_differing_only_in_chosen_values() -> None:
    plan = ct.plan_tune(_raw(), {}, ["lstm", "rnn"], "20m", 2)
    first, second = plan.seeds
    specs = ct.final_specs(plan, {"lstm": {"optim.lr": GOOD}, "rnn": None})
    # Seed by seed; rnn's sweep completed no trial, so it has no tuned run.
    assert list(specs) == [
        f"lstm-default-seed-{first}", f"lstm-tuned-seed-{first}", f"rnn-default-seed-{first}",
        f"lstm-default-seed-{second}", f"lstm-tuned-seed-{second}", f"rnn-default-seed-{second}",
    ]  # fmt: skip
    default, tuned = specs[f"lstm-default-seed-{first}"].flat(), specs[f"lstm-tuned-seed-{first}"]
    assert {k for k, v in tuned.flat().items() if default[k] != v} == {"optim.lr"}
    assert tuned.optim.lr == GOOD and tuned.trial is None and tuned.optim.time_budget == 300


def _finals(settings: Settings, seen: dict[str, TrainSpec]) -> Any:
    """The final runs as the comparison sees them: child runs with a validation curve."""
    from mlflow import MlflowClient

    client = MlflowClient(settings.tracking_uri)

    def train(specs: dict[str, TrainSpec], parent: str) -> dict[str, str]:
        experiment_id = client.get_run(parent).info.experiment_id
        ids = {}
        for label, spec in specs.items():
            seen[label] = spec
            tags = {names.TAG_KIND: "job", "mlflow.parentRunId": parent}
            run_id = client.create_run(experiment_id, run_name=label, tags=tags).info.run_id
            tags = {names.TAG_MODEL: spec.model.cell, names.TAG_SEED: str(spec.run.seed)}
            for key, value in tags.items():
                client.set_tag(run_id, key, value)
            for step, loss in enumerate([3.0, 2.0 if spec.optim.lr == GOOD else 2.5]):
                client.log_metric(run_id, names.METRIC_VAL_LOSS, loss, step=step * 10)
                client.log_metric(run_id, names.METRIC_VAL_ELAPSED, float(step), step=step * 10)
            client.set_terminated(run_id, "FINISHED")
            ids[label] = run_id
        return ids

    return train


def test_a_tuned_comparison_nests_one_sweep_per_model_and_the_final_runs_under_one_parent(
    settings: Settings, corpus: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mlflow import MlflowClient

    from scheduler.cli import compare_tune as command
    from scheduler.cli import sweep as sweep_command

    trial = stand_in(settings)
    monkeypatch.setattr(
        sweep_command, "train_trial", lambda spec, sweep_id, name, *_: trial(spec, sweep_id, name)
    )
    raw = {**_raw(corpus), "sweep": {"trials": 2, "sampler": "grid", "pruner": "none"}}
    plan = ct.plan_tune(raw, {}, ["lstm", "rnn"], "20s", 1)
    seen: dict[str, TrainSpec] = {}
    report = tmp_path / "report"
    # `--local`: each model's sweep here, one after the other, then the final runs.
    tuned = command.run(plan, settings, _finals(settings, seen), True, None, "normal", report)

    client = MlflowClient(settings.tracking_uri)
    parent = client.get_run(tuned.comparison.parent_run_id)
    assert parent.info.status == "FINISHED" and tuned.finished
    assert parent.data.tags[names.TAG_KIND] == "compare"
    assert parent.data.tags[names.TAG_COMPARE_TUNE] == "20"
    params = parent.data.params
    assert params["tune.trial_budget_s"] == "10" and params["tune.lstm.optim.lr"] == str(GOOD)
    assert "optim.lr" not in params and "model.cell" not in params  # the children's own
    children = client.search_runs(
        [parent.info.experiment_id], f"tags.`mlflow.parentRunId` = '{parent.info.run_id}'"
    )
    kinds = {r.info.run_id: r.data.tags[names.TAG_KIND] for r in children}
    nested = {r.data.tags[names.TAG_MODEL]: r for r in children if kinds[r.info.run_id] == "sweep"}
    assert set(nested) == {"lstm", "rnn"}
    assert nested["rnn"].info.run_name == "compare-tune-rnn"
    assert {r.info.run_name for r in children if kinds[r.info.run_id] == "job"} == set(seen)
    for model, run in nested.items():
        assert tuned.sweeps[model]["sweep_id"] == run.info.run_id
        assert run.info.status == "FINISHED" and run.data.params["optim.time_budget"] == "10.0"
        assert tuned.chosen(model) == {"optim.lr": GOOD}
    assert {s.optim.time_budget for s in seen.values()} == {10.0}

    out = tuned.summary()
    assert list(out["summary"]) == ["lstm default", "lstm tuned", "rnn default", "rnn tuned"]
    assert out["tune"]["models"]["rnn"]["default_values"] == {"optim.lr": TrainSpec().optim.lr}
    assert out["tune"]["models"]["rnn"]["tuned_values"] == {"optim.lr": GOOD}
    recorded = Path(client.download_artifacts(parent.info.run_id, names.ARTIFACT_TUNE))
    assert json.loads(recorded.read_text()) == json.loads(json.dumps(out["tune"]))
    text = (report / names.REPORT_FILE).read_text()
    assert "## Tuning" in text and f"| optim.lr | 0.003 -> {GOOD} |" in text
    assert {a.path for a in client.list_artifacts(parent.info.run_id, "report")} >= {
        "report/report.md"
    }

    from rich.console import Console

    screen = Console(file=io.StringIO(), width=120)
    command.show(tuned, json_out=False, out=screen)
    shown = screen.file.getvalue()  # type: ignore[attr-defined]
    assert "lstm tuned" in shown and f"0.003 -> {GOOD}" in shown and "2 COMPLETE" in shown


def test_a_model_whose_sweep_chose_its_default_is_not_trained_again_as_tuned(
    settings: Settings, corpus: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from scheduler.cli import compare_tune as command
    from scheduler.cli import sweep as sweep_command

    trial = stand_in(settings)
    monkeypatch.setattr(
        sweep_command, "train_trial", lambda spec, sweep_id, name, *_: trial(spec, sweep_id, name)
    )
    # lstm's default learning rate is the good one, so its trial 0 (the default) is its best;
    # rnn's default learns nothing and its second trial, the good rate, beats it.
    raw = {**_raw(corpus), "sweep": {"trials": 2, "sampler": "random", "seed": 0}}
    raw["space"] = {"optim.lr": [GOOD, BAD]}
    raw["optim"] = {**raw["optim"], "lr": GOOD}
    plan = ct.plan_tune(raw, {}, ["lstm"], "20s", 2)
    rnn_raw = {**raw, "optim": {**raw["optim"], "lr": BAD}}
    rnn_plan = ct.plan_tune(rnn_raw, {}, ["rnn"], "20s", 2)
    plan = ct.TunePlan(
        ["lstm", "rnn"], {**plan.sweeps, **rnn_plan.sweeps}, 20.0, 10.0, 2, plan.seeds
    )
    seen: dict[str, TrainSpec] = {}
    tuned = command.run(plan, settings, _finals(settings, seen), True, None, "normal", None)

    assert ct.default_won(tuned.sweeps["lstm"]) and tuned.kept == {"lstm"}
    assert tuned.sweeps["rnn"]["best"]["values"] == {"optim.lr": GOOD}
    first, second = plan.seeds
    assert sorted(seen) == sorted(
        [f"lstm-default-seed-{s}" for s in plan.seeds]
        + [f"rnn-{v}-seed-{s}" for v in ("default", "tuned") for s in (first, second)]
    )
    out = tuned.summary()
    runs = {(r["model"], r["seed"]): r["job_id"] for r in out["runs"]}
    for seed in plan.seeds:  # lstm's tuned column is its default runs, seed by seed
        assert runs[("lstm tuned", seed)] == runs[("lstm default", seed)]
        assert runs[("rnn tuned", seed)] != runs[("rnn default", seed)]
    assert out["tune"]["models"]["lstm"]["default_won"] is True
    assert out["tune"]["models"]["rnn"]["default_won"] is False
    assert any("lstm: its sweep's best trial was its default spec" in line
               for line in tuned.markdown())  # fmt: skip


def test_ctrl_c_during_the_sweeps_ends_the_parent_killed(settings: Settings, corpus: Path) -> None:
    from mlflow import MlflowClient

    plan = ct.plan_tune(_raw(corpus), {}, ["lstm"], "20m", 1)

    def interrupted(plans: dict[str, Any], parent: str) -> dict[str, str]:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        ct.compare_tuned(plan, settings, interrupted, _finals(settings, {}), on_workers=False)
    client = MlflowClient(settings.tracking_uri)
    (experiment,) = [e for e in client.search_experiments() if e.name == "tune"]
    (parent,) = client.search_runs([experiment.experiment_id])
    assert parent.info.status == "KILLED"


def test_tune_tries_each_models_default_first_unless_the_file_says_not_to() -> None:
    plan = ct.plan_tune(_raw(), {}, ["lstm", "rnn"], "20m", 1)
    assert all(plan.sweeps[m].sweep.try_base for m in ("lstm", "rnn"))
    raw = _raw()
    raw["sweep"] = {**raw["sweep"], "try_base": False}
    assert not ct.plan_tune(raw, {}, ["lstm"], "20m", 1).sweeps["lstm"].sweep.try_base
