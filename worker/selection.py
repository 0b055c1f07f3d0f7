"""Model selection: a job's best validation loss over its whole history, the weights that
reached it, and the patience count that may end training early.

The weights are copied to the host at the evaluation that finds them (no upload then), written
as the best checkpoint only when the loop asks (at checkpoint times and at the end), and carried
inside every step checkpoint. So a job resumed on any machine continues with the same best and
the same patience count, whatever became of the separately uploaded best checkpoint (a worker
killed between the two uploads leaves a best checkpoint older, or newer, than its step one).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch


@dataclass(frozen=True)
class BestWeights:
    """The weights that reached the lowest validation loss so far, on the host."""

    step: int
    val_loss: float
    state: dict[str, torch.Tensor]


class BestTracker:
    """Keeps the best weights and counts evaluations without a new best."""

    def __init__(self, min_delta: float = 0.0, resume: dict[str, Any] | None = None) -> None:
        self.min_delta = min_delta
        self.val_loss = math.inf  # the best validation loss (also known without its weights)
        self.weights: BestWeights | None = None
        self.evals_without_best = 0  # evaluations since the best improved by min_delta
        self._saved_step: int | None = None  # the step of the best handed to `save` last
        if resume is not None:
            self.val_loss = float(resume.get("best_val_loss", math.inf))
            self.evals_without_best = int(resume.get("evals_without_best", 0))
            self.weights = _resumed(resume)

    def observe(self, step: int, val_loss: float, model: torch.nn.Module) -> None:
        """Count an evaluation; copy the model's weights when it sets a new best."""
        if val_loss < self.val_loss - self.min_delta:
            self.evals_without_best = 0
        else:
            self.evals_without_best += 1
        if val_loss < self.val_loss:
            self.val_loss = val_loss
            state = {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}
            self.weights = BestWeights(step, val_loss, state)

    def exhausted(self, patience: int | None) -> bool:
        """Whether `patience` evaluations in a row brought no new best."""
        return patience is not None and self.evals_without_best >= patience

    def save(self, write: Callable[[BestWeights], object]) -> None:
        """Hand the best weights to `write`, unless the last call already did."""
        if self.weights is not None and self.weights.step != self._saved_step:
            write(self.weights)
            self._saved_step = self.weights.step

    def checkpoint_fields(self, step: int, resumable: bool) -> dict[str, Any]:
        """What a checkpoint at `step` records of the selection. A resumable (step) checkpoint
        carries the best weights too, unless they are its own."""
        best = self.weights
        carried = resumable and best is not None and best.step != step
        return {
            "best_val_loss": self.val_loss,
            "best_step": best.step if best is not None else None,
            "best_model_state": best.state if carried and best is not None else None,
            "evals_without_best": self.evals_without_best,
        }


def _resumed(resume: dict[str, Any]) -> BestWeights | None:
    """The best weights a step checkpoint carries: its own when the best is at its step. None
    for a checkpoint written before best checkpoints existed: the best loss is known, its
    weights are not, until a lower loss comes."""
    if resume.get("best_step") is None:
        return None
    step = int(resume["best_step"])
    own = step == int(resume["step"])
    state = resume["model_state"] if own else resume["best_model_state"]
    return BestWeights(step, float(resume["best_val_loss"]), state)
