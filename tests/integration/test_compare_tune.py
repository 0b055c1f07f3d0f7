"""`seqq compare --tune` end to end: the real command with tiny models on the queue (real Redis,
a real `seqq worker` and `seqq scheduler`, a real MLflow store). One parent, one sweep per model
nested under it, and each model's default and tuned runs under it too. The `--local` path is
tests/test_compare_tune.py's (real sweeps and store, stand-in jobs): its jobs are `seqq run`'s,
end to end in test_sweep_local.py and test_compare.py already."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from shared import names
from tests.helpers import SEQQ, Service, base_env, seqq, seqq_json
from tests.integration.conftest import TEST_REDIS_DB, start_worker

# Tiny models on a small learnable text; both choices of lr differ from the default (0.003), so a
# tuned run always differs from its default in that param. Every trial and final run trains
# `budget / trials` seconds; sampling and checkpoints wait for the end.
SPACE = """\
model: {{hidden_size: 8, num_layers: 1, embedding_dim: 8}}
data: {{dataset: {corpus}, seq_len: 32}}
optim: {{batch_size: 8, warmup_steps: 5}}
run: {{eval_every: 10, eval_batches: 2, sample_every: 100000, checkpoint_every: 100000,
      experiment: tune}}
sample: {{length: 20}}
device: cpu
space:
  {space}
