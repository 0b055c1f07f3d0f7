"""The trainer's CUDA paths: run where a GPU is (`make gpu-check`), skipped everywhere else.

Marked `cuda`, so `pytest -m cuda` selects exactly what a GPU machine must run.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from worker.data import encode_bytes, eval_windows, sample_batch
from worker.model import CharRNN
from worker.train import evaluate, resolve_device, resolve_precision

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU"),
]


def _tiny_model(vocab_size: int, cell: str = "lstm") -> CharRNN:
    torch.manual_seed(0)
    return CharRNN(vocab_size, cell=cell, embedding_dim=8, hidden_size=24, num_layers=2)


def test_device_auto_picks_the_gpu_and_precision_auto_picks_bf16_where_it_is_supported():
    device = resolve_device("auto")
    assert device.type == "cuda"
    expected = "bf16" if torch.cuda.is_bf16_supported() else "fp32"
    assert resolve_precision("auto", device) == expected


@pytest.mark.parametrize("cell", ["lstm", "rnn", "gru"])
def test_evaluate_on_the_gpu_agrees_with_evaluate_on_the_cpu(cell: str) -> None:
    model = _tiny_model(11, cell)
    windows = torch.randint(0, 11, (6, 17), generator=torch.Generator().manual_seed(1))
    on_cpu = evaluate(model, windows, 4)
    on_gpu = evaluate(model.cuda(), windows.cuda(), 4)
    # cuDNN's kernels sum in another order (and may use TF32): close, not bit-equal.
    assert on_gpu == pytest.approx(on_cpu, abs=1e-3)


def test_bf16_autocast_steps_on_the_gpu_learn_repetitive_text() -> None:
    vocab, ids = encode_bytes(b"the cat sat on the mat. " * 200)
    train, val = ids[: len(ids) * 3 // 4], ids[len(ids) * 3 // 4 :]
    model = _tiny_model(vocab.size).cuda()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2, fused=True)  # as the Trainer does
    windows = torch.from_numpy(eval_windows(val, 24, 8, 2)).cuda()
    before = evaluate(model, windows, 8)
    model.train()
    for step in range(30):
        batch = torch.from_numpy(sample_batch(train, 24, 8, seed=0, step=step))
        batch = batch.pin_memory().cuda(non_blocking=True)
        with torch.autocast("cuda", dtype=torch.bfloat16):
            logits, _ = model(batch[:, :-1])
            loss = F.cross_entropy(logits.reshape(-1, vocab.size).float(), batch[:, 1:].reshape(-1))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    # Master weights stay fp32 under autocast: only the matmuls ran in bf16.
    assert all(p.dtype == torch.float32 for p in model.parameters())
    after = evaluate(model, windows, 8)
    assert math.isfinite(after) and after < 0.75 * before
