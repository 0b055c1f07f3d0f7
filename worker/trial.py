"""A trial's side of its sweep: report each evaluation to the study, relay the pruner's
decision, and tell the study how the trial ended.

`run_job` opens one when the spec carries a `TrialRef`. The training loop reports every
validation loss at its step and, at each evaluation inside the loop, asks whether to prune
(first recording its training seconds where the sweep's rungs are in seconds, `shared.rungs`);
"pruned" then ends the job through the same path as cancel and preempt (`TrialPrunedError`:
checkpoint kept, run closed). After a resume, the steps the study already holds are not reported
again. A job's end is recorded in MLflow first (the trial-state tag) and told to the study
second: a crash between the two leaves a study trial RUNNING whose ended run says what it
became, never a study ahead of the record.
"""

from __future__ import annotations

import math
import time
from typing import TYPE_CHECKING, Any

from shared import names
from shared.errors import TrainingError
from shared.settings import Settings
from shared.spec import TrialRef
from shared.state import JobState, TrialState
from shared.study import OpenStudy, open_study, tell, time_rungs, trial_id

if TYPE_CHECKING:
    from optuna.trial import Trial


class TrialReporter:
    """One running study trial, as the job that trains it sees it."""

    def __init__(self, opened: OpenStudy, ref: TrialRef, trial: Trial, reported: set[int]):
        self.opened = opened
        self.ref = ref
        self.trial = trial
        self.trial_id = trial._trial_id
        self.reported = reported  # steps whose value the study holds
        self.step: int | None = None  # the last evaluation's step
        self.pruned_step: int | None = None
        self.seconds = 0.0  # spent reporting and asking, this attempt (`trial_report_s`)
        self.timed = time_rungs(opened.sweep) is not None  # ASHA's rungs in training seconds

    @classmethod
    def open(cls, ref: TrialRef, job_id: str, settings: Settings) -> TrialReporter:
        """The trial `ref` names, which must still be running; it learns its run (job id)."""
        from optuna.trial import Trial

        opened = open_study(ref.sweep, ref.storage, settings)
        try:
            number_id = trial_id(opened, ref.number)
        except KeyError:
            raise TrainingError(f"sweep {ref.sweep} has no trial {ref.number}") from None
        frozen = opened.storage.get_trial(number_id)
        if frozen.state.is_finished():
            raise TrainingError(
                f"trial {ref.number} of sweep {ref.sweep} already ended {frozen.state.name}; "
                "a trial trains once (remove `trial` from the spec to train it alone)"
            )
        trial = Trial(opened.study, number_id)
        trial.set_user_attr(names.TRIAL_ATTR_RUN_ID, job_id)
        return cls(opened, ref, trial, set(frozen.intermediate_values))

    def reconcile(self, client: Any, job_id: str, logged_until: dict[str, int]) -> dict[str, int]:
        """Make the run's validation curve and the study hold the same steps and values before
        a resumed job goes on; the steps not to log again, per metric.

        The study hears each evaluation at once, MLflow within a few seconds (its logger
        batches), so a crash leaves one side with steps the other lacks. Each lacking step gets
        the value the other side recorded, the one the pruner or the curve already showed; the
        resumed job's own re-evaluation of that step is then dropped, like any step logged twice.
        """
        from worker.tracking import with_retry

        key = names.METRIC_VAL_LOSS
        curve = {m.step: m.value for m in with_retry(client.get_metric_history, job_id, key)}
        heard = self.opened.storage.get_trial(self.trial_id).intermediate_values
        for step in sorted(set(heard) - set(curve)):
            with_retry(client.log_metric, job_id, key, heard[step], step=step)
        for step in sorted(set(curve) - set(heard)):
            self.trial.report(curve[step], step)
            self.reported.add(step)
        steps = [*curve, *heard]
        if not steps:
            return logged_until
        return {**logged_until, key: max([logged_until.get(key, -1), *steps])}

    def report(self, step: int, value: float) -> None:
        """Give the study the validation loss at `step`, unless it already has that step."""
        self.step = step
        if step in self.reported:
            return
        started = time.perf_counter()
        self.trial.report(value, step)
        self.seconds += time.perf_counter() - started
        self.reported.add(step)

    def should_prune(self, elapsed: float | None = None) -> bool:
        """The study's pruner's word on the values reported so far, `elapsed` seconds of
        training in (recorded first where the sweep's rungs are in seconds)."""
        started = time.perf_counter()
        if elapsed is not None and self.timed:
            self.trial.set_user_attr(names.TRIAL_ATTR_ELAPSED, round(elapsed, 3))
        prune = self.trial.should_prune()
        self.seconds += time.perf_counter() - started
        if prune:
            self.pruned_step = self.step
        return prune

    def ending(self, status: JobState) -> TrialState | None:
        """The trial state a job's end means; None when the job goes on (preempted, or another
        copy of it owns the run)."""
        if status == JobState.FINISHED:
            return TrialState.COMPLETE
        if status == JobState.KILLED and self.pruned_step is not None:
            return TrialState.PRUNED
        if status in (JobState.FAILED, JobState.KILLED):  # an error, a cancel, a Ctrl-C
            return TrialState.FAILED
        return None

    def end(self, state: TrialState, best_val_loss: float | None, error: str | None) -> None:
        """Tell the study: COMPLETE with the best validation loss, PRUNED, or FAILED (why)."""
        if state == TrialState.FAILED and error:
            self.trial.set_user_attr(names.TRIAL_ATTR_ERROR, error[:2000])
        # Its value is the best evaluation the study heard, which is the run's validation
        # curve (`reconcile`), even where a resume re-evaluated a step and got a hair apart.
        heard = self.opened.storage.get_trial(self.trial_id).intermediate_values
        finite = [v for v in heard.values() if math.isfinite(v)]
        value = min(finite) if finite else best_val_loss
        if state == TrialState.COMPLETE and value is None:
            state = TrialState.FAILED  # nothing to rank it by (cannot happen after training)
        tell(self.opened.study, self.ref.number, state, value)
