"""`seqq compare` and `seqq sample` with real workers and a real MLflow store."""

from __future__ import annotations

import statistics
from pathlib import Path

import pytest

from shared import names
from tests.helpers import CORPUS, TINY, Worker, seqq, seqq_json


def test_compare_through_a_worker_makes_a_parent_with_two_children_differing_only_in_model(
    env: dict[str, str], worker: Worker, tracking_uri: str, tmp_path: Path
) -> None:
    from mlflow import MlflowClient

    report = tmp_path / "report"
    out = seqq_json(
        ["compare", "--models", "lstm,rnn", *TINY, "--report", str(report), "-e", "cmp"], env
    )
    assert set(out["models"]) == {"lstm", "rnn"}
    client = MlflowClient(tracking_uri)
    parent = client.get_run(out["parent_run_id"])
    assert parent.info.status == "FINISHED"
    children = client.search_runs(
        [parent.info.experiment_id],
        filter_string=f"tags.mlflow.parentRunId = '{parent.info.run_id}'",
    )
    assert sorted(c.data.params["model.cell"] for c in children) == ["lstm", "rnn"]
    lstm, rnn = sorted(children, key=lambda c: c.data.params["model.cell"])
    differing = {k for k in lstm.data.params if lstm.data.params[k] != rnn.data.params.get(k)}
    assert differing == {"model.cell"}
    for child in children:
        assert child.info.status == "FINISHED"
        assert out["models"][child.data.params["model.cell"]]["job_id"] == child.info.run_id
        artifacts = {a.path for a in client.list_artifacts(child.info.run_id)}
        assert "samples.json" in artifacts
    parent_files = {a.path for a in client.list_artifacts(parent.info.run_id, "report")}
    assert parent_files == {
        "report/report.md",
        "report/loss_vs_step.png",
        "report/loss_vs_time.png",
    }
    text = (report / "report.md").read_text()
    assert "| lstm |" in text and "| rnn |" in text and "loss_vs_time.png" in text
    assert "| sample judge bits/char |" in text and "held-out text as long" in text
    for model, summary in out["models"].items():
        assert summary["status"] == "FINISHED"
        assert summary["best_val_loss"] > 0 and summary["num_params"] > 0 and summary["sample"]
        assert summary["steps"] == 80, model
        # The last samples' text quality and the held-out text's, as the child run logged them.
        child = next(c for c in children if c.info.run_id == summary["job_id"])
        quality = summary["text_quality"]
        assert quality[names.METRIC_SAMPLE_REF_BPC] > 0 and summary["sample_length"] == 1000
        assert quality == {k: v for k, v in child.data.metrics.items() if k in quality}
        assert set(quality) >= set(names.TEXT_METRICS.values()), model

    # Comparing the existing runs gives the same numbers.
    again = seqq_json(["compare", "--runs", f"{lstm.info.run_id},{rnn.info.run_id}"], env)
    assert again["models"] == out["models"]

    # `seqq list` shows the comparison beside its jobs (`--runs` made no new parent).
    listed = seqq_json(["list"], env)
    compares = [r for r in listed if r["kind"] == "compare"]
    assert [c["compare_id"] for c in compares] == [parent.info.run_id]
    assert compares[0]["models"] == ["lstm", "rnn"] and compares[0]["status"] == "FINISHED"
    assert (compares[0]["children_ended"], compares[0]["children_started"]) == (2, 2)
    assert {r["job_id"] for r in listed if r["kind"] == "job"} == {
        lstm.info.run_id,
        rnn.info.run_id,
    }
    table = seqq(["list"], {**env, "COLUMNS": "160"}).stdout
    assert "comparisons" in table and parent.info.run_id in table and "2/2" in table


