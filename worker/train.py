"""The training loop: AdamW steps that never wait on bookkeeping.

Each step samples a batch determined by (seed, step), runs forward/backward under the chosen
precision, clips and steps. The loss stays on the device and is read back only when it is
logged; evaluation, sampling (`worker.sampling`) and checkpointing run only at their
intervals; metrics and uploads are queued to the background `RunLogger`. Evaluation is always
fp32 on fixed windows, so validation losses compare across precisions, resumes and models.
A sweep's trial reports each validation loss to its study and, at each evaluation inside the
loop, may be pruned.
The weights of the lowest validation loss are kept (`worker.selection`), saved as the best
checkpoint and, at the end, scored on the test split and sampled beside the final ones; with
`optim.patience`, training ends early, normally, once that many evaluations bring no new best.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from shared import names
from shared.errors import (
    JobCancelledError,
    JobPreemptedError,
    LeaseLostError,
    TrainingError,
    TrialPrunedError,
)
from shared.spec import OptimSpec, TrainSpec
from worker import checkpoint
from worker.data import Corpus, eval_windows, sample_batch
from worker.model import CharRNN
from worker.sampling import Sampler
from worker.selection import BestTracker, BestWeights
from worker.tracking import RunLogger

LN2 = math.log(2.0)


class Reporter(Protocol):
    """Where the loop reports progress and learns that it should stop, and why."""

    def progress(self, info: dict[str, Any]) -> None: ...

    def stop_reason(self) -> str | None:
        """None to go on; "cancel", "preempt" (worker shutting down) or "lease-lost"."""


class Pruning(Protocol):
    """Where a sweep's trial reports its validation losses and learns whether to stop early
    (`worker.trial.TrialReporter`)."""

    def report(self, step: int, value: float) -> None: ...

    def should_prune(self, elapsed: float | None = None) -> bool: ...


@dataclass
class TrainResult:
    """What a finished (or budget- or patience-stopped) loop reports."""

    step: int
    elapsed_s: float
    chars_per_s: float
    final_val_loss: float
    best_val_loss: float
    test_loss: float
    best_step: int | None = None  # None only after a resume from a checkpoint that predates it
    test_loss_best: float | None = None  # the test loss of the best checkpoint's weights
    stopped_early: bool = False  # optim.patience ended training


def resolve_device(requested: str) -> torch.device:
    if requested == "cuda" or (requested == "auto" and torch.cuda.is_available()):
        if not torch.cuda.is_available():
            raise TrainingError("device: cuda was requested but this worker has no CUDA device")
        return torch.device("cuda")
    return torch.device("cpu")


def cpu_has_fast_bf16() -> bool:
    """AVX512-BF16 or AMX: the CPUs on which bf16 autocast beats fp32."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return " avx512_bf16" in flags or " amx_bf16" in flags


def resolve_precision(requested: str, device: torch.device) -> str:
    if requested != "auto":
        return requested
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
    return "bf16" if cpu_has_fast_bf16() else "fp32"


def lr_at(optim: OptimSpec, step: int, progress: float) -> float:
    """Linear warm-up, then cosine decay to min_lr_ratio * lr over `progress` in [0, 1]."""
    if optim.warmup_steps and step <= optim.warmup_steps:
        return optim.lr * step / optim.warmup_steps
    if optim.schedule == "constant":
        return optim.lr
    floor = optim.lr * optim.min_lr_ratio
    return floor + 0.5 * (optim.lr - floor) * (1.0 + math.cos(math.pi * min(progress, 1.0)))


@torch.no_grad()
def evaluate(model: nn.Module, windows: torch.Tensor, batch_size: int) -> float:
    """Mean next-character loss in nats over fixed windows, in fp32 and eval mode: any module
    mapping ids to (logits, state), a CharRNN or a benchmark's bare model."""
    was_training = model.training
    model.eval()
    total = torch.zeros((), dtype=torch.float64, device=windows.device)
    count = 0
    for start in range(0, windows.size(0), batch_size):
        chunk = windows[start : start + batch_size]
        logits, _ = model(chunk[:, :-1])
        loss = F.cross_entropy(
            logits.float().reshape(-1, logits.size(-1)), chunk[:, 1:].reshape(-1), reduction="sum"
        )
        total += loss.double()
        count += chunk[:, 1:].numel()
    model.train(was_training)
    return float(total) / count


