"""Tests for worker/dataset.py: a worker gets its corpus from a real MLflow artifact store.

The client publishes the corpus with `publish_dataset` (the same call `seqq submit` makes) into
a real SQLite-backed store; the worker side downloads it into its own home, verifies the
sha256 and caches it by hash. Nothing here reads the client's copy of the file.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from shared.dataset import resolve_dataset
from shared.errors import DataError
from shared.settings import Settings
from shared.spec import DataSpec
from tests.helpers import free_port

TEXT = "Now is the winter of our discontent\nMade glorious summer by this sun of York;\n" * 40


@pytest.fixture
def published(tmp_path: Path, text_file) -> tuple[DataSpec, Settings]:
    """A corpus uploaded by a client; the data spec a worker receives; the worker's settings."""
    from mlflow import MlflowClient

    from scheduler.tracking import publish_dataset

    client_settings = Settings(
        home=tmp_path / "client", mlflow_uri=f"sqlite:///{tmp_path / 'mlflow.db'}"
    )
    local = resolve_dataset(DataSpec(dataset=str(text_file(TEXT))), client_settings.cache_dir)
    uri = publish_dataset(MlflowClient(client_settings.tracking_uri), local, client_settings)
    worker_settings = Settings(home=tmp_path / "worker", mlflow_uri=client_settings.mlflow_uri)
    return DataSpec(dataset=local.name, uri=uri, sha256=local.sha256), worker_settings


def test_a_worker_downloads_verifies_and_caches_the_corpus_by_its_hash(published, tmp_path):
    from worker.dataset import fetch_dataset

    data, settings = published
    (tmp_path / "corpus.txt").unlink()  # the client's file is gone: the store must serve it
    path = fetch_dataset(data, settings)
    assert path == settings.cache_dir / "datasets" / data.sha256
    assert path.read_text(encoding="utf-8") == TEXT


def test_the_second_fetch_is_served_from_the_cache_without_the_store(published):
    from worker.dataset import fetch_dataset

    data, settings = published
    first = fetch_dataset(data, settings)
    unreachable = Settings(home=settings.home, mlflow_uri=f"http://127.0.0.1:{free_port()}")
    assert fetch_dataset(data, unreachable) == first


def test_a_download_whose_hash_differs_is_refused_and_nothing_is_cached(published):
    from worker.dataset import fetch_dataset

    data, settings = published
    wrong = data.model_copy(update={"sha256": "0" * 64})
    with pytest.raises(DataError, match="sha256 mismatch") as info:
        fetch_dataset(wrong, settings)
    assert data.uri in str(info.value)
    store = settings.cache_dir / "datasets"
    assert not store.exists() or list(store.iterdir()) == []


def test_an_unreachable_store_is_a_one_line_error_naming_the_dataset(
    published, monkeypatch: pytest.MonkeyPatch
):
    from worker.dataset import fetch_dataset

    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "5")
    data, settings = published
    offline = Settings(home=settings.home, mlflow_uri=f"http://127.0.0.1:{free_port()}")
    with pytest.raises(DataError, match="download failed") as info:
        fetch_dataset(data, offline)
    assert data.uri in str(info.value) and "\n" not in str(info.value)


def test_a_uri_without_its_hash_is_refused_before_any_download(tmp_path: Path):
    from worker.dataset import fetch_dataset

    data = DataSpec(dataset="corpus.txt", uri="runs:/abc/dataset/corpus.txt")
    with pytest.raises(DataError, match=r"data\.sha256"):
        fetch_dataset(data, Settings(home=tmp_path, mlflow_uri="http://127.0.0.1:9"))
