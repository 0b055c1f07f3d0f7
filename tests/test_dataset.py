"""Tests for shared/dataset.py and shared/synthetic.py: client-side corpus checks and generators."""

from __future__ import annotations

import math
import random
import string
from pathlib import Path

import pytest

from shared.dataset import (
    BUILTIN_TARGET_CHARS,
    check_prompts,
    resolve_dataset,
    sha256_file,
    split_bounds,
)
from shared.errors import DataError, SpecError
from shared.spec import DataSpec, build_spec
from shared.synthetic import CopyTask, parse_synthetic

# -- resolve_dataset: every refusal is a DataError naming the file ------------------------------


def _data(reference: str, **fields) -> DataSpec:
    return DataSpec(dataset=reference, **fields)


def test_resolve_dataset_accepts_a_long_enough_text_file(text_file, cache_dir):
    random.seed(0)
    text = "".join(random.choice("abc \n") for _ in range(2000))
    path = text_file(text)
    local = resolve_dataset(_data(str(path), seq_len=16), cache_dir)
    assert local.n_chars == len(text)
    assert local.chars == frozenset(text)
    assert local.sha256 == sha256_file(path)
    assert local.path == path.resolve()


def test_resolve_dataset_reports_a_missing_file_by_name(tmp_path: Path, cache_dir):
    path = tmp_path / "missing.txt"
    with pytest.raises(DataError) as info:
        resolve_dataset(_data(str(path)), cache_dir)
    assert str(path) in str(info.value)
    assert "not found" in str(info.value)


def test_resolve_dataset_reports_an_empty_file_by_name(text_file, cache_dir):
    path = text_file("")
    with pytest.raises(DataError) as info:
        resolve_dataset(_data(str(path)), cache_dir)
    assert str(path) in str(info.value)
    assert "empty" in str(info.value)


def test_resolve_dataset_reports_a_directory_by_name(tmp_path: Path, cache_dir):
    folder = tmp_path / "corpus_dir"
    folder.mkdir()
    with pytest.raises(DataError) as info:
        resolve_dataset(_data(str(folder)), cache_dir)
    assert str(folder) in str(info.value)
    assert "directory" in str(info.value)


def test_resolve_dataset_reports_a_binary_file_with_nul_bytes_by_name(tmp_path: Path, cache_dir):
    path = tmp_path / "weights.bin"
    path.write_bytes(b"abc" * 500 + b"\x00\x01\x02" + b"abc" * 500)
    with pytest.raises(DataError) as info:
        resolve_dataset(_data(str(path), seq_len=8), cache_dir)
    assert str(path) in str(info.value)
    assert "NUL" in str(info.value)


def test_resolve_dataset_reports_a_non_utf8_file_by_name(tmp_path: Path, cache_dir):
    path = tmp_path / "latin1.txt"
    path.write_bytes(("café " * 400).encode("latin-1"))
    with pytest.raises(DataError) as info:
        resolve_dataset(_data(str(path), seq_len=8), cache_dir)
    assert str(path) in str(info.value)
    assert "UTF-8" in str(info.value)


