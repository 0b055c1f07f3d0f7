"""Assertions about a finished job, read back with MLflow's own client."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from shared import names
from shared.dataset import split_bounds
from shared.spec import TrainSpec
from worker import checkpoint, textstats
from worker.data import encode_bytes, eval_windows
from worker.sampling import DEFAULT_PROMPT_CHARS
from worker.train import evaluate


def assert_finished_job(tracking_uri: str, run_id: str, tmp: Path, expect: dict[str, str]) -> None:
    """Every promise the spine makes about a finished run (see issue 2's test list)."""
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri)
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED", run.data.tags.get(names.TAG_ERROR)

    # Params are exactly the flattened spec, which is also stored as spec.json.
    spec_path = client.download_artifacts(run_id, names.ARTIFACT_SPEC, str(tmp))
    spec = TrainSpec.model_validate(json.loads(Path(spec_path).read_text()))
    assert run.data.params == spec.flat()
    for key, value in expect.items():
        assert run.data.params[key] == value, key

    tags = run.data.tags
    assert tags[names.TAG_JOB_ID] == run_id
    assert tags[names.TAG_DATASET_SHA256] == spec.data.sha256
    for key in (
        names.TAG_WORKER_HOST,
        names.TAG_DEVICE,
        names.TAG_TORCH_VERSION,
        names.TAG_SEQQ_VERSION,
        names.TAG_PRECISION,
    ):
        assert tags.get(key), key
    assert run.inputs.dataset_inputs, "the dataset is recorded as a run input"
    assert run.inputs.dataset_inputs[0].dataset.name

    # Validation loss: finite, logged with explicit increasing steps, lower at the end.
    history = client.get_metric_history(run_id, names.METRIC_VAL_LOSS)
    steps = [m.step for m in history]
    assert steps == sorted(set(steps)) and steps[0] == 0
    values = [m.value for m in history]
    assert all(math.isfinite(v) for v in values)
    assert values[-1] < values[0]
    for key in (
        names.METRIC_TRAIN_LOSS,
        names.METRIC_LR,
        names.METRIC_TOKENS_PER_SEC,
        names.METRIC_TEST_LOSS,
        names.METRIC_TEST_BPC,
        names.METRIC_VAL_BPC,
        names.METRIC_TEST_LOSS_BEST,
        names.METRIC_TEST_BPC_BEST,
    ):
        assert key in run.data.metrics, key

    # The final checkpoint loads with weights_only and reproduces the logged final val loss.
    ckpt_path = client.download_artifacts(
        run_id,
        f"{names.ARTIFACT_CHECKPOINTS}/{names.FINAL_CHECKPOINT}/{names.CHECKPOINT_FILE}",
        str(tmp),
    )
    payload = checkpoint.load(Path(ckpt_path))
    model, vocab = checkpoint.restore_model(payload)
    assert payload["step"] == steps[-1]
    corpus_vocab, ids = encode_bytes(Path(spec.data.dataset).read_bytes())
    assert corpus_vocab == vocab
    start, end = split_bounds(len(ids), spec.data).val
    windows = eval_windows(
        np.asarray(ids[start:end]), spec.data.seq_len, spec.optim.batch_size, spec.run.eval_batches
    )
    torch.set_num_threads(1)
    reproduced = evaluate(model, torch.from_numpy(windows), spec.optim.batch_size)
    assert abs(reproduced - values[-1]) < 1e-4
    assert_best_checkpoint(tracking_uri, run_id, tmp)

    # Samples: non-empty text over the vocabulary, of the final weights and of the best.
    samples = {a.path for a in client.list_artifacts(run_id, names.ARTIFACT_SAMPLES)}
    final_step = names.checkpoint_dir_name(steps[-1])
    best_step = f"{names.BEST_CHECKPOINT}-{names.checkpoint_dir_name(payload['best_step'])}"
    for name in (final_step, best_step):
        path = f"{names.ARTIFACT_SAMPLES}/{name}-p0.txt"
        assert path in samples, samples
        text = Path(client.download_artifacts(run_id, path, str(tmp))).read_text()
        assert len(text) > spec.sample.length
        assert set(text) <= set(vocab.chars)

    # Text quality: the last sample step's figures are its samples' measures, rebuilt here from
    # the sample files and the corpus; step 0 holds the held-out text's.
    bounds = split_bounds(len(ids), spec.data)
    train = textstats.decode(ids[bounds.train[0] : bounds.train[1]], vocab.chars)
    val = textstats.decode(ids[bounds.val[0] : bounds.val[1]], vocab.chars)
    judge = textstats.TextJudge(train)
    prompts = spec.sample.prompts or (val[:DEFAULT_PROMPT_CHARS],)
    stats = []
    for i, prompt in enumerate(prompts):
        name = f"{names.ARTIFACT_SAMPLES}/{names.checkpoint_dir_name(steps[-1])}-p{i}.txt"
        sample = Path(client.download_artifacts(run_id, name, str(tmp))).read_bytes().decode()
        stats.append(judge.measure(prompt, sample.removeprefix(prompt)))
    expected = {
        **textstats.mean_metrics(stats),
        **judge.heldout(val, DEFAULT_PROMPT_CHARS, spec.sample.length),
    }
    assert len(expected) >= 6, expected  # repetition may be undefined for too few words
    for key, value in expected.items():
        history = {m.step: m.value for m in client.get_metric_history(run_id, key)}
        at = 0 if key in names.TEXT_METRICS.values() else steps[-1]
        assert history.get(at) == pytest.approx(value, rel=1e-9), key


def assert_best_checkpoint(tracking_uri: str, run_id: str, tmp: Path) -> None:
    """checkpoints/best/ holds the weights of the lowest validation loss the run logged (rebuilt
    from the file within 1e-4, at its step), and the run logged their test loss."""
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri)
    metrics = client.get_run(run_id).data.metrics
    spec_path = client.download_artifacts(run_id, names.ARTIFACT_SPEC, str(tmp))
    spec = TrainSpec.model_validate(json.loads(Path(spec_path).read_text()))
    history = client.get_metric_history(run_id, names.METRIC_VAL_LOSS)
    lowest = min(history, key=lambda m: (m.value, m.step))
    artifact = f"{names.ARTIFACT_CHECKPOINTS}/{names.BEST_CHECKPOINT}/{names.CHECKPOINT_FILE}"
    best = checkpoint.load(Path(client.download_artifacts(run_id, artifact, str(tmp))))
    assert best["step"] == lowest.step == metrics[names.METRIC_BEST_STEP]
    assert best["best_val_loss"] == metrics[names.METRIC_BEST_VAL_LOSS]
    assert abs(_val_loss(best, spec) - lowest.value) < 1e-4
    assert math.isfinite(metrics[names.METRIC_TEST_LOSS_BEST])


def _val_loss(payload: dict[str, Any], spec: TrainSpec) -> float:
    """A checkpoint's validation loss, recomputed from its file and the corpus on disk."""
    model, vocab = checkpoint.restore_model(payload)
    corpus_vocab, ids = encode_bytes(Path(spec.data.dataset).read_bytes())
    assert corpus_vocab == vocab
    start, end = split_bounds(len(ids), spec.data).val
    windows = eval_windows(
        np.asarray(ids[start:end]), spec.data.seq_len, spec.optim.batch_size, spec.run.eval_batches
    )
    torch.set_num_threads(1)
    return evaluate(model, torch.from_numpy(windows), spec.optim.batch_size)
