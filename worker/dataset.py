"""Dataset resolution on the worker: fetch from the artifact store, verify, cache by hash.

A submitted spec carries the corpus's artifact URI and sha256: the worker downloads it once,
refuses it if the hash differs, and keeps it under its cache keyed by that hash, so a worker on
another machine never needs the client's filesystem. Local paths are read only from the
configured allowed roots (`SEQQ_DATA_ROOTS`); built-in and synthetic corpora are regenerated.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from shared.atomic import write_atomically
from shared.dataset import resolve_dataset, sha256_file
from shared.errors import DataError
from shared.settings import Settings
from shared.spec import BUILTIN_DATASET, DataSpec
from shared.synthetic import PREFIX as SYNTHETIC_PREFIX


def _verify(path: Path, expected: str | None, source: str) -> Path:
    if expected is not None:
        actual = sha256_file(path)
        if actual != expected:
            raise DataError(
                f"dataset {source}: sha256 mismatch "
                f"(expected {expected[:12]}…, got {actual[:12]}…); "
                "the artifact changed or the download is corrupt"
            )
    return path


def _within(path: Path, roots: list[Path]) -> bool:
    return any(path == root or root in path.parents for root in roots)


def fetch_dataset(data: DataSpec, settings: Settings) -> Path:
    """A verified local copy of the spec's corpus on this worker."""
    if data.uri:
        if data.sha256 is None:
            raise DataError("data.sha256: required when data.uri is set")
        store = settings.cache_dir / "datasets"
        cached = store / data.sha256
        if cached.exists():
            return cached
        import mlflow.artifacts

        with tempfile.TemporaryDirectory(prefix="seqq-data-") as tmp:
            try:
                got = mlflow.artifacts.download_artifacts(
                    artifact_uri=data.uri, dst_path=tmp, tracking_uri=settings.tracking_uri
                )
            except Exception as exc:
                raise DataError(
                    f"dataset {data.uri}: download failed ({exc.__class__.__name__})"
                ) from None
            _verify(Path(got), data.sha256, data.uri)
            return write_atomically(cached, lambda tmp: shutil.copyfile(got, tmp))
    if data.dataset == BUILTIN_DATASET or data.dataset.startswith(SYNTHETIC_PREFIX):
        local = resolve_dataset(data, settings.cache_dir)
        return _verify(local.path, data.sha256, data.dataset)
    path = Path(data.dataset).expanduser().resolve()
    if not _within(path, settings.allowed_data_roots):
        raise DataError(
            f"data.dataset {data.dataset}: this worker reads local files only under "
            "SEQQ_DATA_ROOTS; "
            "submit through `seqq submit` so the corpus travels through the artifact store"
        )
    if not path.is_file():
        raise DataError(f"data file {data.dataset}: not found on this worker")
    return _verify(path, data.sha256, data.dataset)
