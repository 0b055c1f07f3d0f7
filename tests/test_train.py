"""Tests for worker/train.py: learning-rate schedule, evaluation, a few real steps, precision,
and whole tiny runs: the best checkpoint, patience and a resume, with the logger recorded."""

from __future__ import annotations

import itertools
import math
from pathlib import Path
from typing import Any, cast

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from shared import names
from shared.dataset import split_bounds
from shared.errors import JobPreemptedError, TrainingError
from shared.spec import OptimSpec, TrainSpec
from worker import checkpoint
from worker.data import Corpus, encode_bytes, eval_windows, sample_batch
from worker.model import CharRNN
from worker.tracking import RunLogger
from worker.train import (
    Trainer,
    TrainResult,
    cpu_has_fast_bf16,
    evaluate,
    lr_at,
    resolve_device,
    resolve_precision,
)

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


# -- whole tiny runs: the best checkpoint, patience, resume --------------------------------------

# Training text of one sentence, held-out text of its words reversed: the same letters, other
# pairs. A model first learns the letters (validation improves), then the training pairs
# (validation worsens): the best validation loss comes early (step 10 of 40), not at the end.
OVERFITTING_TEXT = "the cat sat on the mat. " * 180 + "eht tac tas no eht .tam " * 20
# Unregularised, so that it overfits as described, whatever the spec's defaults.
RUN: dict[str, Any] = {
    "model": {"hidden_size": 32, "num_layers": 1, "embedding_dim": 8, "dropout": 0.0},
    "data": {"seq_len": 16},
    "optim": {
        "batch_size": 8,
        "max_steps": 40,
        "warmup_steps": 0,
        "lr": 0.005,
        "weight_decay": 0.01,
    },
    "run": {"eval_every": 5, "eval_batches": 2, "sample_every": 1000, "checkpoint_every": 1000},
    "sample": {"length": 10},
    "device": "cpu",
}


class RecordingLogger:
    """The RunLogger's interface, recording what the loop logs instead of sending it."""

    run_id = "run"
    client = None

    def __init__(self) -> None:
        self.logged: list[tuple[str, int, float]] = []
        self.files: list[tuple[str, str | None]] = []

    def metrics(self, values: dict[str, float], step: int) -> None:
        self.logged += [(key, step, value) for key, value in values.items()]

    def artifact(self, path: Path, artifact_path: str | None = None, **_: Any) -> None:
        self.files.append((Path(path).name, artifact_path))

    def artifact_text(self, name: str, text: str, artifact_path: str | None = None) -> None:
        self.files.append((name, artifact_path))

    def call(self, fn: Any) -> None:
        pass  # tags and tables: nothing to record here

    def history(self, key: str) -> list[tuple[int, float]]:
        return [(step, value) for k, step, value in self.logged if k == key]

    def last(self, key: str) -> float:
        return self.history(key)[-1][1]


class PreemptAt:
    """Asks the loop to stop (as a worker shutting down does) once `step` steps are done."""

    def __init__(self, step: int | None = None) -> None:
        self.step, self.calls = step, 0

    def progress(self, info: dict[str, Any]) -> None:
        pass

    def stop_reason(self) -> str | None:
        self.calls += 1  # asked once before each step: call n + 1 comes after step n
        return "preempt" if self.step is not None and self.calls > self.step else None


def spec_with(**optim: Any) -> TrainSpec:
    return TrainSpec.model_validate({**RUN, "optim": {**RUN["optim"], **optim}})


def trainer(
    spec: TrainSpec,
    folder: Path,
    logger: RecordingLogger,
    resume: dict[str, Any] | None = None,
    stop_at: int | None = None,
) -> Trainer:
    vocab, ids = encode_bytes(OVERFITTING_TEXT.encode())
    corpus = Corpus(vocab, ids, split_bounds(len(ids), spec.data))
    torch.manual_seed(spec.run.seed)
    model = CharRNN.from_spec(spec.model, vocab.size)
    sink, reporter = cast(RunLogger, logger), PreemptAt(stop_at)  # the interface, recorded
    return Trainer(spec, corpus, model, torch.device("cpu"), "fp32", sink, reporter, folder, resume)


def best_file(folder: Path) -> Path:
    return folder / names.BEST_CHECKPOINT / names.CHECKPOINT_FILE


def score(path: Path, windows: torch.Tensor) -> float:
    """The loss of a checkpoint's weights on `windows`, from the file alone."""
    model, _ = checkpoint.restore_model(checkpoint.load(path))  # weights_only=True
    return evaluate(model, windows, RUN["optim"]["batch_size"])


