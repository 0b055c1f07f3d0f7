"""Generation from a run's checkpoint: `seqq sample` without any training machinery.

The checkpoint is fetched from the run's artifacts (by default its best: the weights of the
lowest validation loss), loaded with `weights_only=True`, and the model it describes generates
from a prompt with a seeded generator, so the same call prints the same text every time.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any, NamedTuple

import torch

from shared import names
from shared.errors import CheckpointError, DataError
from worker import checkpoint


def fetch_checkpoint(
    client: Any, run_id: str, folder: str | None, dst: Path
) -> tuple[str, dict[str, Any]]:
    """Download and load one of a run's checkpoints: `folder` (best, final, step-00000500),
    or by default its best when it has one, else its final one. Returns (folder, contents)."""
    listed = client.list_artifacts(run_id, names.ARTIFACT_CHECKPOINTS)
    available = sorted(a.path.rsplit("/", 1)[-1] for a in listed)
    if folder is None:
        best = names.BEST_CHECKPOINT in available
        folder = names.BEST_CHECKPOINT if best else names.FINAL_CHECKPOINT
    if folder not in available:
        raise CheckpointError(
            f"run {run_id}: no checkpoint {folder}; available: {', '.join(available) or 'none'}"
        )
    artifact = f"{names.ARTIFACT_CHECKPOINTS}/{folder}/{names.CHECKPOINT_FILE}"
    return folder, checkpoint.load(Path(client.download_artifacts(run_id, artifact, str(dst))))


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


class RunSample(NamedTuple):
    """Text generated from a run's checkpoint, and which checkpoint it was."""

    text: str
    folder: str
    step: int


def sample_run(
    client: Any,
    run_id: str,
    folder: str | None,
    prompt: str | None,
    length: int,
    temperature: float,
    top_k: int | None,
    seed: int,
) -> RunSample:
    with tempfile.TemporaryDirectory(prefix="seqq-sample-") as tmp:
        folder, payload = fetch_checkpoint(client, run_id, folder, Path(tmp))
    text = generate_text(payload, prompt, length, temperature, top_k, seed)
    return RunSample(text, folder, int(payload["step"]))
