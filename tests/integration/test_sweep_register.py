"""`seqq sweep --local --register` end to end: the best trial's best checkpoint becomes a model
version in MLflow's registry (SQLite store), and `seqq sample models:/...` generates from it
exactly what `seqq sample RUN` does from the run itself."""

from __future__ import annotations

from pathlib import Path

import mlflow
import pytest

from shared import names
from tests.helpers import seqq, seqq_json
from tests.integration.test_sweep_local import _setup


def _sample(target: str, env: dict[str, str]) -> str:
    done = seqq(["sample", target, "--length", "20", "--seed", "1"], env)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_a_registered_sweep_model_samples_like_its_best_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mlflow import MlflowClient

    path, env, settings = _setup(tmp_path)
    args = ["sweep", "-f", str(path), "--local", "--trials", "2", "--pruner", "none"]
    out = seqq_json([*args, "--register", "tiny-model"], env)
    best_run = out["best"]["run_id"]
    assert out["registered"] == {
        "name": "tiny-model",
        "version": 1,
        "uri": "models:/tiny-model/1",
        "run_id": best_run,
    }

    client = MlflowClient(settings.tracking_uri)
    version = client.get_model_version("tiny-model", "1")
    assert version.run_id == best_run
    assert version.source.endswith(f"{names.ARTIFACT_CHECKPOINTS}/{names.BEST_CHECKPOINT}")
    assert version.tags[names.TAG_SWEEP_ID] == out["sweep_id"]
    assert float(version.tags[names.TAG_MODEL_VAL_LOSS]) == out["best"]["value"]
    assert client.get_run(out["sweep_id"]).data.tags[names.TAG_SWEEP_REGISTERED] == (
        "models:/tiny-model/1"
    )
    # MLflow's own models:/ download fetches the checkpoint back from the source.
    monkeypatch.setenv("MLFLOW_TRACKING_URI", settings.tracking_uri)  # the registry's too
    fetched = mlflow.artifacts.download_artifacts("models:/tiny-model/1", dst_path=str(tmp_path))
    assert (Path(fetched) / names.CHECKPOINT_FILE).is_file()

    first = _sample("models:/tiny-model/1", env)
    assert len(first) > 20
    assert _sample("models:/tiny-model/1", env) == first
    assert _sample(best_run, env) == first
    client.set_registered_model_alias("tiny-model", "champion", "1")
    assert _sample("models:/tiny-model@champion", env) == first

    for unknown in ("models:/tiny-model/7", "models:/nope/1", "models:/tiny-model@nope"):
        done = seqq(["sample", unknown], env)
        assert done.returncode == 4, done.stderr
        assert len(done.stderr.strip().splitlines()) == 1 and unknown in done.stderr


def test_a_bad_register_name_is_refused_before_anything_is_created(tmp_path: Path) -> None:
    path, env, settings = _setup(tmp_path)
    done = seqq(["sweep", "-f", str(path), "--local", "--register", "team/model"], env)
    assert done.returncode == 2, done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and "--register" in done.stderr
    assert not Path(settings.tracking_uri.removeprefix("sqlite:///")).exists()
    assert not (settings.home / "sweeps").exists()