sweep: {{trials: {trials}, sampler: {sampler}, pruner: asha, seed: 0}}
"""
LR = "optim.lr: [3.0e-2, 1.0e-4]"


def _space_file(tmp_path: Path, trials: int = 2, space: str = LR, sampler: str = "grid") -> Path:
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("".join(f"{i % 7} little pigs went to market {i}.\n" for i in range(800)))
    path = tmp_path / "space.yaml"
    path.write_text(SPACE.format(corpus=corpus, trials=trials, space=space, sampler=sampler))
    return path


def _children(client: Any, experiment: str, run_id: str) -> list[Any]:
    return list(client.search_runs([experiment], f"tags.`mlflow.parentRunId` = '{run_id}'"))


def _kind(run: Any) -> str:
    return str(run.data.tags[names.TAG_KIND])


def assert_nested(env: dict[str, str], out: dict[str, Any], models: list[str], trials: int) -> None:
    """One comparison parent; under it one sweep per model (its trials under the sweep) and
    each model's default and tuned run, identical but for the values the sweep chose; a model
    whose sweep chose its default has its default run only, shown as its tuned run too."""
    from mlflow import MlflowClient

    client = MlflowClient(env["SEQQ_MLFLOW_URI"])
    parent = client.get_run(out["parent_run_id"])
    experiment = parent.info.experiment_id
    compares = client.search_runs([experiment], f"tags.`{names.TAG_KIND}` = 'compare'")
    assert [r.info.run_id for r in compares] == [parent.info.run_id]
    assert parent.info.status == "FINISHED"
    budget = float(parent.data.tags[names.TAG_COMPARE_TUNE])
    children = _children(client, experiment, parent.info.run_id)
    nested = {r.data.tags[names.TAG_MODEL]: r for r in children if _kind(r) == "sweep"}
    finals = [r for r in children if _kind(r) == "job"]
    won = {m for m in models if out["tune"]["models"][m]["default_won"]}
    assert sorted(nested) == sorted(models) and len(finals) == 2 * len(models) - len(won)
    for model, sweep in nested.items():
        record = out["tune"]["models"][model]
        assert record["sweep_id"] == sweep.info.run_id and sweep.info.status == "FINISHED"
        trial_runs = _children(client, experiment, sweep.info.run_id)
        assert len(trial_runs) == trials
        assert {r.data.params["model.cell"] for r in trial_runs} == {model}
        mine = [r for r in finals if r.data.tags[names.TAG_MODEL] == model]
        own = {r.info.run_name.rsplit("-", 1)[-1]: r for r in mine}  # compare-lstm-tuned
        if model in won:  # its best trial was trial 0, the default: not trained again
            assert record["best"]["number"] == 0 and set(own) == {"default"}
            shown = {r["model"]: r["job_id"] for r in out["runs"] if r["model"].startswith(model)}
            assert (
                shown[f"{model} tuned"] == shown[f"{model} default"] == own["default"].info.run_id
            )
            own["tuned"] = own["default"]
        default, tuned = own["default"].data.params, own["tuned"].data.params
        assert {k for k, v in tuned.items() if default[k] != v} <= {"optim.lr"}
        assert float(tuned["optim.lr"]) == record["tuned_values"]["optim.lr"]
        # The default spec was the sweep's first trial (try_base, on by default for --tune):
        # the tuned spec had to beat it at the same trial budget to be chosen.
        first = next(t for t in record["trials"] if t["number"] == 0)
        assert first["base"] and first["values"] == {"optim.lr": float(default["optim.lr"])}
        assert [t["number"] for t in record["trials"] if t["base"]] == [0]
        if first["state"] == "COMPLETE" and record["best"]["number"] != 0:
            assert record["best"]["value"] <= first["value"]
        for run in [*trial_runs, own["default"], own["tuned"]]:  # equal compute, run by run
            assert float(run.data.params["optim.time_budget"]) == budget / trials
    assert all(r.info.status == "FINISHED" for r in finals)
    assert set(out["summary"]) == {f"{m} {v}" for m in models for v in ("default", "tuned")}


def test_a_tuned_comparison_on_the_queue_nests_a_sweep_per_model_and_the_final_runs(
    env: dict[str, str], tmp_path: Path
) -> None:
    import redis

    # Random over a range that holds the default lr, so the default is trial 0 of each sweep.
    path = _space_file(tmp_path, space="optim.lr: {log: [1.0e-4, 3.0e-2]}", sampler="random")
    scheduler = Service([SEQQ, "scheduler"], tmp_path / "scheduler.log", env=env)
    worker = start_worker(env, tmp_path, args=("--cpus", "4"))  # every trial, run at once
    try:
        args = ["compare", "--models", "lstm,rnn", "--tune", str(path), "--budget", "10s"]
        out = seqq_json(args, env, timeout=300)
    finally:
        worker.stop()
        scheduler.stop()
    assert_nested(env, out, ["lstm", "rnn"], trials=2)
    assert not redis.Redis.from_url(env["SEQQ_BROKER_URL"]).scard(names.SWEEPS_ACTIVE_KEY)


@pytest.fixture(scope="module")
def untouched(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """One store and Redis database for every bad input: each must leave both as they were,
    so they can share them (a migrated SQLite store takes seconds to make)."""
    import redis
    from mlflow import MlflowClient

    tmp = tmp_path_factory.mktemp("bad-tune")
    uri, url = f"sqlite:///{tmp / 'mlflow.db'}", f"redis://127.0.0.1:6379/{TEST_REDIS_DB}"
    MlflowClient(uri).search_experiments()
    conn = redis.Redis.from_url(url)
    conn.flushdb()
    yield base_env(tmp / "home", SEQQ_BROKER_URL=url, SEQQ_MLFLOW_URI=uri)
    conn.flushdb()


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["--seeds", "0"], "--seeds"),
        (["--space", "model.cell: [lstm, gru]"], "space.model.cell"),
        (["--space", "model.hidden_size: [0, 8]"], "space.model.hidden_size"),
        (["--budget", "8s"], "--budget"),
        (["--budget", None], "--budget"),
        (["--tune", None], "--tune"),
        (["--tune", "missing.yaml"], "missing.yaml"),
        (["--runs", "0123456789abcdef0123456789abcdef"], "--runs"),
        (["--time-budget", "1m"], "--time-budget"),
    ],
    ids=[
        "zero-seeds",
        "space-over-the-cell",
        "space-the-spec-refuses",
        "budget-under-one-trial",
        "tune-without-budget",
        "budget-without-tune",
        "missing-file",
        "with-runs",
        "with-time-budget",
    ],
)
def test_bad_tune_input_is_one_line_exit_2_and_nothing_is_created(
    untouched: dict[str, str], tmp_path: Path, args: list[Any], named: str
) -> None:
    import redis
    from mlflow import MlflowClient

    env = untouched

    flag, value = args
    space = value if flag == "--space" else LR
    given = {"--tune": str(_space_file(tmp_path, space=space)), "--budget": "1h"}
    if flag != "--space":
        given[flag] = value  # None leaves the flag out
    argv = ["compare", "--models", "lstm,rnn"]
    argv += [part for key, val in given.items() if val is not None for part in (key, val)]
    done = seqq(argv, env)
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert done.returncode == 2 and len(lines) == 1, done.stderr
    assert named in lines[0] and "Traceback" not in done.stderr
    client = MlflowClient(env["SEQQ_MLFLOW_URI"])
    experiments = client.search_experiments()
    assert [e.name for e in experiments] == ["Default"]
    assert not client.search_runs([e.experiment_id for e in experiments])
    assert redis.Redis.from_url(env["SEQQ_BROKER_URL"]).dbsize() == 0  # no job, sweep, study
