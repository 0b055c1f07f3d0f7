"""GPU selection for `seqq worker --gpus`: logical indices through any inherited mask."""

from __future__ import annotations

import pytest

from scheduler.gpus import select_gpus, visible_gpus
from shared.errors import SpecError


def test_all_selects_every_visible_gpu() -> None:
    assert select_gpus("all", ["0", "1", "2"]) == ["0", "1", "2"]


def test_indices_are_logical_positions_inside_an_inherited_mask(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2,3")
    visible = visible_gpus()
    assert visible == ["2", "3"]
    # `--gpus 0` inside a mask of 2,3 is physical device 2, never device 0.
    assert select_gpus("0", visible) == ["2"]
    assert select_gpus("1,0", visible) == ["3", "2"]


def test_an_empty_mask_means_no_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert visible_gpus() == []
    with pytest.raises(SpecError, match="no GPU visible"):
        select_gpus("all", [])


@pytest.mark.parametrize("request_", ["2", "x", "0,0", "-1"])
def test_bad_gpu_requests_are_refused_naming_the_flag(request_: str) -> None:
    with pytest.raises(SpecError, match="--gpus"):
        select_gpus(request_, ["0", "1"])
