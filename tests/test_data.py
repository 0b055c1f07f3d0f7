"""Tests for worker/data.py: vectorised encoding, the on-disk cache, batches and eval windows."""

from __future__ import annotations

import random

import numpy as np
import pytest

from shared.dataset import check_prompts, resolve_dataset, sha256_file, split_bounds
from shared.errors import DataError
from shared.spec import DataSpec
from worker.data import (
    Vocab,
    encode_bytes,
    eval_windows,
    id_dtype,
    load_corpus,
    sample_batch,
)

# -- encode_bytes ------------------------------------------------------------------------------


def _assert_round_trip(text: str) -> tuple[Vocab, np.ndarray]:
    vocab, ids = encode_bytes(text.encode("utf-8"))
    assert len(ids) == len(text)
    assert vocab.decode(ids) == text
    assert list(vocab.chars) == sorted(set(text))  # sorted, unique, exactly the corpus chars
    assert np.array_equal(ids.astype(np.int64), vocab.encode(text))
    assert ids.dtype == id_dtype(vocab.size)
    return vocab, ids


def test_encode_bytes_round_trips_ascii_text_as_uint8():
    random.seed(0)
    text = "".join(random.choice("abcdef XYZ\n\t.,;0123") for _ in range(5000))
    vocab, ids = _assert_round_trip(text)
    assert ids.dtype == np.uint8
    assert int(ids.max()) == vocab.size - 1


def test_encode_bytes_round_trips_text_with_more_than_256_distinct_characters_as_uint16():
    random.seed(1)
    alphabet = [chr(c) for c in range(0x4E00, 0x4E00 + 300)] + list("abc \n")
    text = "".join(random.choice(alphabet) for _ in range(20_000)) + "".join(alphabet)
    vocab, ids = _assert_round_trip(text)
    assert vocab.size > 256
    assert ids.dtype == np.uint16


def test_encode_bytes_round_trips_emoji_beyond_the_basic_multilingual_plane():
    random.seed(2)
    alphabet = ["😀", "🎉", "\U0001f9ec", "\U0010ffff", "é", "ß", "a", " ", "\n"]
    text = "".join(random.choice(alphabet) for _ in range(3000))
    vocab, ids = _assert_round_trip(text)
    assert max(map(ord, vocab.chars)) > 0xFFFF
    assert ids.dtype == np.uint8


def test_vocab_is_sorted_and_unique():
    vocab, _ = encode_bytes(b"the quick brown fox jumps over the lazy dog")
    assert list(vocab.chars) == sorted(vocab.chars)
    assert len(set(vocab.chars)) == vocab.size


def test_encode_bytes_refuses_text_that_is_not_utf8():
    with pytest.raises(DataError):
        encode_bytes("café".encode("latin-1"))


@pytest.mark.parametrize("chunk", [1, 3, 7, 64])
def test_encoding_in_chunks_keeps_characters_split_across_chunk_boundaries_whole(
    monkeypatch: pytest.MonkeyPatch, chunk: int
):
    import worker.data

    monkeypatch.setattr(worker.data, "_CHUNK_CHARS", chunk)
    random.seed(3)
    alphabet = ["😀", "é", "中", "a", "\n", "\U0010ffff"] + [chr(0x4E00 + i) for i in range(300)]
    _assert_round_trip("".join(random.choice(alphabet) for _ in range(2000)))


@pytest.mark.parametrize("chunk", [3, 5, 1 << 22])
def test_a_bad_byte_is_reported_at_its_offset_in_the_file(
    monkeypatch: pytest.MonkeyPatch, chunk: int
):
    import worker.data

    monkeypatch.setattr(worker.data, "_CHUNK_CHARS", chunk)
    raw = "ab中é".encode() + b"\xff" + b"tail"
    with pytest.raises(DataError, match=r"bad byte at 7\b"):
        encode_bytes(raw)


def test_vocab_encode_names_a_character_outside_the_vocabulary():
    with pytest.raises(DataError) as info:
        Vocab("abc").encode("abz")
    assert "'z'" in str(info.value)


@pytest.mark.parametrize(
    ("size", "dtype"), [(1, np.uint8), (256, np.uint8), (257, np.uint16), (65_537, np.uint32)]
)
def test_id_dtype_is_the_narrowest_type_holding_every_id(size, dtype):
    assert id_dtype(size) == np.dtype(dtype)
    assert np.iinfo(id_dtype(size)).max >= size - 1


# -- load_corpus and its cache -----------------------------------------------------------------


@pytest.fixture
def corpus_file(text_file):
    random.seed(3)
    return text_file("".join(random.choice("aAbBcC \n") for _ in range(4000)))


def test_load_corpus_writes_a_cache_and_the_second_call_hits_it(corpus_file, cache_dir):
    data = DataSpec(seq_len=16)
    sha = sha256_file(corpus_file)
    first = load_corpus(corpus_file, sha, data, cache_dir)
    assert not first.cache_hit
    assert any(cache_dir.iterdir())
    second = load_corpus(corpus_file, sha, data, cache_dir)
    assert second.cache_hit
    assert second.vocab == first.vocab
    assert second.ids.dtype == first.ids.dtype
    assert np.array_equal(np.asarray(second.ids), first.ids)
    assert second.bounds == first.bounds == split_bounds(len(first.ids), data)
    assert first.vocab.decode(first.ids) == corpus_file.read_text(encoding="utf-8")


