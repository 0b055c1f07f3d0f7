"""The corpus on its way to a worker: through the artifact store, verified, cached once.

Each worker has its own home (cache) and reads nothing from the client's filesystem; the
tests look at the tags a job leaves in MLflow (`seqq.data.cache`, `seqq.error`).
"""

from __future__ import annotations

from pathlib import Path

from shared import names
from tests.helpers import CORPUS, TINY, Worker, seqq_json
from tests.integration.conftest import start_worker
from tests.integration.test_reliability import mlflow, wait_status


def _tiny_on(corpus: Path) -> list[str]:
    args = list(TINY)
    args[args.index("--data") + 1] = str(corpus)
    return args


def test_the_second_job_on_a_corpus_skips_preprocessing_until_a_setting_changes(
    env: dict[str, str], worker: Worker, tmp_path: Path
) -> None:
    lowercase = tmp_path / "lowercase.yaml"
    lowercase.write_text("data:\n  lowercase: true\n", encoding="utf-8")
    client = mlflow(env)
    tags = []
    lower = ["--spec", str(lowercase)]
    for extra in ([], ["--seed", "7"], lower):
        job = seqq_json(["submit", *TINY, "--max-steps", "20", *extra, "--wait"], env)
        assert job["status"] == "FINISHED", worker.log()[-3000:]
        run = client.get_run(job["job_id"])
        tags.append(run.data.tags[names.TAG_DATA_CACHE])
        assert run.data.metrics[names.METRIC_PREPROCESS_TIME] >= 0
    assert tags == ["miss", "hit", "miss"]


def test_a_corpus_changed_in_the_artifact_store_is_refused_by_its_hash(
    env: dict[str, str], tmp_path: Path
) -> None:
    corpus = tmp_path / "client" / "verse.txt"
    corpus.parent.mkdir()
    corpus.write_text(CORPUS.read_text(encoding="utf-8")[:200_000], encoding="utf-8")
    job_id = seqq_json(["submit", *_tiny_on(corpus)], env)["job_id"]
    corpus.unlink()  # the worker could not read the client's copy anyway

    stored = list((tmp_path / "artifacts").rglob("verse.txt"))
    assert len(stored) == 1, stored
    stored[0].write_text(stored[0].read_text(encoding="utf-8").replace("e", "3"), encoding="utf-8")

    worker = start_worker(env, tmp_path)
    try:
        assert wait_status(env, job_id) == "FAILED"
    finally:
        worker.stop()
    error = mlflow(env).get_run(job_id).data.tags[names.TAG_ERROR]
    assert "sha256 mismatch" in error and "verse.txt" in error, error
    cached = tmp_path / "worker-home" / "cache" / "datasets"
    assert not cached.exists() or list(cached.iterdir()) == []
