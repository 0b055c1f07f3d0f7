"""`seqq compare` and `seqq sample` with real workers and a real MLflow store."""

from __future__ import annotations

from pathlib import Path

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
    step = seqq(["sample", run_id, "--step", "40", "--length", "10"], env)
    assert step.returncode == 0, step.stderr
