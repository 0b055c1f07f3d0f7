"""Shared fixtures for the unit suite: CPU-only, seeded, nothing written outside tmp_path."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import pytest

# Nothing phones home from tests; set before any test module imports mlflow.
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("DO_NOT_TRACK", "true")


@pytest.fixture
def text_file(tmp_path: Path):
    """Write `text` to a UTF-8 file under tmp_path and return its path."""

    def write(text: str, name: str = "corpus.txt") -> Path:
        path = tmp_path / name
        path.write_text(text, encoding="utf-8")
        return path

    return write


@pytest.fixture
def cache_dir(tmp_path: Path) -> Path:
    """An empty cache folder private to the test (never ~/.seqq)."""
    return tmp_path / "cache"


@pytest.fixture(autouse=True)
def torch_single_thread():
    """Tiny CPU models run fastest on one thread; more only contend with other processes.

    Applies only where the test module already imported torch; the previous count is restored.
    """
    torch = sys.modules.get("torch")
    if torch is None:
        yield
        return
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


# The deployment files, read once per session for the test_deploy_* modules.


@pytest.fixture(scope="session")
def compose() -> dict[str, Any]:
    from tests.deployment import load_compose

    return load_compose()


@pytest.fixture(scope="session")
def services(compose: dict[str, Any]) -> dict[str, Any]:
    return compose["services"]


@pytest.fixture(scope="session")
def manifests() -> list[tuple[Path, dict[str, Any]]]:
    from tests.deployment import load_manifests

    return load_manifests()


@pytest.fixture(scope="session")
def deployments(manifests: list[tuple[Path, dict[str, Any]]]) -> dict[str, Any]:
    return {d["metadata"]["name"]: d for _, d in manifests if d["kind"] == "Deployment"}
