"""`seqq sweep --local` end to end: the real command, real training, a real MLflow SQLite store
and a real journal study, no service at all. MLflow and the study must agree on every trial."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

from shared import names
from shared.settings import Settings
from shared.state import TrialState
from shared.study import open_study, trial_state
from tests.helpers import SEQQ, base_env, seqq, seqq_json, wait_until

# A tiny LSTM on a small, learnable text; a learning rate of 1e-5 barely moves it, so the ASHA
# pruner stops that trial at its first evaluation behind a better one.
TINY_SWEEP = """\
model: {{hidden_size: 16, num_layers: 1, embedding_dim: 16}}
data: {{dataset: {corpus}, seq_len: 32}}
optim: {{batch_size: 8, max_steps: {steps}, warmup_steps: 5}}
run: {{eval_every: 10, eval_batches: 2, sample_every: 1000, checkpoint_every: 1000, experiment: sw}}
sample: {{length: 20}}
device: cpu
space:
  optim.lr: [3.0e-2, 1.0e-5, 1.0e-2]
sweep: {{trials: 10, sampler: tpe, pruner: none, seed: 0}}
"""
MLFLOW_STATUS = {"COMPLETE": "FINISHED", "PRUNED": "KILLED", "FAILED": "FAILED"}


def _setup(tmp_path: Path, steps: int = 60) -> tuple[Path, dict[str, str], Settings]:
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("".join(f"{i % 7} little pigs went to market {i}.\n" for i in range(800)))
    path = tmp_path / "tiny.yaml"
    path.write_text(TINY_SWEEP.format(corpus=corpus, steps=steps))
    home, uri = tmp_path / "home", f"sqlite:///{tmp_path / 'mlflow.db'}"
    return path, base_env(home, SEQQ_MLFLOW_URI=uri), Settings(home=home, mlflow_uri=uri)


def _param(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def test_a_local_sweep_with_asha_agrees_with_its_study_on_every_trial_and_prunes_one(
    tmp_path: Path,
) -> None:
    from mlflow import MlflowClient

    path, env, settings = _setup(tmp_path)
    started = time.monotonic()
    out = seqq_json(["sweep", "-f", str(path), "--local", "--trials", "4", "--pruner", "asha"], env)
    print(f"sweep of 4 trials: {time.monotonic() - started:.1f}s")

    client = MlflowClient(settings.tracking_uri)
    sweep_id = out["sweep_id"]
    parent = client.get_run(sweep_id)
    assert parent.info.status == "FINISHED" and out["status"] == "FINISHED"
    assert parent.data.tags[names.TAG_KIND] == names.KIND_SWEEP
    sweeps = client.search_runs(
        [parent.info.experiment_id], f"tags.`{names.TAG_KIND}` = '{names.KIND_SWEEP}'"
    )
    assert [r.info.run_id for r in sweeps] == [sweep_id]  # one parent
    children = client.search_runs(
        [parent.info.experiment_id], f"tags.`mlflow.parentRunId` = '{sweep_id}'"
    )
    assert len(children) == 4
    runs = {r.info.run_id: r for r in children}

    study = open_study(sweep_id, "file", settings).study
    trials = study.get_trials()
    assert len(trials) == 4
    assert {t.user_attrs[names.TRIAL_ATTR_RUN_ID] for t in trials} == set(runs)
    for trial in trials:
        run = runs[trial.user_attrs[names.TRIAL_ATTR_RUN_ID]]
        state = trial_state(trial)
        assert run.data.tags[names.TAG_TRIAL_STATE] == state.value, trial.number
        assert run.info.status == MLFLOW_STATUS[state.value]
        assert run.info.run_name == f"trial-{trial.number}"
        assert run.data.tags[names.TAG_TRIAL_NUMBER] == str(trial.number)
        for dotted, value in trial.params.items():
            assert run.data.params[dotted] == _param(value)  # the sampled values are params
        history = client.get_metric_history(run.info.run_id, names.METRIC_VAL_LOSS)
        assert {m.step: m.value for m in history} == trial.intermediate_values
        # What reporting cost it is timed (the sweep benchmark's figure). No bound against its
        # training time here: a tiny model trains 10 steps in less than one journal write.
        assert run.data.metrics[names.METRIC_TRIAL_REPORT_S] > 0, trial.number
        if state == TrialState.COMPLETE:
            assert trial.value == min(m.value for m in history)
        if state == TrialState.PRUNED:
            pruned = max(trial.intermediate_values)
            assert run.data.tags[names.TAG_TRIAL_PRUNED_STEP] == str(pruned)
            saved = client.list_artifacts(run.info.run_id, names.ARTIFACT_CHECKPOINTS)
            assert f"{names.ARTIFACT_CHECKPOINTS}/{names.checkpoint_dir_name(pruned)}" in {
                a.path for a in saved
            }
    states = [trial_state(t) for t in trials]
    assert TrialState.PRUNED in states and TrialState.COMPLETE in states, states

    # `seqq sweep status --json` reads the same record back, and it is the study's.
    again = seqq_json(["sweep", "status", sweep_id], env)
    assert again == out
    for row, trial in zip(again["trials"], trials, strict=True):
        assert row["state"] == trial_state(trial).value and row["values"] == trial.params
        assert row["best_val_loss"] == min(trial.intermediate_values.values())
    complete = [t for t in trials if trial_state(t) == TrialState.COMPLETE]
    best = min(complete, key=lambda t: t.value or 0.0)
    assert again["best"]["number"] == best.number and again["best"]["value"] == best.value
    assert parent.data.tags[names.TAG_SWEEP_BEST_RUN] == best.user_attrs[names.TRIAL_ATTR_RUN_ID]
    table = client.download_artifacts(sweep_id, names.ARTIFACT_TRIALS, str(tmp_path))
    assert len(json.loads(Path(table).read_text())["data"]) == 4


def test_ctrl_c_stops_the_running_trial_like_seqq_run_and_the_parent_ends_killed(
    tmp_path: Path,
) -> None:
    from mlflow import MlflowClient

    path, env, settings = _setup(tmp_path, steps=100_000)
    args = [SEQQ, "sweep", "-f", str(path), "--local", "--pruner", "none"]
    proc = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        client = MlflowClient(settings.tracking_uri)

        def training() -> Any:
            if not Path(settings.tracking_uri.removeprefix("sqlite:///")).exists():
                return None
            experiment = client.get_experiment_by_name("sw")
            if experiment is None:
                return None
            found = client.search_runs(
                [experiment.experiment_id], "metrics.val_loss > 0 and attributes.status = 'RUNNING'"
            )
            return found[0] if found else None

        run = wait_until(training, 60, "the first trial to train")
        time.sleep(2)
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130

    trial_run = client.get_run(run.info.run_id)
    assert trial_run.info.status == "KILLED"
    assert trial_run.data.tags[names.TAG_TRIAL_STATE] == "FAILED"
    assert client.list_artifacts(run.info.run_id, names.ARTIFACT_CHECKPOINTS)  # kept
    sweep_id = trial_run.data.tags[names.TAG_SWEEP_ID]
    assert client.get_run(sweep_id).info.status == "KILLED"
    (trial,) = open_study(sweep_id, "file", settings).study.get_trials()
    assert trial_state(trial) == TrialState.FAILED
    status = seqq(["sweep", "status", sweep_id, "--json"], env)
    assert json.loads(status.stdout)["trials"][0]["state"] == "FAILED"