def test_load_corpus_cache_hit_does_not_reread_the_source_file(corpus_file, cache_dir):
    data = DataSpec(seq_len=16)
    sha = sha256_file(corpus_file)
    first = load_corpus(corpus_file, sha, data, cache_dir)
    corpus_file.unlink()
    second = load_corpus(corpus_file, sha, data, cache_dir)
    assert second.cache_hit
    assert np.array_equal(np.asarray(second.ids), first.ids)


def test_changing_lowercase_misses_the_cache_and_changes_the_vocabulary(corpus_file, cache_dir):
    sha = sha256_file(corpus_file)
    raw = load_corpus(corpus_file, sha, DataSpec(seq_len=16), cache_dir)
    lower = load_corpus(corpus_file, sha, DataSpec(seq_len=16, lowercase=True), cache_dir)
    assert not lower.cache_hit
    assert lower.vocab.chars == "".join(sorted(set(raw.vocab.chars.lower())))
    assert lower.vocab.decode(lower.ids) == corpus_file.read_text(encoding="utf-8").lower()
    again = load_corpus(corpus_file, sha, DataSpec(seq_len=16, lowercase=True), cache_dir)
    assert again.cache_hit
    assert again.vocab == lower.vocab


def test_a_prompt_the_client_accepts_encodes_with_the_lowercased_worker_vocabulary(
    text_file, cache_dir
):
    data = DataSpec(dataset=str(text_file("Hello World\n" * 100)), seq_len=8, lowercase=True)
    local = resolve_dataset(data, cache_dir)
    corpus = load_corpus(local.path, local.sha256, data, cache_dir / "encoded")
    prompt = "Hello"
    try:
        check_prompts((prompt,), local)
    except DataError:
        return  # refused on the client: consistent
    assert corpus.vocab.decode(corpus.vocab.encode(prompt)).lower() == prompt.lower()


def test_corpus_splits_follow_the_shared_split_bounds(corpus_file, cache_dir):
    data = DataSpec(seq_len=16, val_fraction=0.1, test_fraction=0.2)
    corpus = load_corpus(corpus_file, sha256_file(corpus_file), data, cache_dir)
    parts = [corpus.split(name) for name in ("train", "val", "test")]
    assert np.array_equal(np.concatenate(parts), corpus.ids)
    bounds = split_bounds(len(corpus.ids), data)
    assert [len(p) for p in parts] == [end - start for start, end in vars(bounds).values()]


# -- sample_batch and eval_windows -------------------------------------------------------------


SPLIT = np.arange(1000, dtype=np.uint16)  # distinct values: a window's first id is its start


def test_sample_batch_is_determined_by_seed_and_step():
    a = sample_batch(SPLIT, 16, 8, seed=7, step=3)
    b = sample_batch(SPLIT, 16, 8, seed=7, step=3)
    assert np.array_equal(a, b)
    assert a.shape == (8, 17)
    assert a.dtype == np.int64


def test_sample_batch_differs_across_steps_and_seeds():
    base = sample_batch(SPLIT, 16, 8, seed=7, step=3)
    assert not np.array_equal(base, sample_batch(SPLIT, 16, 8, seed=7, step=4))
    assert not np.array_equal(base, sample_batch(SPLIT, 16, 8, seed=8, step=3))


def test_sample_batch_windows_are_contiguous_slices_of_the_split():
    for step in range(20):
        batch = sample_batch(SPLIT, 16, 8, seed=0, step=step)
        for row in batch:
            start = int(row[0])
            assert np.array_equal(row, SPLIT[start : start + 17])


def test_sample_batch_reaches_but_never_runs_past_the_end_of_the_split():
    split = np.arange(12, dtype=np.uint8)
    seen_last = False
    for step in range(50):
        batch = sample_batch(split, 10, 4, seed=1, step=step)
        assert batch.max() <= split[-1]
        seen_last |= bool((batch[:, -1] == split[-1]).any())
    assert seen_last


def test_eval_windows_are_identical_across_calls():
    a = eval_windows(SPLIT, 16, 4, 3)
    b = eval_windows(SPLIT, 16, 4, 3)
    assert np.array_equal(a, b)
    assert a.shape == (4 * 3, 17)


def test_eval_windows_predict_non_overlapping_contiguous_stretches_from_the_start():
    windows = eval_windows(SPLIT, 16, 4, 3)
    for row in windows:
        assert np.array_equal(row, np.arange(row[0], row[0] + 17))
    targets = windows[:, 1:].ravel()
    inputs = windows[:, :-1].ravel()
    assert len(np.unique(targets)) == targets.size
    assert len(np.unique(inputs)) == inputs.size
    assert np.array_equal(inputs, np.arange(inputs.size))  # starts at the split's start


def test_eval_windows_stop_at_the_split_length():
    windows = eval_windows(SPLIT[:100], 16, 4, 100)
    assert len(windows) == (100 - 1) // 16
    assert windows.max() <= 99


def test_eval_windows_refuse_a_split_shorter_than_one_window():
    with pytest.raises(DataError):
        eval_windows(SPLIT[:16], 16, 4, 3)
