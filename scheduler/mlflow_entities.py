"""MLflow's records as seqq's light clients return and accept them, without importing mlflow.

`scheduler.mlflow_rest` (a tracking server) and `scheduler.mlflow_sqlite` (an embedded store)
build these; they carry the attribute names of mlflow.entities (`run.info.run_id`,
`run.data.tags`, ...) and the same constructor arguments, so code written against MlflowClient
reads either. Only what seqq reads or writes is here.
"""

from __future__ import annotations

from dataclasses import dataclass, field


class StoreError(Exception):
    """Raised when the store refuses a request or lacks what was asked; `error_code` is
    MLflow's (RESOURCE_DOES_NOT_EXIST, RESOURCE_ALREADY_EXISTS, ...)."""

    def __init__(self, message: str, error_code: str, status: int) -> None:
        super().__init__(message)
        self.error_code = error_code
        self.status = status


# MLflow's entities, as far as seqq reads or writes them. Constructors take the same arguments
# as mlflow.entities' classes, so one call site builds either.
@dataclass(frozen=True)
class Param:
    key: str
    value: str


@dataclass(frozen=True)
class RunTag:
    key: str
    value: str


InputTag = RunTag  # mlflow.entities has both names; create_job_run spells InputTag


@dataclass(frozen=True)
class Dataset:
    name: str
    digest: str
    source_type: str
    source: str
    schema: str | None = None
    profile: str | None = None


@dataclass(frozen=True)
class DatasetInput:
    dataset: Dataset
    tags: list[RunTag] = field(default_factory=list)


@dataclass(frozen=True)
class RunInfo:
    run_id: str
    experiment_id: str
    run_name: str | None
    status: str
    start_time: int | None
    end_time: int | None
    artifact_uri: str
    lifecycle_stage: str
    user_id: str | None


@dataclass(frozen=True)
class RunData:
    metrics: dict[str, float]
    params: dict[str, str]
    tags: dict[str, str]


@dataclass(frozen=True)
class Run:
    info: RunInfo
    data: RunData


@dataclass(frozen=True)
class Experiment:
    experiment_id: str
    name: str
    artifact_location: str
    lifecycle_stage: str
    tags: dict[str, str] = field(default_factory=dict)
