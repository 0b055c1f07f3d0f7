"""Infrastructure settings, read once from `SEQQ_*` environment variables.

Where things are (broker, tracking store, caches) and how much of the machine to use. None of
this belongs in a spec: the same spec re-runs against any deployment.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """seqq's deployment settings; each field is the env var `SEQQ_<NAME>`."""

    model_config = SettingsConfigDict(env_prefix="SEQQ_", frozen=True, extra="ignore")

    broker_url: str = Field(
        "redis://localhost:6379/0",
        description="Redis URL of the Celery broker (redis:// or rediss://).",
    )
    result_backend: str | None = Field(
        None, description="Celery result backend; default: broker_url."
    )
    mlflow_uri: str | None = Field(
        None,
        description="MLflow tracking URI; default: MLFLOW_TRACKING_URI, else a local SQLite store.",
    )
    light_client: bool = Field(
        True,
        description="submit/status/list reach MLflow without importing it (a server's REST API, "
        "an embedded store read with sqlite3); false: always through MLflow's own client.",
    )
    home: Path = Field(Path.home() / ".seqq", description="Local state: embedded store, caches.")
    data_roots: str = Field(
        "", description="os.pathsep-separated folders a worker may read local datasets from."
    )
    torch_threads: int = Field(
        0, ge=0, description="Torch threads per job; 0 = usable cores / jobs at once."
    )
    visibility_timeout: int = Field(
        7 * 24 * 3600, ge=60, description="Seconds before Redis re-delivers an unacknowledged job."
    )
    job_timeout: float = Field(
        10.0, gt=0, description="Seconds to wait for Redis/MLflow to answer."
    )
    lease_ttl: float = Field(
        30.0, ge=1.0, description="Seconds a job's lease outlives its worker's last heartbeat."
    )
    reap_interval: float = Field(15.0, ge=0.5, description="Seconds between reaper passes.")

    @property
    def backend_url(self) -> str:
        return self.result_backend or self.broker_url

    @property
    def tracking_uri(self) -> str:
        """The MLflow store: explicit setting, then MLFLOW_TRACKING_URI, then embedded SQLite."""
        uri = self.mlflow_uri or os.environ.get("MLFLOW_TRACKING_URI")
        return uri or f"sqlite:///{self.home / 'mlflow.db'}"

    @property
    def tracking_is_local(self) -> bool:
        """True for a SQLite store on this machine (artifacts then live under `home`)."""
        return self.tracking_uri.startswith("sqlite:")

    @property
    def artifact_root(self) -> Path:
        """Where a local store keeps artifacts (beside the SQLite file, not in the cwd)."""
        db = self.tracking_uri.removeprefix("sqlite:///")
        return Path(db).parent / "artifacts" if self.tracking_is_local else self.home / "artifacts"

    @property
    def cache_dir(self) -> Path:
        return self.home / "cache"

    @property
    def checkpoint_dir(self) -> Path:
        return self.home / "checkpoints"

    @property
    def sweep_dir(self) -> Path:
        """Where `seqq sweep --local` keeps each sweep's study journal."""
        return self.home / "sweeps"

    @property
    def allowed_data_roots(self) -> list[Path]:
        return [Path(p).resolve() for p in self.data_roots.split(os.pathsep) if p]


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read from the environment once."""
    return Settings()


def override_settings(**changes: Any) -> Settings:
    """Make `changes` this process's settings, and those of every process it forks or starts.

    A command that decides a setting (the worker: torch threads per job) calls this before it
    forks: a forked pool process inherits the cached settings, a started one reads the
    environment, so both must hold the decision, never a copy read before it.
    """
    for field, value in changes.items():
        if field not in Settings.model_fields:
            raise KeyError(f"no setting {field!r}")
        os.environ[f"SEQQ_{field.upper()}"] = str(value)
    get_settings.cache_clear()
    return get_settings()


def usable_cores() -> int:
    """The cores this process may run on (its CPU affinity: a container's or a taskset's
    share), not every core the machine has."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0)) or 1
    return os.cpu_count() or 1


def mlflow_env_defaults(http_retries: int = 2, http_timeout: float = 30) -> None:
    """MLflow's environment, set before it is imported: no telemetry, no URLs printed on
    stdout (it would corrupt `--json`), no artifact-download progress bars (seqq reads a few
    small files; MLflow's bars cluttered every `seqq compare`), bounded HTTP retries (callers
    retry themselves)."""
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", str(http_retries))
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", str(int(http_timeout)))


def mask_url(url: str) -> str:
    """The URL with any password replaced by '***', safe to print or log."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparseable url>"
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))
