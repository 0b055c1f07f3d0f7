"""Synthetic long-range memory corpora: `synthetic:copy?lag=N[&alphabet=A][&length=L][&seed=S]`.

Each record is `R|R\\n` where R is `lag - 1` random letters: every character of the second copy
equals the character exactly `lag` positions back, and nothing nearer predicts it. A model that
remembers nothing of the content (but knows the format) pays ln(A) nats on every letter; one
that recalls perfectly pays ln(A) only on the first copy. Comparing a model's loss with these
two levels across lags shows where its memory ends. Generated deterministically from the seed,
so client and report agree on the text without shipping code.
"""

from __future__ import annotations

import math
import random
import string
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qsl

from shared.atomic import write_atomically
from shared.errors import DataError

PREFIX = "synthetic:"
KINDS = ("copy",)


@dataclass(frozen=True)
class CopyTask:
    """Parameters of the copy corpus; `lag` is the recall distance in characters."""

    lag: int
    alphabet: int = 16
    length: int = 200_000
    seed: int = 0

    @property
    def record_len(self) -> int:
        return 2 * self.lag

    def chance_loss(self) -> float:
        """Mean nats/char of a model that knows the format but remembers no content."""
        return (self.lag - 1) / self.lag * math.log(self.alphabet)

    def perfect_loss(self) -> float:
        """Mean nats/char of a model that recalls the first copy perfectly."""
        return (self.lag - 1) / (2 * self.lag) * math.log(self.alphabet)

    def text(self) -> str:
        rng = random.Random(self.seed)
        letters = string.ascii_lowercase[: self.alphabet]
        records = []
        total = 0
        while total < self.length:
            chunk = "".join(rng.choice(letters) for _ in range(self.lag - 1))
            records.append(f"{chunk}|{chunk}\n")
            total += self.record_len
        return "".join(records)


def parse_synthetic(reference: str) -> CopyTask:
    """The task a `synthetic:` reference names; a DataError naming the reference otherwise."""
    body = reference.removeprefix(PREFIX)
    kind, _, query = body.partition("?")
    if kind not in KINDS:
        raise DataError(f"data.dataset {reference!r}: unknown synthetic kind {kind!r}; try 'copy'")
    params: dict[str, int] = {}
    for key, value in parse_qsl(query, keep_blank_values=True):
        if key not in ("lag", "alphabet", "length", "seed"):
            raise DataError(f"data.dataset {reference!r}: unknown parameter {key!r}")
        try:
            params[key] = int(value)
        except ValueError:
            raise DataError(f"data.dataset {reference!r}: {key} must be an integer") from None
    if "lag" not in params:
        raise DataError(f"data.dataset {reference!r}: needs lag, e.g. synthetic:copy?lag=50")
    task = CopyTask(**params)
    if not 2 <= task.lag <= 100_000:
        raise DataError(f"data.dataset {reference!r}: lag must be between 2 and 100000")
    if not 2 <= task.alphabet <= 26:
        raise DataError(f"data.dataset {reference!r}: alphabet must be between 2 and 26")
    if not task.record_len <= task.length <= 100_000_000:
        raise DataError(f"data.dataset {reference!r}: length must be between 2*lag and 1e8")
    return task


def synthetic_corpus_path(reference: str, cache_dir: Path) -> Path:
    """Write (once) and return the corpus file for a synthetic reference."""
    task = parse_synthetic(reference)
    name = f"synthetic-copy-lag{task.lag}-a{task.alphabet}-n{task.length}-s{task.seed}.txt"
    target = cache_dir / name
    if not target.exists():
        write_atomically(target, lambda tmp: tmp.write_text(task.text(), encoding="utf-8"))
    return target
