"""Tests for worker/checkpoint.py: self-describing round trips and refusing what is not ours."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest
import torch

from shared import names
from shared.errors import CheckpointError
from shared.spec import TrainSpec, build_spec
from worker import checkpoint
from worker.data import Vocab
from worker.model import CharRNN

VOCAB = Vocab("\n abcdefgh")


class Payload:
    """An arbitrary class: a pickle of it must never be loaded (its __reduce__ would run code)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def _trained_pair(spec: TrainSpec) -> tuple[CharRNN, torch.optim.Optimizer]:
    torch.manual_seed(0)
    model = CharRNN.from_spec(spec.model, VOCAB.size)
    optimizer = torch.optim.AdamW(model.parameters(), lr=spec.optim.lr)
    ids = torch.randint(0, VOCAB.size, (4, 9), generator=torch.Generator().manual_seed(1))
    logits, _ = model(ids[:, :-1])
    torch.nn.functional.cross_entropy(
        logits.reshape(-1, VOCAB.size), ids[:, 1:].reshape(-1)
    ).backward()
    optimizer.step()
    return model, optimizer


@pytest.fixture
def spec() -> TrainSpec:
    return build_spec(
        {"model": {"cell": "gru", "hidden_size": 16, "embedding_dim": 0, "num_layers": 2}}
    )


def test_save_then_load_restores_a_model_with_identical_outputs(spec, tmp_path: Path):
    model, optimizer = _trained_pair(spec)
    payload = checkpoint.build_payload(model, optimizer, 7, spec, VOCAB, elapsed_s=1.5)
    path = checkpoint.save(payload, tmp_path / "job" / "step-00000007" / names.CHECKPOINT_FILE)
    loaded = checkpoint.load(path)
    restored, vocab = checkpoint.restore_model(loaded)
    assert vocab == VOCAB
    assert loaded["step"] == 7
    assert loaded["elapsed_s"] == 1.5
    assert TrainSpec.model_validate(loaded["spec"]) == spec
    assert not restored.training
    ids = torch.randint(0, VOCAB.size, (3, 12), generator=torch.Generator().manual_seed(2))
    model.eval()
    with torch.no_grad():
        expected, _ = model(ids)
        actual, _ = restored(ids)
    assert torch.equal(actual, expected)


def test_loaded_optimizer_state_resumes_the_same_optimizer(spec, tmp_path: Path):
    model, optimizer = _trained_pair(spec)
    path = checkpoint.save(
        checkpoint.build_payload(model, optimizer, 1, spec, VOCAB), tmp_path / "c.pt"
    )
    fresh = torch.optim.AdamW(CharRNN.from_spec(spec.model, VOCAB.size).parameters())
    fresh.load_state_dict(checkpoint.load(path)["optimizer_state"])
    original = optimizer.state_dict()
    for key, state in fresh.state_dict()["state"].items():
        for name, value in state.items():
            assert torch.equal(
                torch.as_tensor(value), torch.as_tensor(original["state"][key][name])
            )


def test_save_leaves_no_temporary_file_behind(spec, tmp_path: Path):
    model, _ = _trained_pair(spec)
    checkpoint.save(checkpoint.build_payload(model, None, 1, spec, VOCAB), tmp_path / "c.pt")
    assert [p.name for p in tmp_path.iterdir()] == ["c.pt"]


def test_load_refuses_a_torch_file_that_is_not_a_seqq_checkpoint(tmp_path: Path):
    path = tmp_path / "other.pt"
    torch.save({"state_dict": {"w": torch.zeros(2)}}, path)
    with pytest.raises(CheckpointError) as info:
        checkpoint.load(path)
    assert str(path) in str(info.value)


def test_load_refuses_a_text_file(tmp_path: Path):
    path = tmp_path / "notes.pt"
    path.write_text("not a checkpoint")
    with pytest.raises(CheckpointError):
        checkpoint.load(path)


def test_load_refuses_a_missing_file(tmp_path: Path):
    with pytest.raises(CheckpointError) as info:
        checkpoint.load(tmp_path / "absent.pt")
    assert "not found" in str(info.value)


def test_load_refuses_an_unsupported_format_version(spec, tmp_path: Path):
    model, _ = _trained_pair(spec)
    payload = checkpoint.build_payload(model, None, 1, spec, VOCAB)
    payload["format"] = checkpoint.FORMAT_VERSION + 1
    path = checkpoint.save(payload, tmp_path / "future.pt")
    with pytest.raises(CheckpointError) as info:
        checkpoint.load(path)
    assert "format" in str(info.value)


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
@pytest.mark.parametrize("writer", ["torch.save", "pickle.dump"])
def test_load_refuses_a_pickle_of_an_arbitrary_object_without_running_it(
    spec, tmp_path: Path, writer
):
    probe = tmp_path / "probe"
    pickle.loads(pickle.dumps(Payload(probe)))
    assert probe.exists()  # an unrestricted unpickler does run the payload
    marker = tmp_path / "code-ran"
    model, _ = _trained_pair(spec)
    payload = checkpoint.build_payload(model, None, 1, spec, VOCAB, extra=Payload(marker))
    path = tmp_path / "evil.pt"
    if writer == "torch.save":
        torch.save(payload, path)
    else:
        with path.open("wb") as handle:
            pickle.dump(payload, handle)
    with pytest.raises(CheckpointError):
        checkpoint.load(path)
    assert not marker.exists()


def _touch_checkpoint(root: Path, job: str, folder: str) -> Path:
    path = checkpoint.local_path(root, job, folder)
    path.parent.mkdir(parents=True)
    path.write_bytes(b"x")
    return path


def test_newest_local_picks_the_highest_step_folder(tmp_path: Path):
    for step in (500, 50, 1500, 1000):
        _touch_checkpoint(tmp_path, "job-1", names.checkpoint_dir_name(step))
    _touch_checkpoint(tmp_path, "job-1", names.FINAL_CHECKPOINT)
    _touch_checkpoint(tmp_path, "job-2", names.checkpoint_dir_name(9000))
    newest = checkpoint.newest_local(tmp_path, "job-1")
    assert newest == checkpoint.local_path(tmp_path, "job-1", names.checkpoint_dir_name(1500))


def test_newest_local_skips_a_step_folder_without_a_checkpoint_file(tmp_path: Path):
    _touch_checkpoint(tmp_path, "job", names.checkpoint_dir_name(100))
    (tmp_path / "job" / names.checkpoint_dir_name(200)).mkdir()
    newest = checkpoint.newest_local(tmp_path, "job")
    assert newest == checkpoint.local_path(tmp_path, "job", names.checkpoint_dir_name(100))


def test_newest_local_is_none_when_the_job_has_no_checkpoints(tmp_path: Path):
    assert checkpoint.newest_local(tmp_path, "never-ran") is None


def test_newest_local_orders_steps_numerically_beyond_eight_digits(tmp_path: Path):
    for step in (99_999_999, 100_000_000):
        _touch_checkpoint(tmp_path, "job", names.checkpoint_dir_name(step))
    newest = checkpoint.newest_local(tmp_path, "job")
    assert newest == checkpoint.local_path(tmp_path, "job", names.checkpoint_dir_name(100_000_000))
