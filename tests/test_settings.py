"""Settings: read once from the environment, replaced only by a command's own decision."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from shared.settings import get_settings, override_settings, usable_cores


@pytest.fixture
def fresh_settings(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    monkeypatch.delenv("SEQQ_TORCH_THREADS", raising=False)
    get_settings.cache_clear()
    yield monkeypatch
    get_settings.cache_clear()


def test_override_replaces_the_cached_settings_and_the_environment_children_read(
    fresh_settings: pytest.MonkeyPatch,
) -> None:
    import os

    assert get_settings().torch_threads == 0  # cached before the decision, as in `seqq worker`
    fresh_settings.setenv("SEQQ_TORCH_THREADS", "0")  # restored by monkeypatch afterwards
    decided = override_settings(torch_threads=3)
    assert decided.torch_threads == 3
    assert get_settings() is decided
    assert os.environ["SEQQ_TORCH_THREADS"] == "3"


def test_override_refuses_a_setting_that_does_not_exist(
    fresh_settings: pytest.MonkeyPatch,
) -> None:
    with pytest.raises(KeyError, match="torch_thread"):
        override_settings(torch_thread=3)


def test_usable_cores_counts_the_cores_this_process_may_run_on() -> None:
    import os

    assert usable_cores() == len(os.sched_getaffinity(0))
