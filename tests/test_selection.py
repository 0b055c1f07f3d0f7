"""Tests for worker/selection.py: the best weights, the patience count and what a checkpoint
carries of them."""

from __future__ import annotations

import torch

from worker.selection import BestTracker, BestWeights


def model_at(value: float) -> torch.nn.Linear:
    torch.manual_seed(0)
    model = torch.nn.Linear(2, 1)
    torch.nn.init.constant_(model.weight, value)
    return model


def test_a_new_best_is_a_copy_that_later_training_does_not_change() -> None:
    tracker, model = BestTracker(), model_at(1.0)
    tracker.observe(10, 2.0, model)
    torch.nn.init.constant_(model.weight, 5.0)
    assert tracker.weights is not None and tracker.weights.step == 10
    assert torch.equal(tracker.weights.state["weight"], torch.ones(1, 2))


def test_a_gain_below_min_delta_becomes_the_best_but_counts_towards_patience() -> None:
    tracker = BestTracker(min_delta=0.1)
    for step, loss in [(0, 3.0), (5, 2.95), (10, 2.92)]:
        tracker.observe(step, loss, model_at(step))
    assert tracker.weights is not None
    assert (tracker.weights.step, tracker.val_loss) == (10, 2.92)
    assert tracker.evals_without_best == 2
    assert tracker.exhausted(2) and not tracker.exhausted(3) and not tracker.exhausted(None)
    tracker.observe(15, 2.5, model_at(15))
    assert tracker.evals_without_best == 0


def test_save_hands_over_each_best_once() -> None:
    tracker, written = BestTracker(), list[BestWeights]()
    tracker.save(written.append)  # nothing evaluated yet
    tracker.observe(0, 3.0, model_at(0))
    tracker.save(written.append)
    tracker.save(written.append)
    tracker.observe(5, 3.5, model_at(5))  # worse: still step 0's
    tracker.save(written.append)
    tracker.observe(10, 2.0, model_at(10))
    tracker.save(written.append)
    assert [best.step for best in written] == [0, 10]


def test_a_step_checkpoint_carries_the_best_weights_unless_they_are_its_own() -> None:
    tracker = BestTracker()
    tracker.observe(10, 2.0, model_at(1.0))
    behind = tracker.checkpoint_fields(20, resumable=True)
    assert behind["best_step"] == 10 and behind["best_val_loss"] == 2.0
    assert torch.equal(behind["best_model_state"]["weight"], torch.ones(1, 2))
    assert tracker.checkpoint_fields(10, resumable=True)["best_model_state"] is None
    assert tracker.checkpoint_fields(20, resumable=False)["best_model_state"] is None  # final


def test_a_resume_takes_the_best_from_the_checkpoint_or_its_own_weights() -> None:
    own = {"weight": torch.zeros(1, 2), "bias": torch.zeros(1)}
    carried = BestTracker(resume={"step": 20, "model_state": own, **fields(10)})
    assert carried.weights is not None and carried.weights.step == 10
    assert torch.equal(carried.weights.state["weight"], torch.ones(1, 2))
    assert carried.evals_without_best == 2

    at_its_step = BestTracker(resume={"step": 10, "model_state": own, **fields(10)})
    assert at_its_step.weights is not None
    assert at_its_step.weights.state is own and at_its_step.weights.val_loss == 2.0


def test_a_checkpoint_from_before_best_checkpoints_keeps_its_loss_until_a_lower_one_comes() -> None:
    old = BestTracker(resume={"step": 20, "model_state": {}, "best_val_loss": 2.0})
    assert old.weights is None and old.val_loss == 2.0
    old.observe(25, 2.5, model_at(0))
    assert old.weights is None  # worse than the known best: still no weights to call best
    old.observe(30, 1.5, model_at(0))
    assert old.weights is not None and (old.weights.step, old.weights.val_loss) == (30, 1.5)


def fields(best_step: int) -> dict[str, object]:
    tracker = BestTracker()
    tracker.observe(best_step, 2.0, model_at(1.0))
    tracker.observe(best_step + 5, 2.5, model_at(3.0))
    tracker.observe(best_step + 10, 2.6, model_at(3.0))
    return tracker.checkpoint_fields(20, resumable=True)