class Trainer:
    """Runs one job's optimisation from `start_step` to the step limit or the time budget."""

    def __init__(
        self,
        spec: TrainSpec,
        corpus: Corpus,
        model: CharRNN,
        device: torch.device,
        precision: str,
        logger: RunLogger,
        reporter: Reporter,
        checkpoint_dir: Path,
        resume: dict[str, Any] | None = None,
        trial: Pruning | None = None,
    ) -> None:
        self.spec = spec
        self.corpus = corpus
        self.model = model.to(device)
        self.device = device
        self.precision = precision
        self.logger = logger
        self.reporter = reporter
        self.checkpoint_dir = checkpoint_dir
        self.trial = trial
        self.optimizer = torch.optim.AdamW(
            model.parameters(),
            lr=spec.optim.lr,
            weight_decay=spec.optim.weight_decay,
            betas=(0.9, 0.99),
            fused=device.type == "cuda",
        )
        self.train_ids = np.asarray(corpus.split("train"))
        batch, seq = spec.optim.batch_size, spec.data.seq_len
        self.val_windows = self._to_device(
            eval_windows(corpus.split("val"), seq, batch, spec.run.eval_batches)
        )
        self.test_windows = self._to_device(
            eval_windows(corpus.split("test"), seq, batch, spec.run.eval_batches)
        )
        self.sampler = Sampler(spec.sample, corpus, self.train_ids, device)
        self.step = 0
        self.elapsed_before = 0.0
        self.best = BestTracker(spec.optim.min_delta, resume)
        self.last_val = math.nan
        self.last_val_step: int | None = None
        if resume is not None:
            self.model.load_state_dict(resume["model_state"])
            if resume.get("optimizer_state") is not None:
                self.optimizer.load_state_dict(resume["optimizer_state"])
            self.step = int(resume["step"])
            self.elapsed_before = float(resume.get("elapsed_s", 0.0))
            if isinstance(resume.get("torch_rng"), torch.Tensor):
                torch.set_rng_state(resume["torch_rng"])  # dropout continues as if uninterrupted
        self._started = time.monotonic()
        self.submitted_at: float | None = None  # epoch seconds the job was submitted, if known

    def _to_device(self, array: np.ndarray) -> torch.Tensor:
        tensor = torch.from_numpy(array)
        if self.device.type == "cuda":
            return tensor.pin_memory().to(self.device, non_blocking=True)
        return tensor

    # -- the loop ---------------------------------------------------------------------------
    def run(self) -> TrainResult:
        spec, optim = self.spec, self.spec.optim
        budget = optim.time_budget
        chars_per_step = optim.batch_size * spec.data.seq_len
        started = self._started = time.monotonic()
        if self.step == 0:
            self._evaluate(0)
            self.sampler.log_reference(self.logger)
        loss_sum = torch.zeros((), device=self.device)
        loss_count = 0
        window_start, window_step = time.monotonic(), self.step
        stopped_early = False
        self.model.train()
        while self.step < optim.max_steps:
            elapsed = self.elapsed_before + time.monotonic() - started
            if budget is not None and elapsed >= budget:
                break
            reason = self.reporter.stop_reason()
            if reason is not None:
                self._stop(reason, elapsed)
            self.step += 1
            progress = max(self.step / optim.max_steps, elapsed / budget if budget else 0.0)
            lr = lr_at(optim, self.step, progress)
            for group in self.optimizer.param_groups:
                group["lr"] = lr
            loss_sum += self._train_step()
            loss_count += 1
            if self.step == 1 and self.submitted_at is not None:
                latency = time.time() - self.submitted_at
                self.logger.metrics({names.METRIC_SUBMIT_TO_FIRST_STEP: latency}, 1)

            step = self.step
            last = step >= optim.max_steps
            log_now = step % spec.run.log_every == 0 or last
            ckpt_now = step % spec.run.checkpoint_every == 0
            if log_now or ckpt_now:
                train_loss = float(loss_sum) / loss_count  # the only host read-back of the loss
                if not math.isfinite(train_loss):
                    raise TrainingError(f"loss became {train_loss} at step {step}; lower optim.lr")
                now = time.monotonic()
                rate = (step - window_step) * chars_per_step / max(now - window_start, 1e-9)
                window_start, window_step = now, step
                loss_sum.zero_()
                loss_count = 0
                self.logger.metrics(
                    {
                        names.METRIC_TRAIN_LOSS: train_loss,
                        names.METRIC_LR: lr,
                        names.METRIC_TOKENS_PER_SEC: rate,
                        names.METRIC_ELAPSED: self.elapsed_before + now - started,
                    },
                    step,
                )
                self.reporter.progress(
                    {
                        "step": step,
                        "max_steps": optim.max_steps,
                        "train_loss": train_loss,
                        "val_loss": self.last_val,
                        "tokens_per_sec": rate,
                        "elapsed_s": self.elapsed_before + now - started,
                        "time_budget": budget,
                    }
                )
            if step % spec.run.eval_every == 0 and not last:
                self._evaluate(step)
                if self.trial is not None and self.trial.should_prune(self.elapsed()):
                    self._stop("prune", self.elapsed_before + time.monotonic() - started)
                if self.best.exhausted(optim.patience):
                    stopped_early = True
                    break  # and end as at max_steps: this step is evaluated once, not twice
            if step % spec.run.sample_every == 0 and not last:
                self.sampler.sample(self.model, step, self.logger)
            if ckpt_now and not last:
                self._checkpoint(
                    names.checkpoint_dir_name(step),
                    self.elapsed_before + time.monotonic() - started,
                )

        elapsed = self.elapsed_before + time.monotonic() - started
        if loss_count:  # a time budget ended the loop between two logged steps
            self.logger.metrics(
                {
                    names.METRIC_TRAIN_LOSS: float(loss_sum) / loss_count,
                    names.METRIC_LR: lr,
                    names.METRIC_ELAPSED: elapsed,
                },
                self.step,
            )
        # Stopped right after an evaluation (patience, a budget): it was the final one.
        evaluated = self.last_val_step == self.step
        final_val = self.last_val if evaluated else self._evaluate(self.step)
        # Logged as artifacts; the result carries numbers only.
        self.sampler.sample(self.model, self.step, self.logger)
        self._checkpoint(names.FINAL_CHECKPOINT, elapsed)
        test_loss = evaluate(self.model, self.test_windows, optim.batch_size)
        trained_chars = self.step * chars_per_step
        end = {
            names.METRIC_TEST_LOSS: test_loss,
            names.METRIC_TEST_BPC: test_loss / LN2,
            names.METRIC_TRAIN_TIME: elapsed,
            names.METRIC_CHARS_PER_SEC: trained_chars / max(elapsed, 1e-9),
            names.METRIC_BEST_VAL_LOSS: self.best.val_loss,
        }
        best, test_loss_best = self.best.weights, None
        if best is not None:
            test_loss_best = self._score_best(best)
            end[names.METRIC_BEST_STEP] = best.step
            end[names.METRIC_TEST_LOSS_BEST] = test_loss_best
            end[names.METRIC_TEST_BPC_BEST] = test_loss_best / LN2
        self.logger.metrics(end, self.step)
        return TrainResult(
            step=self.step,
            elapsed_s=elapsed,
            chars_per_s=trained_chars / max(elapsed, 1e-9),
            final_val_loss=final_val,
            best_val_loss=self.best.val_loss,
            test_loss=test_loss,
            best_step=best.step if best is not None else None,
            test_loss_best=test_loss_best,
            stopped_early=stopped_early,
        )

    def _score_best(self, best: BestWeights) -> float:
        """Save the best checkpoint, load its weights, score them on the test split and sample
        them (named apart from the final samples); the model keeps the best weights."""
        self.best.save(self._write_best)
        self.model.load_state_dict(best.state)
        test_loss = evaluate(self.model, self.test_windows, self.spec.optim.batch_size)
        self.sampler.sample(self.model, best.step, self.logger, best=True)
        return test_loss

    def _stop(self, reason: str, elapsed: float) -> None:
        """Leave the loop for `reason` (a stop reason, or "prune"): keep a checkpoint unless
        another worker owns the job."""
        if reason == "lease-lost":
            raise LeaseLostError("another worker holds this job's lease")
        self._checkpoint(names.checkpoint_dir_name(self.step), elapsed)
        if reason == "prune":
            raise TrialPrunedError(self.step)
        if reason == "preempt":
            raise JobPreemptedError(f"worker shutting down at step {self.step}")
        raise JobCancelledError(f"cancelled by request at step {self.step}")

    def _train_step(self) -> torch.Tensor:
        spec = self.spec
        batch = sample_batch(
            self.train_ids, spec.data.seq_len, spec.optim.batch_size, spec.run.seed, self.step
        )
        ids = self._to_device(batch)
        x, y = ids[:, :-1], ids[:, 1:]
        with torch.autocast(
            self.device.type, dtype=torch.bfloat16, enabled=self.precision == "bf16"
        ):
            logits, _ = self.model(x)
            loss = F.cross_entropy(logits.reshape(-1, logits.size(-1)).float(), y.reshape(-1))
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if spec.optim.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), spec.optim.grad_clip)
        self.optimizer.step()
        return loss.detach()

    # -- bookkeeping at intervals -----------------------------------------------------------
    def _evaluate(self, step: int) -> float:
        val = evaluate(self.model, self.val_windows, self.spec.optim.batch_size)
        if not math.isfinite(val):
            raise TrainingError(f"validation loss became {val} at step {step}; lower optim.lr")
        self.last_val, self.last_val_step = val, step
        self.best.observe(step, val, self.model)
        self.logger.metrics(
            {
                names.METRIC_VAL_LOSS: val,
                names.METRIC_VAL_BPC: val / LN2,
                names.METRIC_VAL_ELAPSED: self.elapsed(),
            },
            step,
        )
        if self.trial is not None:
            self.trial.report(step, val)
        return val

    def elapsed(self) -> float:
        """Training wall time so far, across resumes."""
        return self.elapsed_before + time.monotonic() - self._started

    def _checkpoint(self, folder: str, elapsed: float) -> Path:
        # Never overwrite the last good checkpoint with weights that already diverged.
        if not all(bool(torch.isfinite(p).all()) for p in self.model.parameters()):
            raise TrainingError(f"weights became non-finite by step {self.step}; lower optim.lr")
        resumable = checkpoint.step_of(folder) is not None
        payload = checkpoint.build_payload(
            self.model,
            self.optimizer,
            self.step,
            self.spec,
            self.corpus.vocab,
            elapsed_s=elapsed,
            **self.best.checkpoint_fields(self.step, resumable),
            precision=self.precision,
            torch_rng=torch.get_rng_state(),
        )
        path = self._write(payload, folder)
        if resumable:  # a new best is uploaded after a step checkpoint, not at each evaluation
            self.best.save(self._write_best)
        return path

    def _write_best(self, best: BestWeights) -> None:
        # Weights only (no optimizer): for sampling and scoring, never resumed from. Rewriting
        # it while the upload of an older one waits is safe: each write is a whole new file.
        payload = checkpoint.build_payload(
            self.model,
            None,
            best.step,
            self.spec,
            self.corpus.vocab,
            model_state=best.state,
            best_val_loss=best.val_loss,
            precision=self.precision,
        )
        self._write(payload, names.BEST_CHECKPOINT)

    def _write(self, payload: dict[str, Any], folder: str) -> Path:
        path = checkpoint.save(payload, self.checkpoint_dir / folder / names.CHECKPOINT_FILE)
        self.logger.artifact(path, f"{names.ARTIFACT_CHECKPOINTS}/{folder}")
        return path
