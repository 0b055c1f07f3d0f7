"""Tests for worker/trial.py: a trial's job reports to its study, is pruned, and tells it how
it ended. The first tests drive the reporter against a real journal study; the last two train a
tiny model through the real job function (torch, MLflow SQLite)."""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any

import optuna
import pytest

from shared import names
from shared.errors import TrainingError
from shared.settings import Settings
from shared.space import SweepFile, distributions, parse_sweep, trial_spec
from shared.spec import TrialRef
from shared.state import JobState, TrialState
from shared.study import OpenStudy, create_study, open_study, tell, trial_id, trial_state
from worker.trial import TrialReporter

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
JOB_ID = "f" * 32
TINY = {
    "model": {"hidden_size": 16, "num_layers": 1, "embedding_dim": 8},
    "data": {"seq_len": 32},
    "optim": {"batch_size": 8, "max_steps": 40, "warmup_steps": 5},
    "run": {"eval_every": 10, "eval_batches": 2, "sample_every": 100, "checkpoint_every": 100},
    "sample": {"length": 20},
    "device": "cpu",
}


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(home=tmp_path / "home", mlflow_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")


def _sweep(**base: Any) -> SweepFile:
    raw = {**TINY, **base, "space": {"optim.lr": [0.01, 0.003]}, "sweep": {"pruner": "asha"}}
    return parse_sweep(raw)


def _with_a_leader(settings: Settings, sweep: SweepFile | None = None) -> OpenStudy:
    """A study whose trial 0 completed with losses no tiny model reaches, and a running trial 1."""
    opened = create_study(sweep or _sweep(), "sweep-1", "file", settings)
    leader = opened.study.ask(distributions(opened.sweep.space))
    for step in (0, 10, 20, 30, 40):
        leader.report(0.1, step)
        assert not leader.should_prune()  # as its job asks: ASHA records each rung it passes
    tell(opened.study, leader.number, TrialState.COMPLETE, 0.1)
    opened.study.ask(distributions(opened.sweep.space))
    return opened


def _ref(number: int = 1) -> TrialRef:
    return TrialRef(sweep="sweep-1", number=number, storage="file")


def _trial(opened: OpenStudy, number: int = 1) -> optuna.trial.FrozenTrial:
    return opened.study.get_trials()[number]


def test_reporting_skips_the_steps_the_study_already_holds_after_a_resume(
    settings: Settings,
) -> None:
    opened = _with_a_leader(settings)
    before = optuna.trial.Trial(opened.study, trial_id(opened, 1))
    before.report(4.0, 0)
    before.report(3.5, 10)  # reported, then the worker died

    reporter = TrialReporter.open(_ref(), JOB_ID, settings)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        reporter.report(10, 3.4)  # the resumed job evaluates step 10 again
        reporter.report(20, 3.0)
    assert not caught  # Optuna was not asked (it would warn and keep the first value)

    trial = _trial(open_study("sweep-1", "file", settings))
    assert trial.intermediate_values == {0: 4.0, 10: 3.5, 20: 3.0}
    assert trial.user_attrs[names.TRIAL_ATTR_RUN_ID] == JOB_ID


def test_a_trial_behind_the_leader_at_an_evaluation_is_pruned_there_and_ends_pruned(
    settings: Settings,
) -> None:
    _with_a_leader(settings)
    reporter = TrialReporter.open(_ref(), JOB_ID, settings)
    reporter.report(0, 4.0)
    assert not reporter.should_prune()  # step 0 is before ASHA's first rung
    reporter.report(10, 3.0)
    assert reporter.should_prune()
    assert reporter.pruned_step == 10
    assert reporter.ending(JobState.KILLED) == TrialState.PRUNED

    reporter.end(TrialState.PRUNED, None, None)
    assert trial_state(_trial(open_study("sweep-1", "file", settings))) == TrialState.PRUNED


def test_a_timed_trial_records_its_training_seconds_and_is_ranked_by_them(
    settings: Settings,
) -> None:
    # 100 s trials, factor 2: ASHA's first rung at 25 s of training (budget / 2^2).
    raw = {**TINY, "optim": {"time_budget": "100s", "warmup_steps": 0}}
    timed = parse_sweep(
        raw | {"space": {"optim.lr": [0.01, 0.003]}, "sweep": {"asha": {"factor": 2}}}
    )
    opened = create_study(timed, "sweep-1", "file", settings)
    for _ in range(2):
        opened.study.ask(distributions(opened.sweep.space))
    leader = TrialReporter.open(_ref(0), JOB_ID, settings)
    leader.report(10, 0.1)
    assert not leader.should_prune(elapsed=30.0)  # the first to reach the rung goes on

    reporter = TrialReporter.open(_ref(1), "e" * 32, settings)
    reporter.report(10, 3.0)
    assert not reporter.should_prune(elapsed=20.0)  # behind, but not yet at the rung
    recorded = _trial(open_study("sweep-1", "file", settings)).user_attrs
    assert recorded[names.TRIAL_ATTR_ELAPSED] == pytest.approx(20.0)
    reporter.report(20, 2.9)
    assert reporter.should_prune(elapsed=26.0)  # at the rung, behind the leader: pruned
    assert reporter.pruned_step == 20


@pytest.mark.parametrize(
    ("status", "state"),
    [
        (JobState.FINISHED, TrialState.COMPLETE),
        (JobState.FAILED, TrialState.FAILED),
        (JobState.KILLED, TrialState.FAILED),  # cancelled or Ctrl-C, not pruned
        (JobState.PREEMPTED, None),  # goes on on another worker
        (JobState.STOOD_DOWN, None),  # another copy owns the run
    ],
)
def test_a_jobs_end_means_one_trial_state_or_none_while_the_trial_goes_on(
    settings: Settings, status: JobState, state: TrialState | None
) -> None:
    _with_a_leader(settings)
    assert TrialReporter.open(_ref(), JOB_ID, settings).ending(status) == state


def test_a_completed_trial_holds_its_best_loss_and_a_failed_one_its_reason(
    settings: Settings,
) -> None:
    opened = _with_a_leader(settings)
    TrialReporter.open(_ref(), JOB_ID, settings).end(TrialState.COMPLETE, 1.25, None)
    opened.study.ask(distributions(opened.sweep.space))
    TrialReporter.open(_ref(2), JOB_ID, settings).end(TrialState.FAILED, None, "loss became nan")

    trials = open_study("sweep-1", "file", settings).study.get_trials()
    assert trial_state(trials[1]) == TrialState.COMPLETE and trials[1].value == 1.25
    assert trial_state(trials[2]) == TrialState.FAILED
    assert trials[2].user_attrs[names.TRIAL_ATTR_ERROR] == "loss became nan"


def test_a_trial_that_already_ended_is_not_trained_again(settings: Settings) -> None:
    _with_a_leader(settings)
    with pytest.raises(TrainingError, match="already ended COMPLETE"):
        TrialReporter.open(_ref(0), JOB_ID, settings)
    with pytest.raises(TrainingError, match="has no trial 7"):
        TrialReporter.open(_ref(7), JOB_ID, settings)


class NeverStop:
    def progress(self, info: dict[str, Any]) -> None:
        pass

    def stop_reason(self) -> None:
        return None


def _train(settings: Settings, opened: OpenStudy, corpus: Path, number: int = 1) -> Any:
    """Trial `number`'s spec trained here, through `seqq run`'s path (a child of no parent)."""
    from scheduler.jobs import run_here

    base = opened.sweep.base.model_copy(
        update={"data": opened.sweep.base.data.model_copy(update={"dataset": str(corpus)})}
    )
    spec = trial_spec(base, _trial(opened, number).params, _ref(number))
    outcome, _ = run_here(spec, settings, NeverStop(), run_name=f"trial-{number}")
    return outcome


@pytest.fixture
def corpus(text_file: Any) -> Path:
    return text_file("".join(f"line {i}: the quick brown fox jumps.\n" for i in range(600)))


def test_a_pruned_job_keeps_its_checkpoint_ends_killed_tagged_pruned_and_the_study_agrees(
    settings: Settings, corpus: Path
) -> None:
    from mlflow import MlflowClient

    opened = _with_a_leader(settings)
    outcome = _train(settings, opened, corpus)

    assert outcome.status == JobState.KILLED and outcome.trial_state == "PRUNED"
    assert outcome.step == 10 and outcome.error is None
    client = MlflowClient(settings.tracking_uri)
    run = client.get_run(outcome.job_id)
    assert run.info.status == "KILLED"
    assert run.data.tags[names.TAG_TRIAL_STATE] == "PRUNED"
    assert run.data.tags[names.TAG_TRIAL_PRUNED_STEP] == "10"
    assert run.data.tags[names.TAG_SWEEP_ID] == "sweep-1"
    assert run.data.tags[names.TAG_TRIAL_NUMBER] == "1"
    saved = client.list_artifacts(outcome.job_id, names.ARTIFACT_CHECKPOINTS)
    assert [a.path for a in saved] == [  # and its best weights so far, to sample
        f"{names.ARTIFACT_CHECKPOINTS}/{names.BEST_CHECKPOINT}",
        f"{names.ARTIFACT_CHECKPOINTS}/step-00000010",
    ]
    trial = _trial(open_study("sweep-1", "file", settings))
    assert trial_state(trial) == TrialState.PRUNED
    history = client.get_metric_history(outcome.job_id, names.METRIC_VAL_LOSS)
    assert {m.step: m.value for m in history} == trial.intermediate_values


def test_a_finished_trial_completes_with_its_runs_best_validation_loss(
    settings: Settings, corpus: Path
) -> None:
    from mlflow import MlflowClient

    opened = create_study(_sweep(), "sweep-1", "file", settings)
    opened.study.ask(distributions(opened.sweep.space))
    outcome = _train(settings, opened, corpus, number=0)

    assert outcome.status == JobState.FINISHED and outcome.trial_state == "COMPLETE"
    client = MlflowClient(settings.tracking_uri)
    run = client.get_run(outcome.job_id)
    assert run.info.status == "FINISHED"
    assert run.data.tags[names.TAG_TRIAL_STATE] == "COMPLETE"
    assert names.TAG_TRIAL_PRUNED_STEP not in run.data.tags
    history = client.get_metric_history(outcome.job_id, names.METRIC_VAL_LOSS)
    trial = _trial(open_study("sweep-1", "file", settings), 0)
    assert trial.value == min(m.value for m in history) == outcome.best_val_loss
    assert set(trial.intermediate_values) == {0, 10, 20, 30, 40}
    assert run.data.params["optim.lr"] == str(trial.params["optim.lr"])


class PreemptAt:
    """The worker shuts down when the loop reaches `step` (SIGTERM: checkpoint, hand back)."""

    def __init__(self, step: int) -> None:
        self.step, self.calls = step, 0

    def progress(self, info: dict[str, Any]) -> None:
        pass

    def stop_reason(self) -> str | None:
        self.calls += 1
        return "preempt" if self.calls > self.step else None


def test_a_trial_resumed_from_an_older_checkpoint_reports_no_step_twice_and_completes_once(
    settings: Settings, corpus: Path
) -> None:
    import json
    import shutil
    from urllib.parse import urlparse

    from mlflow import MlflowClient

    from scheduler.jobs import run_here
    from worker.job import run_job

    sweep = _sweep(run={**TINY["run"], "checkpoint_every": 20}, data={"dataset": str(corpus)})
    opened = create_study(sweep, "sweep-1", "file", settings)
    opened.study.ask(distributions(sweep.space))
    spec = trial_spec(sweep.base, _trial(opened, 0).params, _ref(0))
    first, _ = run_here(spec, settings, PreemptAt(35), run_name="trial-0")
    assert first.status == JobState.PREEMPTED and first.trial_state is None
    assert 30 < first.step < 40  # evaluated and reported at 30, checkpointed at 20
    assert trial_state(_trial(open_study("sweep-1", "file", settings), 0)) == TrialState.RUNNING

    # The worker died instead: its last checkpoint never reached anyone.
    client = MlflowClient(settings.tracking_uri)
    artifacts = Path(urlparse(client.get_run(first.job_id).info.artifact_uri).path)
    for root in (artifacts / names.ARTIFACT_CHECKPOINTS, settings.checkpoint_dir / first.job_id):
        shutil.rmtree(root / names.checkpoint_dir_name(first.step))
    wire = json.loads(
        Path(client.download_artifacts(first.job_id, names.ARTIFACT_SPEC)).read_text()
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        again = run_job(first.job_id, wire, NeverStop(), settings)  # resumes from step 20

    assert again.status == JobState.FINISHED and again.trial_state == "COMPLETE"
    assert not [w for w in caught if "already reported" in str(w.message)]
    trial = _trial(open_study("sweep-1", "file", settings), 0)
    assert set(trial.intermediate_values) == {0, 10, 20, 30, 40}
    assert client.get_run(first.job_id).data.tags[names.TAG_RESUMES] == "1"
    history = client.get_metric_history(first.job_id, names.METRIC_VAL_LOSS)
    assert sorted(m.step for m in history) == [0, 10, 20, 30, 40]
    assert trial.value == min(m.value for m in history)


def test_after_a_crash_the_curve_and_the_study_each_get_the_steps_only_the_other_had(
    settings: Settings,
) -> None:
    from mlflow import MlflowClient

    opened = _with_a_leader(settings)
    client = MlflowClient(settings.tracking_uri)
    experiment = client.create_experiment("t")
    run_id = client.create_run(experiment).info.run_id
    reporter = TrialReporter.open(_ref(), run_id, settings)
    # The crash: the study heard step 20 (MLflow's batch with it was lost), MLflow has step 10
    # (the report of it was lost), both have step 0.
    reporter.report(0, 3.0)
    reporter.report(20, 2.0)
    for step, value in ((0, 3.0), (10, 2.5)):
        client.log_metric(run_id, names.METRIC_VAL_LOSS, value, step=step)

    resumed = TrialReporter.open(_ref(), run_id, settings)
    until = resumed.reconcile(client, run_id, {names.METRIC_TRAIN_LOSS: 15})
    assert until == {names.METRIC_TRAIN_LOSS: 15, names.METRIC_VAL_LOSS: 20}
    curve = {m.step: m.value for m in client.get_metric_history(run_id, names.METRIC_VAL_LOSS)}
    heard = open_study("sweep-1", "file", settings).study.get_trials()[1].intermediate_values
    assert curve == heard == {0: 3.0, 10: 2.5, 20: 2.0}
    resumed.report(20, 1.9)  # the resumed job's own re-evaluation of step 20 is not heard again
    resumed.end(TrialState.COMPLETE, 1.9, None)
    (_, trial) = opened.storage.get_all_trials(opened.study._study_id)
    assert trial.value == 2.0  # the best the curve shows