@pytest.mark.parametrize(
    ("split", "n_chars", "val_fraction", "test_fraction"),
    [
        # train is always the largest split, so a short train split means a tiny corpus
        ("train", 40, 0.05, 0.05),
        ("val", 1000, 0.04, 0.1),
        ("test", 1000, 0.1, 0.04),
    ],
)
def test_resolve_dataset_rejects_a_corpus_too_short_for_a_split(
    text_file, cache_dir, split, n_chars, val_fraction, test_fraction
):
    data = DataSpec(seq_len=50, val_fraction=val_fraction, test_fraction=test_fraction)
    start, end = getattr(split_bounds(n_chars, data), split)
    assert end - start < data.seq_len + 1  # the case really is the one named
    path = text_file("ab\n" * (n_chars // 3) + "a" * (n_chars % 3))
    with pytest.raises(DataError) as info:
        resolve_dataset(data.model_copy(update={"dataset": str(path)}), cache_dir)
    message = str(info.value)
    assert str(path) in message
    assert f"the {split} split has {end - start} characters" in message


def test_resolve_dataset_accepts_a_corpus_whose_smallest_split_holds_exactly_one_window(
    text_file, cache_dir
):
    data = DataSpec(seq_len=9, val_fraction=0.1, test_fraction=0.1)
    path = text_file("abcd" * 25)  # 100 chars: val = test = 10 = seq_len + 1
    local = resolve_dataset(data.model_copy(update={"dataset": str(path)}), cache_dir)
    assert local.n_chars == 100


@pytest.mark.parametrize("reference", ["hf:foo", "s3://bucket/corpus.txt", "builtin:wiki"])
def test_resolve_dataset_refuses_an_unknown_scheme_without_downloading(
    reference, cache_dir, tmp_path, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(DataError) as info:
        resolve_dataset(_data(reference), cache_dir)
    assert reference in str(info.value)
    assert "unknown scheme" in str(info.value)
    assert not cache_dir.exists()


# -- the built-in corpus -----------------------------------------------------------------------


def test_builtin_corpus_is_deterministic_and_large(tmp_path: Path):
    first = resolve_dataset(DataSpec(), tmp_path / "cache-a")
    second = resolve_dataset(DataSpec(), tmp_path / "cache-b")
    assert first.path != second.path
    assert first.sha256 == second.sha256
    assert first.n_chars == second.n_chars >= BUILTIN_TARGET_CHARS >= 1_000_000
    assert first.path.read_text(encoding="utf-8").startswith("# ---- ")


def test_builtin_corpus_is_written_once_and_reused_from_the_cache(cache_dir):
    first = resolve_dataset(DataSpec(), cache_dir)
    mtime = first.path.stat().st_mtime_ns
    again = resolve_dataset(DataSpec(), cache_dir)
    assert again.path == first.path
    assert again.path.stat().st_mtime_ns == mtime
    assert [p.name for p in cache_dir.iterdir()] == [first.path.name]


# -- splits and prompts ------------------------------------------------------------------------


@pytest.mark.parametrize("n_chars", [0, 1, 7, 100, 999, 12_345, 1_000_003])
@pytest.mark.parametrize(("val", "test"), [(0.05, 0.05), (0.1, 0.3), (0.49, 0.001)])
def test_split_bounds_are_contiguous_ordered_and_cover_the_corpus(n_chars, val, test):
    data = DataSpec(val_fraction=val, test_fraction=test)
    bounds = split_bounds(n_chars, data)
    assert bounds.train[0] == 0
    assert bounds.train[1] == bounds.val[0]
    assert bounds.val[1] == bounds.test[0]
    assert bounds.test[1] == n_chars
    for start, end in (bounds.train, bounds.val, bounds.test):
        assert 0 <= start <= end <= n_chars
    assert bounds.val[1] - bounds.val[0] <= n_chars * val
    assert bounds.test[1] - bounds.test[0] <= n_chars * test


def test_check_prompts_accepts_prompts_made_of_corpus_characters(text_file, cache_dir):
    path = text_file("hello world\n" * 100)
    local = resolve_dataset(_data(str(path), seq_len=8), cache_dir)
    check_prompts(("hello", "world", "lo wo"), local)


def test_an_empty_prompt_is_refused_on_the_client(text_file, cache_dir):
    path = text_file("hello world\n" * 100)
    with pytest.raises((SpecError, DataError)) as info:
        spec = build_spec(
            {"data": {"dataset": str(path), "seq_len": 8}, "sample": {"prompts": ["hello", ""]}}
        )
        check_prompts(spec.sample.prompts, resolve_dataset(spec.data, cache_dir))
    assert "sample.prompts" in str(info.value)


def test_check_prompts_names_the_prompt_and_the_characters_missing_from_the_corpus(
    text_file, cache_dir
):
    path = text_file("hello world\n" * 100)
    local = resolve_dataset(_data(str(path), seq_len=8), cache_dir)
    with pytest.raises(DataError) as info:
        check_prompts(("hello", "howdy!"), local)
    message = str(info.value)
    assert message.startswith("sample.prompts[1]")
    assert "sample.prompts[0]" not in message
    missing = "".join(sorted(set("howdy!") - local.chars))
    assert missing == "!y"
    assert repr(missing) in message


# -- the synthetic copy corpus -----------------------------------------------------------------


def _synthetic_text(reference: str, cache_dir: Path) -> str:
    local = resolve_dataset(_data(reference, seq_len=8), cache_dir)
    return local.path.read_text(encoding="utf-8")


@pytest.mark.parametrize("lag", [2, 5, 37])
def test_copy_corpus_second_copy_repeats_the_character_exactly_lag_back(lag, cache_dir):
    reference = f"synthetic:copy?lag={lag}&alphabet=7&length=5000&seed=3"
    text = _synthetic_text(reference, cache_dir)
    record = 2 * lag
    assert len(text) % record == 0
    assert len(text) >= 5000
    letters = set(string.ascii_lowercase[:7])
    for start in range(0, len(text), record):
        first = text[start : start + lag - 1]
        assert set(first) <= letters
        assert text[start + lag - 1] == "|"
        assert text[start + record - 1] == "\n"
        for offset in range(lag, record - 1):  # every character of the second copy
            position = start + offset
            assert text[position] == text[position - lag]


def test_copy_corpus_uses_the_whole_alphabet_and_depends_on_the_seed(cache_dir):
    a = _synthetic_text("synthetic:copy?lag=20&alphabet=5&length=4000&seed=1", cache_dir)
    b = _synthetic_text("synthetic:copy?lag=20&alphabet=5&length=4000&seed=2", cache_dir)
    again = CopyTask(lag=20, alphabet=5, length=4000, seed=1).text()
    assert a == again
    assert a != b
    assert set(a) - {"|", "\n"} == set(string.ascii_lowercase[:5])


@pytest.mark.parametrize(("lag", "alphabet"), [(2, 2), (10, 16), (50, 26)])
def test_chance_loss_matches_the_formula_and_an_empirical_count(lag, alphabet):
    task = CopyTask(lag=lag, alphabet=alphabet, length=3000, seed=0)
    assert task.chance_loss() == pytest.approx((lag - 1) / lag * math.log(alphabet))
    # A model that knows the format but no content: each letter costs ln(A), delimiters 0.
    text = task.text()
    n_letters = sum(char not in "|\n" for char in text)
    empirical = n_letters * math.log(alphabet) / len(text)
    assert task.chance_loss() == pytest.approx(empirical)
    # Perfect recall makes the second copy free: half of the letters cost nothing.
    assert task.perfect_loss() == pytest.approx(empirical / 2)


@pytest.mark.parametrize(
    ("reference", "fragment"),
    [
        ("synthetic:copy", "needs lag"),
        ("synthetic:copy?alphabet=4", "needs lag"),
        ("synthetic:copy?lag=5&colour=red", "unknown parameter 'colour'"),
        ("synthetic:copy?lag=five", "lag must be an integer"),
        ("synthetic:copy?lag=1", "lag must be between"),
        ("synthetic:copy?lag=5&alphabet=27", "alphabet must be between"),
        ("synthetic:copy?lag=50&length=10", "length must be between"),
        ("synthetic:reverse?lag=5", "unknown synthetic kind 'reverse'"),
    ],
)
def test_parse_synthetic_refuses_bad_references_naming_them(reference, fragment):
    with pytest.raises(DataError) as info:
        parse_synthetic(reference)
    assert reference in str(info.value)
    assert fragment in str(info.value)


def test_parse_synthetic_reads_every_parameter():
    task = parse_synthetic("synthetic:copy?lag=12&alphabet=3&length=999&seed=4")
    assert task == CopyTask(lag=12, alphabet=3, length=999, seed=4)
