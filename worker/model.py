"""The character-level recurrent language model: input encoding -> LSTM/RNN/GRU -> linear head.

The model owns `generate`, so sampling code anywhere (the training loop, `seqq sample`) needs
only a model and a vocabulary. One-hot input (embedding_dim = 0) is built per batch on the
model's device, never for the whole corpus.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from shared.spec import ModelSpec

_CELLS: dict[str, Any] = {"lstm": nn.LSTM, "rnn": nn.RNN, "gru": nn.GRU}

State = torch.Tensor | tuple[torch.Tensor, torch.Tensor] | None


class CharRNN(nn.Module):
    """A stacked recurrent network over character ids, predicting the next character."""

    def __init__(
        self,
        vocab_size: int,
        cell: str = "lstm",
        embedding_dim: int = 64,
        hidden_size: int = 256,
        num_layers: int = 2,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.vocab_size = vocab_size
        self.args: dict[str, Any] = {
            "vocab_size": vocab_size,
            "cell": cell,
            "embedding_dim": embedding_dim,
            "hidden_size": hidden_size,
            "num_layers": num_layers,
            "dropout": dropout,
        }
        self.embedding = nn.Embedding(vocab_size, embedding_dim) if embedding_dim > 0 else None
        input_size = embedding_dim if embedding_dim > 0 else vocab_size
        self.rnn = _CELLS[cell](
            input_size,
            hidden_size,
            num_layers=num_layers,
            batch_first=True,
            # PyTorch applies recurrent dropout only between layers.
            dropout=dropout if num_layers > 1 else 0.0,
        )
        self.drop = nn.Dropout(dropout)
        self.head = nn.Linear(hidden_size, vocab_size)

    @classmethod
    def from_spec(cls, spec: ModelSpec, vocab_size: int) -> CharRNN:
        return cls(
            vocab_size,
            cell=spec.cell,
            embedding_dim=spec.embedding_dim,
            hidden_size=spec.hidden_size,
            num_layers=spec.num_layers,
            dropout=spec.dropout,
        )

    def encode_input(self, ids: torch.Tensor) -> torch.Tensor:
        if self.embedding is not None:
            return self.embedding(ids)
        return F.one_hot(ids, self.vocab_size).to(self.head.weight.dtype)

    def forward(self, ids: torch.Tensor, state: State = None) -> tuple[torch.Tensor, State]:
        """Logits of shape (batch, time, vocab) and the final recurrent state."""
        out, state = self.rnn(self.encode_input(ids), state)
        return self.head(self.drop(out)), state

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    @torch.no_grad()
    def generate(
        self,
        prompt: torch.Tensor,
        length: int,
        temperature: float = 1.0,
        top_k: int | None = None,
        generator: torch.Generator | None = None,
    ) -> list[int]:
        """`length` new ids continuing a 1-D prompt of ids; deterministic for a seeded generator."""
        was_training = self.training
        self.eval()
        try:
            logits, state = self(prompt.view(1, -1))
            last = logits[:, -1, :]
            out: list[int] = []
            for _ in range(length):
                scaled = last.float() / temperature
                if top_k is not None and top_k < scaled.size(-1):
                    kth = torch.topk(scaled, top_k).values[:, -1:]
                    scaled = scaled.masked_fill(scaled < kth, float("-inf"))
                probs = torch.softmax(scaled, dim=-1)
                nxt = torch.multinomial(probs.cpu(), 1, generator=generator)
                out.append(int(nxt))
                logits, state = self(nxt.to(prompt.device), state)
                last = logits[:, -1, :]
            return out
        finally:
            self.train(was_training)
