"""The light client (REST API, direct SQLite reads) gives the same answers and the same store.

Each command runs twice against one real store: as shipped (without importing mlflow) and with
SEQQ_LIGHT_CLIENT=false (through MlflowClient, as before). Their `--json` output must be equal,
and a run the light `submit` created must read back through MlflowClient exactly as one that
MlflowClient created: params, tags, status, spec.json, the dataset input, the corpus upload.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from shared import names
from tests.helpers import (
    CORPUS,
    TINY,
    seqq,
    seqq_json,
    start_mlflow_server,
)

HEAVY = {"SEQQ_LIGHT_CLIENT": "false"}
# Differ between any two runs by construction, whichever client made them.
PER_RUN_TAGS = {names.TAG_JOB_ID, "mlflow.runName"}


@pytest.fixture
def served(env: dict[str, str], tmp_path: Path) -> Iterator[dict[str, str]]:
    """`env` pointed at a real `mlflow server` serving its own artifacts."""
    server, port = start_mlflow_server(tmp_path)
    try:
        yield {**env, "SEQQ_MLFLOW_URI": f"http://127.0.0.1:{port}"}
    finally:
        server.stop()


# The real CLI entry point, reporting on exit whether the command imported mlflow.
PROBE = (
    "import atexit, sys\n"
    "atexit.register(lambda: print('imported mlflow:', 'mlflow' in sys.modules, file=sys.stderr))\n"
    "from scheduler.cli import main\n"
    "sys.argv = ['seqq', *sys.argv[1:]]\n"
    "main()\n"
)


def imports_mlflow(args: list[str], env: dict[str, str]) -> bool:
    done = subprocess.run(
        [sys.executable, "-c", PROBE, *args], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    return "imported mlflow: True" in done.stderr


def mlflow(env: dict[str, str]) -> Any:
    from mlflow import MlflowClient

    return MlflowClient(env["SEQQ_MLFLOW_URI"])


def record(client: Any, job_id: str) -> dict[str, Any]:
    """Everything a run holds that seqq wrote, read through MlflowClient."""
    run = client.get_run(job_id)
    spec = json.loads(Path(client.download_artifacts(job_id, names.ARTIFACT_SPEC)).read_text())
    inputs = [
        {
            "dataset": {
                k: getattr(d.dataset, k)
                for k in ("name", "digest", "source_type", "source", "profile")
            },
            "tags": {t.key: t.value for t in d.tags},
        }
        for d in run.inputs.dataset_inputs
    ]
    tags = {k: v for k, v in run.data.tags.items() if k not in PER_RUN_TAGS}
    return {
        "status": run.info.status,
        "experiment_id": run.info.experiment_id,
        "user_id": run.info.user_id,
        "params": run.data.params,
        "tags": tags,
        "job_id_tag": run.data.tags[names.TAG_JOB_ID] == job_id,
        "spec": spec,
        "inputs": inputs,
    }


def enrich(client: Any, job_ids: list[str]) -> None:
    """Give the runs what a worker would: metrics (one NaN), tags, an end, a deleted run."""
    first, second, third = job_ids
    for step, loss in enumerate([2.5, 2.0, 1.5]):
        client.log_metric(first, names.METRIC_TRAIN_LOSS, loss, step=step * 10)
    client.log_metric(first, names.METRIC_VAL_LOSS, math.nan, step=20)
    client.log_metric(first, names.METRIC_TEST_LOSS, 1.25, step=30)
    client.set_tag(first, names.TAG_STEPS, "30")
    client.set_tag(first, names.TAG_DEVICE, "cpu")
    client.set_terminated(first, "FINISHED")
    client.set_tag(second, names.TAG_ERROR, "a reason")
    client.set_terminated(second, "FAILED")
    client.delete_run(third)


def same_json(args: list[str], env: dict[str, str]) -> Any:
    light = seqq_json(args, env)
    heavy = seqq_json(args, {**env, **HEAVY})
    assert json.dumps(light, sort_keys=True) == json.dumps(heavy, sort_keys=True), args
    return light


def check_reads_agree(env: dict[str, str], job_ids: list[str]) -> None:
    first, second = job_ids[:2]
    listed = same_json(["list"], env)
    assert [j["job_id"] for j in listed] == [second, first]  # newest first, deleted one gone
    assert listed[1]["status"] == "FINISHED" and listed[1]["test_loss"] == 1.25
    assert listed[1]["step"] == 30 and listed[0]["error"] == "a reason"
    same_json(["list", "--limit", "1"], env)
    same_json(["list", "-e", "light"], env)
    same_json(["list", "-e", "no-such-experiment"], env)
    for job_id in job_ids:
        same_json(["status", job_id], env)
    assert not imports_mlflow(["status", first], env)
    assert not imports_mlflow(["list"], env)
    assert imports_mlflow(["list"], {**env, **HEAVY})  # the probe can tell
    for client_env in (env, {**env, **HEAVY}):
        missing = seqq(["status", "0" * 32], client_env)
        assert missing.returncode != 0 and "Traceback" not in missing.stderr
        assert "no such job" in missing.stderr


def submit_both_ways(env: dict[str, str]) -> list[str]:
    """Three jobs: two by the light client (one in its own experiment), one through MLflow."""
    light = seqq_json(["submit", *TINY, "--name", "twin"], env)["job_id"]
    heavy = seqq_json(["submit", *TINY, "--name", "twin"], {**env, **HEAVY})["job_id"]
    other = seqq_json(["submit", *TINY, "--experiment", "light"], env)["job_id"]
    return [light, heavy, other]


def test_a_run_submitted_over_rest_reads_back_as_one_submitted_through_mlflow(
    served: dict[str, str],
) -> None:
    light, heavy, _ = submit_both_ways(served)
    assert not imports_mlflow(["submit", *TINY, "--experiment", "probe"], served)
    client = mlflow(served)
    assert record(client, light) == record(client, heavy)
    assert record(client, light)["status"] == "SCHEDULED"
    # One corpus upload, found again by its hash, and readable by anyone through MLflow.
    uri = record(client, light)["spec"]["data"]["uri"]
    assert uri == record(client, heavy)["spec"]["data"]["uri"]
    from mlflow.artifacts import download_artifacts

    fetched = download_artifacts(uri, tracking_uri=served["SEQQ_MLFLOW_URI"])
    assert Path(fetched).read_bytes() == CORPUS.read_bytes()
    # Experiments the REST client created carry seqq's experiment tags, as MLflow's would.
    experiment = client.get_experiment(record(client, light)["experiment_id"])
    assert names.EXPERIMENT_TAGS.items() <= experiment.tags.items()
    datasets = client.get_experiment_by_name(names.DATASET_EXPERIMENT)
    assert len(client.search_runs([datasets.experiment_id])) == 1


def test_status_and_list_over_rest_answer_as_mlflow_does(served: dict[str, str]) -> None:
    job_ids = submit_both_ways(served)
    enrich(mlflow(served), job_ids)
    check_reads_agree(served, job_ids)


def test_status_and_list_read_from_sqlite_answer_as_mlflow_does(env: dict[str, str]) -> None:
    job_ids = submit_both_ways(env)
    enrich(mlflow(env), job_ids)
    check_reads_agree(env, job_ids)
