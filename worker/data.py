"""Corpus preprocessing: character vocabulary, vectorised encoding, splits, batches.

Encoding never loops over characters in Python: the text's code points become a NumPy array
and a lookup table maps them to ids in one pass. Ids are stored in the narrowest unsigned type
that holds the vocabulary (uint8 for most corpora) and cached on disk by the dataset's sha256
and the tokenisation settings, so the second job on a corpus skips preprocessing entirely.
One-hot input is never built here: the model builds it per batch on the training device.
"""

from __future__ import annotations

import codecs
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from shared.atomic import write_atomically
from shared.dataset import SplitBounds, split_bounds
from shared.errors import DataError
from shared.spec import DataSpec

# Bump when the encoding changes, so old caches are never read by new code.
TOKENIZER_VERSION = "char-v1"
_CHUNK_CHARS = 1 << 20  # bounds the temporaries of encoding (bytes, or characters)


@dataclass(frozen=True)
class Vocab:
    """The sorted distinct characters of a corpus; id i is `chars[i]`."""

    chars: str

    @property
    def size(self) -> int:
        return len(self.chars)

    def encode(self, text: str) -> np.ndarray:
        index = {c: i for i, c in enumerate(self.chars)}
        try:
            return np.array([index[c] for c in text], dtype=np.int64)
        except KeyError as exc:
            raise DataError(f"character {exc.args[0]!r} is not in the vocabulary") from None

    def decode(self, ids: list[int] | np.ndarray) -> str:
        return "".join(self.chars[int(i)] for i in ids)


def id_dtype(vocab_size: int) -> np.dtype:
    """The narrowest unsigned integer type that holds every id."""
    if vocab_size <= 1 << 8:
        return np.dtype(np.uint8)
    if vocab_size <= 1 << 16:
        return np.dtype(np.uint16)
    return np.dtype(np.uint32)


def _code_points(text: str) -> np.ndarray:
    return np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)


def encode_bytes(raw: bytes) -> tuple[Vocab, np.ndarray]:
    """Vocabulary and ids of UTF-8 text, vectorised; ASCII skips decoding altogether."""
    if raw.isascii():
        points = np.frombuffer(raw, dtype=np.uint8)
        counts = np.zeros(256, dtype=np.int64)
        for start in range(0, len(points), _CHUNK_CHARS):  # bincount copies to intp: chunk it
            counts += np.bincount(points[start : start + _CHUNK_CHARS], minlength=256)
        alphabet = np.flatnonzero(counts)
        table = np.zeros(256, dtype=np.uint8)
        table[alphabet] = np.arange(len(alphabet))
        # bytes.translate maps every byte through the table in one C pass, no temporaries.
        ids = np.frombuffer(raw.translate(table.tobytes()), dtype=np.uint8)
        return Vocab("".join(map(chr, alphabet))), ids
    # Two passes over bounded chunks (first the alphabet, then the ids), decoding incrementally:
    # the whole text as one str would cost up to 4 bytes a character on top of the bytes.
    present = np.zeros(0x110000, dtype=bool)
    total = 0
    for points in _code_point_chunks(raw):
        present[points] = True
        total += len(points)
    alphabet = np.flatnonzero(present)
    dtype = id_dtype(len(alphabet))
    lut = np.zeros(0x110000, dtype=dtype)
    lut[alphabet] = np.arange(len(alphabet))
    ids = np.empty(total, dtype=dtype)
    at = 0
    for points in _code_point_chunks(raw):
        ids[at : at + len(points)] = lut[points]
        at += len(points)
    return Vocab("".join(map(chr, alphabet))), ids


def _code_point_chunks(raw: bytes) -> Iterator[np.ndarray]:
    """The code points of UTF-8 `raw`, a bounded chunk at a time (one-line error if not UTF-8)."""
    decoder, view = codecs.getincrementaldecoder("utf-8")(), memoryview(raw)
    for start in range(0, len(raw), _CHUNK_CHARS):
        try:
            text = decoder.decode(
                view[start : start + _CHUNK_CHARS], start + _CHUNK_CHARS >= len(raw)
            )
        except UnicodeDecodeError as exc:
            at = start + exc.start - len(decoder.getstate()[0])
            raise DataError(f"dataset is not UTF-8 text (bad byte at {max(at, 0)})") from None
        yield _code_points(text)


def normalise(raw: bytes, data: DataSpec) -> bytes:
    """Apply the spec's tokenisation settings to the raw corpus."""
    if data.lowercase:
        return raw.decode("utf-8").lower().encode("utf-8")
    return raw


def cache_key(sha256: str, data: DataSpec) -> str:
    """Cache entries differ whenever the dataset or a tokenisation setting differs."""
    flags = "lower" if data.lowercase else "raw"
    return f"{sha256}-{TOKENIZER_VERSION}-{flags}"


@dataclass(frozen=True)
class Corpus:
    """An encoded corpus and its contiguous train / validation / test splits."""

    vocab: Vocab
    ids: np.ndarray
    bounds: SplitBounds
    cache_hit: bool = False

    def split(self, name: str) -> np.ndarray:
        start, end = getattr(self.bounds, name)
        return self.ids[start:end]


def load_corpus(path: Path, sha256: str, data: DataSpec, cache_dir: Path) -> Corpus:
    """The encoded corpus, from the cache when this dataset and settings were seen before."""
    key = cache_key(sha256, data)
    ids_file = cache_dir / f"{key}.npy"
    vocab_file = cache_dir / f"{key}.vocab.json"
    if ids_file.exists() and vocab_file.exists():
        vocab = Vocab(json.loads(vocab_file.read_text(encoding="utf-8"))["chars"])
        ids = np.load(ids_file, mmap_mode="r")
        return Corpus(vocab, ids, split_bounds(len(ids), data), cache_hit=True)
    vocab, ids = encode_bytes(normalise(path.read_bytes(), data))
    # A crash mid-write never leaves a cache entry that looks complete; the vocabulary goes
    # last, and a hit needs both files.
    write_atomically(ids_file, lambda tmp: np.save(tmp, ids))
    vocab_json = json.dumps({"chars": vocab.chars})
    write_atomically(vocab_file, lambda tmp: tmp.write_text(vocab_json, encoding="utf-8"))
    return Corpus(vocab, ids, split_bounds(len(ids), data), cache_hit=False)


def sample_batch(
    split: np.ndarray, seq_len: int, batch_size: int, seed: int, step: int
) -> np.ndarray:
    """A (batch, seq_len + 1) int64 array of random windows, determined by (seed, step) alone.

    Deriving the generator from the step means a resumed job draws exactly the batches the
    uninterrupted job would have, with no RNG state to checkpoint.
    """
    rng = np.random.default_rng([seed, step])
    starts = rng.integers(0, len(split) - seq_len, size=batch_size)
    return split[starts[:, None] + np.arange(seq_len + 1)].astype(np.int64)


def eval_windows(split: np.ndarray, seq_len: int, batch_size: int, max_batches: int) -> np.ndarray:
    """The same non-overlapping (seq_len + 1)-windows from the start of a split, every time."""
    n_windows = min((len(split) - 1) // seq_len, batch_size * max_batches)
    if n_windows < 1:
        raise DataError(f"split of {len(split)} characters is shorter than seq_len + 1")
    starts = np.arange(n_windows) * seq_len
    return split[starts[:, None] + np.arange(seq_len + 1)].astype(np.int64)
