"""Fixtures for integration tests: a real Redis database, a real MLflow store, real workers."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import Worker, base_env

# Two checkouts testing on one machine at once each set their own SEQQ_TEST_REDIS_DB.
TEST_REDIS_DB = int(os.environ.get("SEQQ_TEST_REDIS_DB", "15"))


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "integration" in str(item.fspath):
            item.add_marker(pytest.mark.integration)


@pytest.fixture
def redis_url() -> Iterator[str]:
    """A flushed database on the Redis that `make test` guarantees on 127.0.0.1:6379."""
    import redis

    url = f"redis://127.0.0.1:6379/{TEST_REDIS_DB}"
    conn = redis.Redis.from_url(url)
    conn.flushdb()
    yield url
    conn.flushdb()


@pytest.fixture
def tracking_uri(tmp_path: Path) -> str:
    """A fresh SQLite MLflow store, migrated before any worker touches it."""
    from mlflow import MlflowClient

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    MlflowClient(uri).search_experiments()
    return uri


@pytest.fixture
def env(tmp_path: Path, redis_url: str, tracking_uri: str) -> dict[str, str]:
    # Short leases and reaper passes keep fault-injection tests quick.
    return base_env(
        tmp_path / "home",
        SEQQ_BROKER_URL=redis_url,
        SEQQ_MLFLOW_URI=tracking_uri,
        SEQQ_LEASE_TTL="3",
        SEQQ_REAP_INTERVAL="1",
    )


def start_worker(
    env: dict[str, str], tmp_path: Path, name: str = "worker", args: tuple[str, ...] = ()
) -> Worker:
    """A real `seqq worker` (prefork, one job at a time unless `args` say otherwise) on the cpu
    queue.

    Each worker keeps its own home (cache, checkpoints): it shares nothing with the client or
    other workers but Redis and the tracking store, as on another machine.
    """
    worker_env = {**env, "SEQQ_HOME": str(tmp_path / f"{name}-home")}
    proc = Worker(worker_env, tmp_path / f"{name}.log", ["--name", f"{name}@test", *args])
    proc.wait_ready()
    return proc


@pytest.fixture
def worker(env: dict[str, str], tmp_path: Path) -> Iterator[Worker]:
    proc = start_worker(env, tmp_path)
    yield proc
    proc.stop()
