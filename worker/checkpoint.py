"""Self-describing checkpoints: weights, optimizer, step, spec and vocabulary in one file.

A checkpoint needs nothing else to resume training or to sample (nanoGPT's rule). Files hold
only tensors and plain containers, so they load with `torch.load(weights_only=True)`: loading
a checkpoint never runs code from it. Writes go to a temporary name and are renamed into place,
so a crash mid-write never leaves a half checkpoint that looks complete.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from shared import names
from shared.atomic import write_atomically
from shared.errors import CheckpointError
from shared.spec import TrainSpec
from worker.data import Vocab
from worker.model import CharRNN

FORMAT_VERSION = 1
_REQUIRED = ("format", "step", "model_args", "model_state", "spec", "vocab")


def build_payload(
    model: CharRNN,
    optimizer: torch.optim.Optimizer | None,
    step: int,
    spec: TrainSpec,
    vocab: Vocab,
    *,
    model_state: dict[str, torch.Tensor] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """Everything a resume or a sampler needs, as weights-only-loadable data.

    The weights are the model's own unless `model_state` gives others of its shape (the best
    checkpoint's, kept on the host)."""
    state = model.state_dict() if model_state is None else model_state
    return {
        "format": FORMAT_VERSION,
        "step": step,
        "model_args": dict(model.args),
        "model_state": {k: v.detach().cpu() for k, v in state.items()},
        "optimizer_state": optimizer.state_dict() if optimizer is not None else None,
        "spec": spec.model_dump(mode="json"),
        "vocab": vocab.chars,
        **extra,
    }


def save(payload: dict[str, Any], path: Path) -> Path:
    """Write atomically; returns `path`."""
    return write_atomically(path, lambda tmp: torch.save(payload, tmp))


def load(path: Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """A checkpoint's contents, loaded without executing anything (`weights_only=True`)."""
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except FileNotFoundError:
        raise CheckpointError(f"checkpoint {path}: not found") from None
    except Exception as exc:
        raise CheckpointError(f"checkpoint {path}: unreadable ({exc.__class__.__name__})") from None
    if not isinstance(payload, dict) or any(key not in payload for key in _REQUIRED):
        raise CheckpointError(f"checkpoint {path}: not a seqq checkpoint")
    if payload["format"] != FORMAT_VERSION:
        raise CheckpointError(f"checkpoint {path}: format {payload['format']} is not supported")
    return payload


def restore_model(payload: dict[str, Any]) -> tuple[CharRNN, Vocab]:
    """The model (in eval mode, on CPU) and vocabulary a checkpoint describes."""
    model = CharRNN(**payload["model_args"])
    model.load_state_dict(payload["model_state"])
    model.eval()
    return model, Vocab(payload["vocab"])


def local_path(root: Path, job_id: str, folder: str) -> Path:
    """Where a job keeps a checkpoint on this worker: <root>/<job>/<step-00000500|final|best>/."""
    return root / job_id / folder / names.CHECKPOINT_FILE


def newest_local(root: Path, job_id: str) -> Path | None:
    """The newest step checkpoint this worker holds for the job, if any."""
    folders = sorted((root / job_id).glob("step-*"), key=lambda p: step_of(p.name) or -1)
    for folder in reversed(folders):
        candidate = folder / names.CHECKPOINT_FILE
        if candidate.exists():
            return candidate
    return None


def step_of(folder: str) -> int | None:
    """The step of a `step-00000500` folder name (None for `final` or anything else)."""
    prefix, _, number = folder.rpartition("/")[2].partition("-")
    return int(number) if prefix == "step" and number.isdigit() else None


def newest_remote(client: Any, run_id: str) -> tuple[int, str] | None:
    """The newest step checkpoint in the run's artifacts: (step, artifact path), if any."""
    best: tuple[int, str] | None = None
    for entry in client.list_artifacts(run_id, names.ARTIFACT_CHECKPOINTS):
        step = step_of(entry.path)
        if step is not None and (best is None or step > best[0]):
            best = (step, f"{entry.path}/{names.CHECKPOINT_FILE}")
    return best


def newest(client: Any, run_id: str, root: Path) -> Path | None:
    """The newest checkpoint of a job, local or in MLflow (downloaded into `root` if remote).

    Another machine may have trained the job before this one, so the run's artifacts are the
    reference; a local copy saves the download when it is at least as new.
    """
    local = newest_local(root, run_id)
    local_step = step_of(local.parent.name) if local else None
    remote = newest_remote(client, run_id)
    if remote is None or (local_step is not None and local_step >= remote[0]):
        return local
    folder = root / run_id / names.checkpoint_dir_name(remote[0])
    folder.mkdir(parents=True, exist_ok=True)
    return Path(client.download_artifacts(run_id, remote[1], str(folder.parent)))
