"""Tests for worker/train.py: learning-rate schedule, evaluation, a few real steps, precision."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from shared.errors import TrainingError
from shared.spec import OptimSpec
from worker.data import encode_bytes, eval_windows, sample_batch
from worker.model import CharRNN
from worker.train import cpu_has_fast_bf16, evaluate, lr_at, resolve_device, resolve_precision

# -- lr_at -------------------------------------------------------------------------------------


def test_lr_warm_up_is_linear_from_zero_to_the_peak():
    optim = OptimSpec(lr=0.02, warmup_steps=40, max_steps=1000)
    rates = [lr_at(optim, step, step / optim.max_steps) for step in range(optim.warmup_steps + 1)]
    assert rates[0] == 0.0
    assert rates[-1] == pytest.approx(optim.lr)
    steps = np.diff(rates)
    assert np.allclose(steps, optim.lr / optim.warmup_steps)


def test_cosine_decays_from_the_peak_to_min_lr_ratio_times_lr_at_progress_one():
    optim = OptimSpec(lr=0.01, warmup_steps=10, min_lr_ratio=0.2, max_steps=100)
    floor = optim.lr * optim.min_lr_ratio
    assert lr_at(optim, 11, 0.0) == pytest.approx(optim.lr)
    assert lr_at(optim, 100, 0.5) == pytest.approx((optim.lr + floor) / 2)
    assert lr_at(optim, 100, 1.0) == pytest.approx(floor)
    assert lr_at(optim, 100, 1.7) == pytest.approx(floor)  # a budget overrun clamps
    decay = [lr_at(optim, 11 + i, p) for i, p in enumerate(np.linspace(0.0, 1.0, 50))]
    assert all(a >= b for a, b in itertools.pairwise(decay))


def test_min_lr_ratio_zero_decays_to_zero():
    optim = OptimSpec(lr=0.01, warmup_steps=0, min_lr_ratio=0.0)
    assert lr_at(optim, 5, 1.0) == pytest.approx(0.0, abs=1e-15)


def test_constant_schedule_holds_the_peak_after_warm_up():
    optim = OptimSpec(lr=0.005, warmup_steps=4, schedule="constant")
    assert lr_at(optim, 2, 0.0) == pytest.approx(optim.lr / 2)
    assert all(lr_at(optim, step, step / 100) == optim.lr for step in range(5, 100))


# -- evaluate ----------------------------------------------------------------------------------


def _tiny_model(vocab_size: int, dropout: float = 0.0) -> CharRNN:
    torch.manual_seed(0)
    return CharRNN(
        vocab_size, cell="lstm", embedding_dim=8, hidden_size=24, num_layers=2, dropout=dropout
    )


@pytest.mark.parametrize("batch_size", [1, 2, 5])
def test_evaluate_equals_the_hand_computed_mean_cross_entropy(batch_size):
    model = _tiny_model(7)
    windows = torch.randint(0, 7, (5, 6), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        logits, _ = model(windows[:, :-1])
        log_probs = torch.log_softmax(logits.double(), dim=-1)
        picked = log_probs.gather(-1, windows[:, 1:].unsqueeze(-1)).squeeze(-1)
    expected = float(-picked.mean())
    assert evaluate(model, windows, batch_size) == pytest.approx(expected, rel=1e-6)


def test_evaluate_runs_in_eval_mode_and_restores_training_mode():
    model = _tiny_model(7, dropout=0.5).train()
    windows = torch.randint(0, 7, (4, 9), generator=torch.Generator().manual_seed(2))
    first = evaluate(model, windows, 2)
    assert model.training
    torch.manual_seed(123)  # dropout would draw from here if it were active
    assert evaluate(model, windows, 4) == pytest.approx(first, rel=1e-6)


def test_a_few_adamw_steps_on_repetitive_text_lower_the_evaluate_loss():
    torch.manual_seed(0)
    vocab, ids = encode_bytes(b"the cat sat on the mat. " * 200)
    train, val = ids[: len(ids) * 3 // 4], ids[len(ids) * 3 // 4 :]
    model = _tiny_model(vocab.size)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    windows = torch.from_numpy(eval_windows(val, 24, 8, 2))
    before = evaluate(model, windows, 8)
    assert before == pytest.approx(math.log(vocab.size), rel=0.2)  # untrained: near uniform
    model.train()
    for step in range(30):
        batch = torch.from_numpy(sample_batch(train, 24, 8, seed=0, step=step))
        logits, _ = model(batch[:, :-1])
        loss = F.cross_entropy(logits.reshape(-1, vocab.size), batch[:, 1:].reshape(-1))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    after = evaluate(model, windows, 8)
    assert after < 0.75 * before


# -- device and precision ----------------------------------------------------------------------


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_resolve_precision_keeps_an_explicit_choice(precision):
    assert resolve_precision(precision, torch.device("cpu")) == precision


def test_resolve_precision_auto_on_cpu_follows_the_cpu_bf16_support():
    expected = "bf16" if cpu_has_fast_bf16() else "fp32"
    assert resolve_precision("auto", torch.device("cpu")) == expected


def test_resolve_device_honours_an_explicit_cpu():
    assert resolve_device("cpu") == torch.device("cpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_resolve_device_refuses_cuda_on_a_machine_without_it():
    assert resolve_device("auto") == torch.device("cpu")
    with pytest.raises(TrainingError):
        resolve_device("cuda")