def test_the_best_checkpoint_holds_the_weights_of_the_lowest_validation_loss(
    tmp_path: Path,
) -> None:
    logger = RecordingLogger()
    run = trainer(spec_with(), tmp_path, logger)
    result = run.run()

    curve = logger.history(names.METRIC_VAL_LOSS)
    best_step, best_val = min(curve, key=lambda point: point[1])
    assert 0 < best_step < result.step == 40  # it overfits: the best is not the end
    assert (result.best_step, result.best_val_loss) == (best_step, best_val)
    payload = checkpoint.load(best_file(tmp_path))
    assert payload["step"] == best_step and payload["optimizer_state"] is None
    assert score(best_file(tmp_path), run.val_windows) == pytest.approx(best_val, abs=1e-6)

    # Its test loss is logged beside the final weights' one, each rebuilt from its file.
    final = tmp_path / names.FINAL_CHECKPOINT / names.CHECKPOINT_FILE
    assert score(final, run.test_windows) == pytest.approx(result.test_loss, abs=1e-6)
    test_best = score(best_file(tmp_path), run.test_windows)
    assert result.test_loss_best == pytest.approx(test_best, abs=1e-6)
    assert test_best < result.test_loss
    assert logger.last(names.METRIC_TEST_LOSS_BEST) == result.test_loss_best
    assert logger.last(names.METRIC_TEST_BPC_BEST) == pytest.approx(test_best / math.log(2))
    assert logger.last(names.METRIC_BEST_STEP) == best_step
    assert logger.last(names.METRIC_BEST_VAL_LOSS) == best_val

    # Uploaded once (no step checkpoint came after it), and sampled apart from the final.
    assert logger.files.count((names.CHECKPOINT_FILE, "checkpoints/best")) == 1
    samples = [name for name, folder in logger.files if folder == names.ARTIFACT_SAMPLES]
    assert samples == [
        "step-00000040-p0.txt",
        f"best-{names.checkpoint_dir_name(best_step)}-p0.txt",
    ]


def test_patience_ends_training_normally_at_the_evaluation_that_exhausts_it(
    tmp_path: Path,
) -> None:
    logger = RecordingLogger()
    result = trainer(spec_with(patience=2), tmp_path, logger).run()

    # The best at step 10; steps 15 and 20 bring none: stopped at 20, a whole run's end.
    assert result.stopped_early and result.step == 20 and result.best_step == 10
    assert [step for step, _ in logger.history(names.METRIC_VAL_LOSS)] == [0, 5, 10, 15, 20]
    assert checkpoint.load(tmp_path / names.FINAL_CHECKPOINT / names.CHECKPOINT_FILE)["step"] == 20
    assert logger.history(names.METRIC_TEST_LOSS)[0][0] == 20
    assert names.METRIC_TEST_LOSS_BEST in {key for key, _, _ in logger.logged}


def test_a_min_delta_larger_than_any_gain_stops_at_patience_evaluations_yet_keeps_the_best(
    tmp_path: Path,
) -> None:
    logger = RecordingLogger()
    result = trainer(spec_with(patience=2, min_delta=10.0), tmp_path, logger).run()
    assert result.stopped_early and result.step == 10  # evaluations at 5 and 10 gained < 10
    assert result.best_step == 10  # yet step 10 was the lowest loss: it is the best checkpoint


def test_without_patience_a_run_trains_to_max_steps_however_long_it_goes_without_a_best(
    tmp_path: Path,
) -> None:
    result = trainer(spec_with(), tmp_path, RecordingLogger()).run()
    assert not result.stopped_early and result.step == 40


def preempted_then_resumed(
    spec: TrainSpec, folder: Path, at: int
) -> tuple[TrainResult, RecordingLogger]:
    """Train until a preemption at step `at`, then resume from its checkpoint alone, as
    another machine would: the first worker's best checkpoint file is gone."""
    with pytest.raises(JobPreemptedError):
        trainer(spec, folder, RecordingLogger(), stop_at=at).run()
    resume = checkpoint.load(folder / names.checkpoint_dir_name(at) / names.CHECKPOINT_FILE)
    best_file(folder).unlink()
    logger = RecordingLogger()
    return trainer(spec, folder, logger, resume=resume).run(), logger


@pytest.mark.parametrize(
    "at",
    [
        7,  # the best so far is step 5's, carried in the checkpoint; the true best comes later
        10,  # the best is the checkpoint's own weights
        17,  # the best (step 10) is behind, carried, and one evaluation (15) brought no new one
    ],
)
def test_a_resumed_run_ends_with_the_same_best_checkpoint_as_an_uninterrupted_one(
    tmp_path: Path, at: int
) -> None:
    spec = spec_with(patience=4)
    whole = trainer(spec, tmp_path / "whole", RecordingLogger()).run()
    resumed, logger = preempted_then_resumed(spec, tmp_path / "resumed", at)

    assert (resumed.best_step, resumed.best_val_loss) == (whole.best_step, whole.best_val_loss)
    assert resumed.test_loss_best == whole.test_loss_best
    assert (resumed.step, resumed.stopped_early) == (
        whole.step,
        whole.stopped_early,
    )  # patience too
    ours, theirs = (checkpoint.load(best_file(tmp_path / run)) for run in ("resumed", "whole"))
    assert ours["step"] == theirs["step"]
    for key, tensor in theirs["model_state"].items():
        assert torch.equal(ours["model_state"][key], tensor), key
    # The resumed worker uploads the best it carried again (another may hold an older one).
    assert (names.CHECKPOINT_FILE, "checkpoints/best") in logger.files