def test_two_seeds_through_a_worker_train_each_model_at_both_and_summarise_the_runs_own_metrics(
    env: dict[str, str], worker: Worker, tracking_uri: str, tmp_path: Path
) -> None:
    from mlflow import MlflowClient

    out = seqq_json(
        ["compare", "--models", "lstm,rnn", "--seeds", "2", "--seed", "5", *TINY, "-e", "s"], env
    )
    client = MlflowClient(tracking_uri)
    parent = client.get_run(out["parent_run_id"])
    assert parent.info.status == "FINISHED" and out["seeds"] == [5, 6]
    assert parent.data.tags[names.TAG_COMPARE_SEEDS] == "5,6"
    assert parent.data.params["compare.seeds"] == "5,6" and "run.seed" not in parent.data.params
    children = client.search_runs(
        [parent.info.experiment_id],
        filter_string=f"tags.mlflow.parentRunId = '{parent.info.run_id}'",
    )
    cells = sorted((c.data.params["model.cell"], c.data.params["run.seed"]) for c in children)
    assert cells == [("lstm", "5"), ("lstm", "6"), ("rnn", "5"), ("rnn", "6")]
    base = children[0].data.params
    for child in children:
        assert child.info.status == "FINISHED"
        assert child.data.tags[names.TAG_MODEL] == child.data.params["model.cell"]
        assert child.data.tags[names.TAG_SEED] == child.data.params["run.seed"]
        differing = {k for k, v in child.data.params.items() if base.get(k) != v}
        assert differing <= {"model.cell", "run.seed"}
    assert sorted(r["job_id"] for r in out["runs"]) == sorted(c.info.run_id for c in children)
    assert "models" not in out  # several runs per model: their figures are in runs and summary

    # Each model's summary is the mean (and sample deviation) of its runs' own MLflow metrics.
    for model in ("lstm", "rnn"):
        runs = [c for c in children if c.data.params["model.cell"] == model]
        summary = out["summary"][model]
        assert summary["runs"] == 2 and sorted(summary["seeds"]) == [5, 6]
        best_val = [
            min(m.value for m in client.get_metric_history(r.info.run_id, names.METRIC_VAL_LOSS))
            for r in runs
        ]
        own = {
            "best_val_loss": best_val,
            "test_loss": [r.data.metrics[names.METRIC_TEST_LOSS] for r in runs],
            "train_time_s": [r.data.metrics[names.METRIC_TRAIN_TIME] for r in runs],
            "chars_per_s": [r.data.metrics[names.METRIC_CHARS_PER_SEC] for r in runs],
            "steps": [float(r.data.tags[names.TAG_STEPS]) for r in runs],
        }
        for figure, values in own.items():
            assert summary[figure]["mean"] == pytest.approx(statistics.fmean(values)), figure
            assert summary[figure]["std"] == pytest.approx(statistics.stdev(values)), figure
            assert summary[figure]["n"] == 2
        assert summary["steps"]["mean"] == 80
        # And its text quality, metric by metric, the spread of what its runs logged.
        quality = summary["text_quality"]
        assert set(quality) >= {names.METRIC_SAMPLE_REF_BPC, *names.TEXT_METRICS.values()}
        for metric, spread in quality.items():
            values = [r.data.metrics[metric] for r in runs if metric in r.data.metrics]
            assert spread["mean"] == pytest.approx(statistics.fmean(values)), metric
            assert spread["n"] == len(values), metric
    # Different seeds, different weights: the runs are not copies of one another.
    assert out["summary"]["lstm"]["test_loss"]["std"] > 0
    files = {a.path for a in client.list_artifacts(parent.info.run_id, "report")}
    assert {"report/report.md", "report/loss_vs_step.png", "report/loss_vs_time.png"} == files
    text = Path(client.download_artifacts(parent.info.run_id, "report/report.md", str(tmp_path)))
    judge = next(line for line in text.read_text().splitlines() if "sample judge" in line)
    assert judge.count(" ± ") == 2 and "held-out text as long" in text.read_text()


@pytest.mark.parametrize(
    "args",
    [
        ["--seeds", "0"],
        ["--seeds", "-1"],
        ["--seeds", "two"],
        ["--seeds", "0", "--local"],
        ["--seeds", "2", "--runs", "0123456789abcdef0123456789abcdef"],
    ],
    ids=["zero", "negative", "not-a-number", "zero-local", "with-runs"],
)
def test_bad_seeds_are_one_line_exit_2_and_nothing_is_created(
    env: dict[str, str], tracking_uri: str, redis_url: str, args: list[str]
) -> None:
    import redis
    from mlflow import MlflowClient

    done = seqq(["compare", "--models", "lstm,rnn", *TINY, *args], env)
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert done.returncode == 2 and len(lines) == 1, done.stderr
    assert "--seeds" in lines[0] and "Traceback" not in done.stderr
    client = MlflowClient(tracking_uri)
    experiments = client.search_experiments()
    assert [e.name for e in experiments] == ["Default"]
    assert not client.search_runs([e.experiment_id for e in experiments])
    assert redis.Redis.from_url(redis_url).dbsize() == 0  # no job was enqueued


@pytest.mark.parametrize(
    ("args", "flag"),
    [(["--queue", "nowhere"], "--queue"), (["--priority", "urgent"], "--priority")],
    ids=["queue", "priority"],
)
def test_a_bad_route_is_one_line_exit_2_before_any_run_exists(
    env: dict[str, str], tracking_uri: str, redis_url: str, args: list[str], flag: str
) -> None:
    import redis
    from mlflow import MlflowClient

    done = seqq(["compare", "--models", "lstm,rnn", *TINY, *args], env)
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert done.returncode == 2 and len(lines) == 1, done.stderr
    assert flag in lines[0] and "Traceback" not in done.stderr, lines[0]
    client = MlflowClient(tracking_uri)
    assert not client.search_runs([e.experiment_id for e in client.search_experiments()])
    assert redis.Redis.from_url(redis_url).dbsize() == 0


def test_sample_is_deterministic_for_a_seed_and_stays_in_the_vocabulary(
    env: dict[str, str], tracking_uri: str, tmp_path: Path
) -> None:
    import json

    outcome = json.loads(seqq(["run", "--model", "rnn", *TINY, "--json"], env).stdout)
    run_id = outcome["job_id"]
    args = ["sample", run_id, "--prompt", "ROMEO:", "--length", "120", "--seed", "7"]
    first, second = seqq(args, env), seqq(args, env)
    assert first.returncode == 0, first.stderr
    assert first.stdout == second.stdout
    other = seqq([*args[:-1], "8"], env)
    assert other.stdout != first.stdout
    text = first.stdout.rstrip("\n")
    assert text.startswith("ROMEO:") and len(text) == len("ROMEO:") + 120
    vocab = set(CORPUS.read_text())
    assert set(text) <= vocab
    assert "\u00a7" not in vocab

    bad = seqq(["sample", run_id, "--prompt", "ROMEO\u00a7"], env)  # § is not in the corpus
    assert bad.returncode == 2 and "vocabulary" in bad.stderr and "Traceback" not in bad.stderr
    step = seqq(["sample", run_id, "--checkpoint", "40", "--length", "10"], env)
    assert step.returncode == 0, step.stderr
    assert "checkpoint step-00000040 (step 40)" in step.stderr
