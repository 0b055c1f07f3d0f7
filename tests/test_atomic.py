"""Tests for shared.atomic.write_atomically: a target is absent or complete, never partial."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from shared.atomic import write_atomically


def test_the_target_appears_complete_in_a_folder_created_for_it(tmp_path: Path) -> None:
    target = tmp_path / "new" / "corpus.txt"

    assert write_atomically(target, lambda tmp: tmp.write_text("abc")) == target

    assert target.read_text() == "abc"
    assert [p.name for p in target.parent.iterdir()] == ["corpus.txt"]


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary_behind(
    tmp_path: Path,
) -> None:
    target = tmp_path / "ids.npy"
    target.write_text("old")

    def half_write(tmp: Path) -> None:
        tmp.write_text("ne")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        write_atomically(target, half_write)

    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["ids.npy"]


def test_a_writer_that_appends_a_suffix_still_writes_the_target(tmp_path: Path) -> None:
    target = tmp_path / "ids.npy"  # np.save adds .npy to a name without it

    write_atomically(target, lambda tmp: np.save(tmp, np.arange(3)))

    assert np.load(target).tolist() == [0, 1, 2]
    assert [p.name for p in tmp_path.iterdir()] == ["ids.npy"]
