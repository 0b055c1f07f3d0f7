"""Dataset references, resolved on the client to checked, hashed local text.

A spec names its corpus as a path, `builtin:stdlib` (text assembled from this Python's own
standard-library sources: no download on any machine with Python) or `synthetic:...`. Before
anything is enqueued the client turns that into a `LocalDataset`: a UTF-8 file that exists, is
not empty, and is long enough for every split, with its sha256 - so bad data fails in one line
on the client, never half-way into a job. Torch-free and MLflow-free by design.
"""

from __future__ import annotations

import hashlib
import sys
import sysconfig
from dataclasses import dataclass
from pathlib import Path

from shared.atomic import write_atomically
from shared.errors import DataError
from shared.spec import BUILTIN_DATASET, DataSpec

BUILTIN_TARGET_CHARS = 1_000_000
SYNTHETIC_PREFIX = "synthetic:"


@dataclass(frozen=True)
class LocalDataset:
    """A corpus on this machine that passed every client-side check."""

    path: Path
    name: str
    sha256: str
    n_chars: int
    chars: frozenset[str]


@dataclass(frozen=True)
class SplitBounds:
    """Contiguous [start, end) character ranges of the three splits, by position."""

    train: tuple[int, int]
    val: tuple[int, int]
    test: tuple[int, int]


def split_bounds(n_chars: int, data: DataSpec) -> SplitBounds:
    """Train first, then validation, then test: the same cut on the client and every worker."""
    n_val = int(n_chars * data.val_fraction)
    n_test = int(n_chars * data.test_fraction)
    n_train = n_chars - n_val - n_test
    return SplitBounds(
        train=(0, n_train), val=(n_train, n_train + n_val), test=(n_train + n_val, n_chars)
    )


def check_splits(n_chars: int, data: DataSpec, source: str) -> None:
    """Every split must hold at least one (seq_len + 1)-character window."""
    bounds = split_bounds(n_chars, data)
    need = data.seq_len + 1
    for split in ("train", "val", "test"):
        start, end = getattr(bounds, split)
        if end - start < need:
            raise DataError(
                f"data file {source}: the {split} split has {end - start} characters, "
                f"fewer than data.seq_len + 1 = {need}; use a longer corpus or a shorter seq_len"
            )


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_text(path: Path, source: str | None = None) -> str:
    """The file's text, or a DataError naming the file: missing, empty, binary, not UTF-8."""
    source = source or str(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise DataError(f"data file {source}: not found") from None
    except IsADirectoryError:
        raise DataError(f"data file {source}: is a directory, not a text file") from None
    except OSError as exc:
        raise DataError(f"data file {source}: cannot read ({exc.strerror})") from None
    if not raw:
        raise DataError(f"data file {source}: is empty")
    if b"\x00" in raw:
        raise DataError(f"data file {source}: is not text (contains NUL bytes)")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DataError(
            f"data file {source}: is not UTF-8 text (bad byte at {exc.start})"
        ) from None


def builtin_corpus_path(cache_dir: Path) -> Path:
    """Write (once) and return the built-in corpus: this Python's stdlib modules, in name order.

    Deterministic for a given Python version; like any dataset it is identified by its hash and
    shipped to workers through the artifact store, so workers on other Pythons train on the
    same text.
    """
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    target = cache_dir / f"builtin-stdlib-py{version}.txt"
    if target.exists():
        return target
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    parts: list[str] = []
    total = 0
    for source in sorted(stdlib.glob("*.py")):
        text = source.read_text(encoding="utf-8", errors="replace")
        parts.append(f"# ---- {source.name} ----\n{text}\n")
        total += len(parts[-1])
        if total >= BUILTIN_TARGET_CHARS:
            break
    if not parts:
        raise DataError(f"{BUILTIN_DATASET}: no standard-library sources under {stdlib}")
    text = "".join(parts)
    return write_atomically(target, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def resolve_dataset(data: DataSpec, cache_dir: Path) -> LocalDataset:
    """Check and hash the spec's corpus on this machine (the client's job before submitting)."""
    reference = data.dataset
    if reference == BUILTIN_DATASET:
        path = builtin_corpus_path(cache_dir)
        name = "builtin-stdlib"
    elif reference.startswith(SYNTHETIC_PREFIX):
        from shared.synthetic import synthetic_corpus_path

        path = synthetic_corpus_path(reference, cache_dir)
        name = path.stem
    elif ":" in reference.split("/")[0] and not Path(reference).exists():
        raise DataError(
            f"data.dataset {reference!r}: unknown scheme; use a file path, "
            f"'{BUILTIN_DATASET}' or 'synthetic:copy?lag=N' (nothing is downloaded)"
        )
    else:
        path = Path(reference).expanduser()
        name = path.name
    text = read_text(path, reference)
    check_splits(len(text), data, reference)
    return LocalDataset(
        path=path.resolve(),
        name=name,
        sha256=sha256_file(path),
        n_chars=len(text),
        # Prompts are checked against the alphabet the model will see.
        chars=frozenset(text.lower() if data.lowercase else text),
    )


def check_prompts(prompts: tuple[str, ...], dataset: LocalDataset) -> None:
    """Every prompt character must be in the corpus, or generation cannot start."""
    for i, prompt in enumerate(prompts):
        missing = sorted(set(prompt) - dataset.chars)
        if missing:
            raise DataError(
                f"sample.prompts[{i}]: characters not in the corpus vocabulary: "
                f"{''.join(missing)!r}"
            )
