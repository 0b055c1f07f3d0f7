"""Generation from a run's checkpoint: `seqq sample` without any training machinery.

The checkpoint is fetched from the run's artifacts, loaded with `weights_only=True`, and the
model it describes generates from a prompt with a seeded generator, so the same call prints the
same text every time.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import torch

from shared import names
from shared.errors import CheckpointError, DataError
from worker import checkpoint


def checkpoint_artifact(step: int | None) -> str:
    folder = names.FINAL_CHECKPOINT if step is None else names.checkpoint_dir_name(step)
    return f"{names.ARTIFACT_CHECKPOINTS}/{folder}/{names.CHECKPOINT_FILE}"


def fetch_checkpoint(client: Any, run_id: str, step: int | None, dst: Path) -> dict[str, Any]:
    """Download and load a run's final (or step-N) checkpoint."""
    artifact = checkpoint_artifact(step)
    try:
        path = client.download_artifacts(run_id, artifact, str(dst))
    except Exception:
        listed = client.list_artifacts(run_id, names.ARTIFACT_CHECKPOINTS)
        available = ", ".join(a.path.rsplit("/", 1)[-1] for a in listed) or "none"
        raise CheckpointError(
            f"run {run_id}: no checkpoint {artifact.split('/')[1]}; available: {available}"
        ) from None
    return checkpoint.load(Path(path))


def generate_text(
    payload: dict[str, Any],
    prompt: str | None,
    length: int,
    temperature: float,
    top_k: int | None,
    seed: int,
) -> str:
    """Prompt plus `length` generated characters; an out-of-vocabulary prompt is an error."""
    model, vocab = checkpoint.restore_model(payload)
    if prompt is None:
        prompt = "\n" if "\n" in vocab.chars else vocab.chars[0]
    if not prompt:
        raise DataError("--prompt: must not be empty")
    missing = sorted(set(prompt) - set(vocab.chars))
    if missing:
        raise DataError(f"--prompt: characters not in the model's vocabulary: {''.join(missing)!r}")
    ids = torch.from_numpy(vocab.encode(prompt))
    generator = torch.Generator().manual_seed(seed)
    new = model.generate(ids, length, temperature, top_k, generator)
    return prompt + vocab.decode(new)


def sample_file(
    path: Path,
    prompt: str | None,
    length: int,
    temperature: float,
    top_k: int | None,
    seed: int,
) -> str:
    """Generate from a checkpoint file already fetched (a registered model version's)."""
    return generate_text(checkpoint.load(path), prompt, length, temperature, top_k, seed)


def sample_run(
    client: Any,
    run_id: str,
    step: int | None,
    prompt: str | None,
    length: int,
    temperature: float,
    top_k: int | None,
    seed: int,
) -> str:
    with tempfile.TemporaryDirectory(prefix="seqq-sample-") as tmp:
        payload = fetch_checkpoint(client, run_id, step, Path(tmp))
    return generate_text(payload, prompt, length, temperature, top_k, seed)
