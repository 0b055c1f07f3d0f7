"""The Model Registry: a sweep's best trial registered under a name, and `models:/` resolved.

A registered version's source is the best trial run's `checkpoints/best` folder (its artifact
URI; `final` for a run from before best checkpoints), the weights of the validation loss the
version is tagged with, so it holds the same self-describing checkpoint `seqq sample RUN` loads,
and
`mlflow.artifacts.download_artifacts("models:/NAME/1")` fetches it back. MLflow is imported
inside the functions: the client answers `--help` without it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shared import names
from shared.errors import ModelNotFoundError, SpecError

# models:/NAME/VERSION or models:/NAME@ALIAS; NAME holds no '/' or ':' (MLflow's rule).
_MODEL_URI = re.compile(r"^models:/(?P<name>[^/:@]+)(?:/(?P<version>[^/]+)|@(?P<alias>[^/@]+))$")


@dataclass(frozen=True)
class ModelRef:
    """One registered model version, by number or by alias."""

    name: str
    version: str | None = None
    alias: str | None = None

    @property
    def uri(self) -> str:
        tail = f"/{self.version}" if self.version is not None else f"@{self.alias}"
        return f"{names.MODELS_URI_SCHEME}{self.name}{tail}"


def is_model_uri(text: str) -> bool:
    return text.startswith(names.MODELS_URI_SCHEME)


def parse_model_uri(text: str) -> ModelRef:
    """`models:/NAME/VERSION` or `models:/NAME@ALIAS`; anything else is a one-line SpecError."""
    found = _MODEL_URI.match(text)
    if found is None or (found["version"] is not None and not found["version"].isdigit()):
        raise SpecError(f"{text}: not a model URI; use models:/NAME/VERSION or models:/NAME@ALIAS")
    return ModelRef(found["name"], found["version"], found["alias"])


def check_name(name: str) -> None:
    """Refuse a name MLflow's registry would refuse, before a sweep creates anything."""
    # MLflow's own check, so its rules are the only source of them.
    from mlflow.exceptions import MlflowException
    from mlflow.utils.validation import _validate_model_name

    try:
        _validate_model_name(name)
    except MlflowException as exc:
        raise SpecError(f"--register: {exc.message}") from None


def register_best(
    client: Any, name: str, sweep_id: str, best: dict[str, Any] | None
) -> dict[str, Any] | None:
    """Register the best trial's best checkpoint (the weights of its value) as a new version
    of `name` (created if missing), tagged with the sweep and its value; None when no trial
    completed."""
    from mlflow.exceptions import MlflowException

    if best is None or not best.get("run_id"):
        return None
    run_id = str(best["run_id"])
    run = client.get_run(run_id)
    saved = {
        a.path.rsplit("/", 1)[-1] for a in client.list_artifacts(run_id, names.ARTIFACT_CHECKPOINTS)
    }
    folder = names.BEST_CHECKPOINT if names.BEST_CHECKPOINT in saved else names.FINAL_CHECKPOINT
    source = f"{run.info.artifact_uri}/{names.ARTIFACT_CHECKPOINTS}/{folder}"
    try:
        client.get_registered_model(name)
    except MlflowException:
        client.create_registered_model(name)
    tags = {
        names.TAG_SWEEP_ID: sweep_id,
        names.TAG_SWEEP_BEST_TRIAL: str(best["number"]),
        names.TAG_MODEL_VAL_LOSS: repr(float(best["value"])),
    }
    version = client.create_model_version(name, source=source, run_id=run_id, tags=tags)
    uri = ModelRef(name, str(version.version)).uri
    client.set_tag(sweep_id, names.TAG_SWEEP_REGISTERED, uri)
    return {"name": name, "version": int(version.version), "uri": uri, "run_id": run_id}


def resolve(client: Any, ref: ModelRef) -> Any:
    """The registry's ModelVersion for `ref`; an unknown name, version or alias is
    ModelNotFoundError."""
    from mlflow.exceptions import MlflowException

    try:
        if ref.version is not None:
            return client.get_model_version(ref.name, ref.version)
        return client.get_model_version_by_alias(ref.name, ref.alias)
    except MlflowException:
        raise ModelNotFoundError(f"{ref.uri}: no such model version in the registry") from None


def download_checkpoint(client: Any, ref: ModelRef, tracking_uri: str, dst: Path) -> Path:
    """Fetch the checkpoint file a registered version points at into `dst`."""
    import mlflow.artifacts

    version = resolve(client, ref)
    source = client.get_model_version_download_uri(ref.name, version.version)
    folder = mlflow.artifacts.download_artifacts(
        artifact_uri=source, dst_path=str(dst), tracking_uri=tracking_uri
    )
    return Path(folder) / names.CHECKPOINT_FILE
