"""Job states: the one list of what a job can be, and which of them are final.

A job's state is its MLflow run's status (SCHEDULED, RUNNING, FINISHED, FAILED, KILLED), the
record every process reads. A worker's attempt can also end two ways that leave the run to
someone else (PREEMPTED, STOOD_DOWN); those appear in a job's outcome, never on its run.
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
