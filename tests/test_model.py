"""Tests for worker/model.py: CharRNN shapes for every cell and input encoding, and generation."""

from __future__ import annotations

import pytest
import torch

from shared.spec import ModelSpec
from worker.model import CharRNN

VOCAB = 11


def _tiny(cell: str = "lstm", embedding_dim: int = 8, num_layers: int = 2) -> CharRNN:
    torch.manual_seed(0)
    return CharRNN(
        VOCAB, cell=cell, embedding_dim=embedding_dim, hidden_size=16, num_layers=num_layers
    )


@pytest.mark.parametrize("cell", ["lstm", "rnn", "gru"])
@pytest.mark.parametrize("embedding_dim", [8, 0])
def test_forward_gives_logits_per_position_and_a_state_for_every_cell(cell, embedding_dim):
    model = _tiny(cell, embedding_dim)
    ids = torch.randint(0, VOCAB, (3, 7), generator=torch.Generator().manual_seed(1))
    logits, state = model(ids)
    assert logits.shape == (3, 7, VOCAB)
    assert logits.dtype == torch.float32
    assert torch.isfinite(logits).all()
    hidden = state[0] if cell == "lstm" else state
    assert hidden.shape == (2, 3, 16)
    if cell == "lstm":
        assert state[1].shape == (2, 3, 16)


@pytest.mark.parametrize("cell", ["lstm", "rnn", "gru"])
def test_forward_carries_state_so_two_halves_equal_one_pass(cell):
    model = _tiny(cell).eval()
    ids = torch.randint(0, VOCAB, (2, 10), generator=torch.Generator().manual_seed(2))
    whole, _ = model(ids)
    first, state = model(ids[:, :4])
    second, _ = model(ids[:, 4:], state)
    torch.testing.assert_close(torch.cat([first, second], dim=1), whole)


def test_one_hot_model_has_no_embedding_and_feeds_vocab_sized_input():
    model = _tiny(embedding_dim=0)
    assert model.embedding is None
    assert model.rnn.input_size == VOCAB
    encoded = model.encode_input(torch.tensor([[0, 3, VOCAB - 1]]))
    assert encoded.shape == (1, 3, VOCAB)
    assert torch.equal(encoded.argmax(-1), torch.tensor([[0, 3, VOCAB - 1]]))
    assert torch.equal(encoded.sum(-1), torch.ones(1, 3))


def test_from_spec_builds_the_network_the_spec_describes():
    spec = ModelSpec(cell="gru", embedding_dim=0, hidden_size=12, num_layers=3, dropout=0.1)
    model = CharRNN.from_spec(spec, vocab_size=VOCAB)
    assert isinstance(model.rnn, torch.nn.GRU)
    assert (model.rnn.hidden_size, model.rnn.num_layers) == (12, 3)
    assert model.args == {"vocab_size": VOCAB, **spec.model_dump()}
    assert model.num_parameters() == sum(p.numel() for p in model.parameters())


def test_generate_is_deterministic_for_a_seeded_generator_and_stays_in_the_vocabulary():
    model = _tiny()
    prompt = torch.tensor([1, 2, 3])
    a = model.generate(prompt, 40, temperature=1.5, generator=torch.Generator().manual_seed(5))
    b = model.generate(prompt, 40, temperature=1.5, generator=torch.Generator().manual_seed(5))
    c = model.generate(prompt, 40, temperature=1.5, generator=torch.Generator().manual_seed(6))
    assert a == b
    assert a != c
    assert len(a) == 40
    assert all(isinstance(i, int) and 0 <= i < VOCAB for i in a)


def test_generate_restores_the_training_mode():
    model = _tiny().train()
    model.generate(torch.tensor([0]), 3, generator=torch.Generator().manual_seed(0))
    assert model.training
    model.eval()
    model.generate(torch.tensor([0]), 3, generator=torch.Generator().manual_seed(0))
    assert not model.training


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_generate_with_top_k_one_is_greedy_argmax_decoding(cell):
    model = _tiny(cell).eval()
    prompt = torch.tensor([4, 0, 7, 7])
    sampled = model.generate(
        prompt, 25, temperature=2.0, top_k=1, generator=torch.Generator().manual_seed(9)
    )
    greedy = []
    with torch.no_grad():
        logits, state = model(prompt.view(1, -1))
        for _ in range(25):
            nxt = int(logits[0, -1].argmax())
            greedy.append(nxt)
            logits, state = model(torch.tensor([[nxt]]), state)
    assert sampled == greedy


def test_generate_with_top_k_samples_only_among_the_k_likeliest_first_characters():
    model = _tiny()
    prompt = torch.tensor([2, 5])
    with torch.no_grad():
        logits, _ = model(prompt.view(1, -1))
    allowed = set(torch.topk(logits[0, -1], 3).indices.tolist())
    generator = torch.Generator().manual_seed(0)
    firsts = {
        model.generate(prompt, 1, temperature=5.0, top_k=3, generator=generator)[0]
        for _ in range(60)
    }
    assert firsts <= allowed
    assert len(firsts) > 1
