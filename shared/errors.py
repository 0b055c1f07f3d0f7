"""The error tree. Every error seqq raises on purpose derives from `SeqqError`.

Each class says when it is raised and carries the exit code the CLI uses for it, so the CLI can
turn any of them into one line on stderr and a non-zero exit without knowing where it came from.
"""

from __future__ import annotations


class SeqqError(Exception):
    """Root of all errors seqq raises deliberately; the message is one line for a person."""

    exit_code = 1


class SpecError(SeqqError):
    """Raised when a training spec (file or flags) fails validation; names every bad field."""

    exit_code = 2


class DataError(SeqqError):
    """Raised when a dataset is missing, empty, not text, too short to split, or fails its hash."""

    exit_code = 2


class ServiceUnavailableError(SeqqError):
    """Raised when Redis or the MLflow tracking server does not answer at its address."""

    exit_code = 3


class JobNotFoundError(SeqqError):
    """Raised when a job id matches no MLflow run."""

    exit_code = 4


class TrainingError(SeqqError):
    """Raised inside a job when training cannot go on (non-finite loss, bad prompt, ...)."""


class JobCancelledError(SeqqError):
    """Raised inside a job when its cancel flag is seen; the job ends KILLED, not FAILED."""


class JobPreemptedError(SeqqError):
    """Raised inside a job when its worker is shutting down (SIGTERM); the job is re-queued."""


class TrialPrunedError(SeqqError):
    """Raised inside a sweep's trial when its study's pruner stops it at an evaluation; the job
    keeps a checkpoint and ends KILLED, its run tagged PRUNED at `step`, the study told PRUNED."""

    def __init__(self, step: int) -> None:
        super().__init__(f"pruned by the sweep's pruner at step {step}")
        self.step = step


class SweepNotFoundError(SeqqError):
    """Raised when a sweep id names no sweep parent run, or its study cannot be found."""

    exit_code = 4


class ModelNotFoundError(SeqqError):
    """Raised when a `models:/NAME/VERSION` (or `@ALIAS`) names no version in the Model Registry."""

    exit_code = 4


class LeaseLostError(SeqqError):
    """Raised inside a job when another worker holds its lease; this copy stops silently."""


class CheckpointError(SeqqError):
    """Raised when a checkpoint cannot be read or does not describe a model seqq can build."""
