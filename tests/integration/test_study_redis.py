"""A sweep's study as a journal on the broker's Redis, the storage sweeps on the queue will use:
the same code opens it from any process's own settings, with no file in common."""

from __future__ import annotations

from pathlib import Path

import pytest

from shared import names
from shared.errors import SweepNotFoundError
from shared.settings import Settings
from shared.space import distributions, parse_sweep
from shared.spec import TrialRef
from shared.state import JobState, TrialState
from shared.study import create_study, open_study, tell, trial_state
from worker.trial import TrialReporter


def test_a_study_on_redis_is_opened_by_a_process_with_another_home_and_prunes_there(
    redis_url: str, tmp_path: Path
) -> None:
    import redis

    sweep = parse_sweep({"run": {"eval_every": 10}, "space": {"optim.lr": [0.01, 0.001]}})
    driver = Settings(broker_url=redis_url, home=tmp_path / "driver")
    worker = Settings(broker_url=redis_url, home=tmp_path / "worker")
    opened = create_study(sweep, "s-redis", "redis", driver)
    leader = opened.study.ask(distributions(sweep.space))
    for step in (0, 10):
        leader.report(1.0, step)
        leader.should_prune()
    tell(opened.study, leader.number, TrialState.COMPLETE, 1.0)
    opened.study.ask(distributions(sweep.space))

    reporter = TrialReporter.open(
        TrialRef(sweep="s-redis", number=1, storage="redis"), "f" * 32, worker
    )
    reporter.report(0, 4.0)
    reporter.report(10, 3.0)
    assert reporter.should_prune() and reporter.ending(JobState.KILLED) == TrialState.PRUNED
    reporter.end(TrialState.PRUNED, None, None)

    again = open_study("s-redis", "redis", driver)
    assert again.sweep == sweep
    assert [trial_state(t) for t in again.study.get_trials()] == [
        TrialState.COMPLETE,
        TrialState.PRUNED,
    ]
    keys = redis.Redis.from_url(redis_url).keys("*")
    assert keys and all(k.decode().startswith(names.sweep_journal_prefix("s-redis")) for k in keys)
    assert not (tmp_path / "driver" / "sweeps").exists()


def test_an_unknown_sweep_on_redis_is_not_found(redis_url: str, tmp_path: Path) -> None:
    with pytest.raises(SweepNotFoundError):
        open_study("nope", "redis", Settings(broker_url=redis_url, home=tmp_path))
