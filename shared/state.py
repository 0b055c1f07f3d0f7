"""Job states: the one list of what a job can be, and which of them are final.

A job's state is its MLflow run's status (SCHEDULED, RUNNING, FINISHED, FAILED, KILLED), the
record every process reads. A worker's attempt can also end two ways that leave the run to
someone else (PREEMPTED, STOOD_DOWN); those appear in a job's outcome, never on its run. A job
that is a sweep's trial also has a trial state, the one its study holds.
"""

from __future__ import annotations

from enum import StrEnum


class JobState(StrEnum):
    """One job's state; each value is the string MLflow and the JSON output carry."""

    SCHEDULED = "SCHEDULED"  # queued (or handed back), not training yet
    RUNNING = "RUNNING"  # a worker (or `seqq run`) trains it
    FINISHED = "FINISHED"  # trained to the end
    FAILED = "FAILED"  # ended by an error, named in the run's `seqq.error` tag
    KILLED = "KILLED"  # cancelled
    # Outcomes of one attempt only: the run stays open for another.
    PREEMPTED = "PREEMPTED"  # checkpointed and sent back to the queue (its worker shut down)
    STOOD_DOWN = "STOOD_DOWN"  # left alone: another worker holds it, it already ended, or no run


TERMINAL = frozenset({JobState.FINISHED, JobState.FAILED, JobState.KILLED})


class TrialState(StrEnum):
    """A sweep trial's state, as its study holds it and its run's `seqq.trial.state` tag says.

    Optuna spells a failed trial FAIL; seqq says FAILED, like a job (`shared.study` maps them).
    """

    RUNNING = "RUNNING"  # asked of the study, not ended yet
    COMPLETE = "COMPLETE"  # trained to the end; its value is its best validation loss
    PRUNED = "PRUNED"  # stopped early by the study's pruner (the run ends KILLED)
    FAILED = "FAILED"  # refused, failed, cancelled or interrupted


TRIAL_ENDED = frozenset({TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAILED})
