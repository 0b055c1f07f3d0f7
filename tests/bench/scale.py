"""Scale-out benchmark: K short jobs on 1 then 2 worker processes, plus dispatch rate.

    .venv/bin/python tests/bench/scale.py [--json] [--quick] [--jobs K]

Each worker gets one torch thread (SEQQ_TORCH_THREADS=1), so two fit the two cores. Reports:

- single job time alone on one such worker (released -> FINISHED, median of a few),
- makespan of K jobs (released -> last FINISHED) on 1 and on 2 workers,
- efficiency = ideal makespan (K x single / workers) / measured makespan,

  Jobs are submitted first to a queue the workers do not consume yet (`cpu.low`) and released
  at once by telling the workers to consume it (Celery's add_consumer): the makespan then
  measures the workers, not how fast one client process can run `seqq submit` (~2 s each here,
  longer than a whole short job) while competing with them for the same two cores.
- submit -> first training step (median, idle worker, dataset cached): the
  `submit_to_first_step_s` metric each run logs at its first step,
- the dispatch rate of no-op `seqq.ping` tasks through the same Celery app (round trip), on
  a long-lived `celery -A worker.tasks worker --pool=solo` process: a `seqq worker` starts a
  fresh pool process for every job, which caps it far below Celery's own rate.

Targets (issue 5): efficiency >= 0.9 at 2 workers; submit -> first step <= 2 s median.
Uses Redis database 12 on 127.0.0.1:6379 (flushed) and a SQLite MLflow store in a temp dir.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from tests.helpers import CORPUS, Worker, base_env, seqq_json, wait_until  # noqa: E402

REDIS_URL = "redis://127.0.0.1:6379/12"
JOB = [
    "--data",
    str(CORPUS),
    "--model",
    "lstm",
    "--hidden-size",
    "64",
    "--num-layers",
    "1",
    "--embedding-dim",
    "16",
    "--seq-len",
    "64",
    "--batch-size",
    "32",
    "--eval-every",
    "100",
    "--sample-every",
    "1000",
    "--checkpoint-every",
    "1000",
]


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


HOLD = "cpu.low"  # the bench's workers consume only `cpu` until a batch is released


def start_workers(env: dict[str, str], tmp: Path, n: int) -> list[Worker]:
    workers = []
    for i in range(n):
        worker_env = {**env, "SEQQ_HOME": str(tmp / f"w{i}-home"), "SEQQ_TORCH_THREADS": "1"}
        args = ["--name", f"bench{i}@bench", "--queues", "cpu"]
        workers.append(Worker(worker_env, tmp / f"w{i}-{time.time_ns()}.log", args))
    for w in workers:
        w.wait_ready(timeout=120)
    return workers


def run_batch(
    env: dict[str, str], client: Any, k: int, steps: int, workers: list[Worker] | None = None
) -> tuple[float, list[str]]:
    """k jobs; seconds to the last FINISHED. With `workers`: submitted to the hold queue, then
    released to those workers at once (the clock starts there); else from the first submit."""
    started = time.monotonic()
    queue = ["--queue", HOLD] if workers else []
    jobs = [
        seqq_json(["submit", *JOB, "--max-steps", str(steps), "--seed", str(i), *queue], env)[
            "job_id"
        ]
        for i in range(k)
    ]
    if workers:
        for w in workers:
            wait_until(lambda w=w: "pool process ready" in w.log(), 120, "a pool process")
        started = time.monotonic()
        release(HOLD, len(workers))

    def all_done() -> bool:
        return all(client.get_run(j).info.status in ("FINISHED", "FAILED", "KILLED") for j in jobs)

    wait_until(all_done, 3600, "jobs to finish", interval=0.25)
    makespan = time.monotonic() - started
    bad = [j for j in jobs if client.get_run(j).info.status != "FINISHED"]
    if bad:
        raise SystemExit(f"jobs did not finish: {bad}")
    if workers:
        release(HOLD, len(workers), stop=True)
    return makespan, jobs


def release(queue: str, n_workers: int, stop: bool = False) -> None:
    """Make every bench worker start (or stop) consuming `queue`; waits for their replies."""
    from shared.celery_app import make_app
    from shared.settings import Settings

    app = make_app(Settings(broker_url=REDIS_URL))
    names = [f"bench{i}@bench" for i in range(n_workers)]
    if stop:
        replies = app.control.cancel_consumer(queue, destination=names, reply=True, timeout=10)
    else:
        replies = app.control.add_consumer(queue, destination=names, reply=True, timeout=10)
    if len(replies) != n_workers:
        raise SystemExit(f"only {len(replies)} of {n_workers} workers answered: {replies}")


def pool_ready(worker: Worker) -> bool:
    """The worker's pool process has finished starting (it logs so) and has no job."""
    log_text = worker.log()
    busy = log_text.count(" received") > log_text.count(" succeeded in ")
    return "pool process ready" in log_text and not busy


def ping_once() -> bool:
    from shared.celery_app import make_app
    from shared.settings import Settings

    app = make_app(Settings(broker_url=REDIS_URL))
    try:
        return app.send_task("seqq.ping", queue="cpu").get(timeout=2) == "pong"
    except Exception:
        return False


def dispatch_rate(n: int) -> float:
    from shared.celery_app import make_app
    from shared.settings import Settings

    app = make_app(Settings(broker_url=REDIS_URL))
    started = time.monotonic()
    results = [app.send_task("seqq.ping", queue="cpu") for _ in range(n)]
    for r in results:
        r.get(timeout=120)
    return n / (time.monotonic() - started)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    parser.add_argument("--quick", action="store_true", help="a smoke run in under two minutes")
    parser.add_argument("--jobs", type=int, default=None, help="K jobs per batch")
    args = parser.parse_args()
    k = args.jobs or (2 if args.quick else 6)
    steps = 60 if args.quick else 300

    import redis
    from mlflow import MlflowClient

    redis.Redis.from_url(REDIS_URL).flushdb()
    with tempfile.TemporaryDirectory(prefix="seqq-scale-") as tmp_name:
        tmp = Path(tmp_name)
        uri = f"sqlite:///{tmp / 'mlflow.db'}"
        client = MlflowClient(uri)
        client.search_experiments()  # migrate the store before any worker touches it
        env = base_env(tmp / "client-home", SEQQ_BROKER_URL=REDIS_URL, SEQQ_MLFLOW_URI=uri)
        os.environ.update(MLFLOW_DISABLE_TELEMETRY="true")

        workers = start_workers(env, tmp, 1)
        try:
            # Warm the caches (dataset download, preprocessing) so start-up is what we measure.
            run_batch(env, client, 1, 10)
            singles, latencies = [], []
            for _ in range(2 if args.quick else 3):
                # Idle means idle: the pool process that replaced the last job's has started.
                wait_until(lambda: pool_ready(workers[0]), 120, "a fresh pool process")
                _, jobs = run_batch(env, client, 1, steps)
                latencies += [
                    client.get_metric_history(j, "submit_to_first_step_s")[0].value for j in jobs
                ]
                singles.append(run_batch(env, client, 1, steps, workers)[0])
            single = statistics.median(singles)
            log(f"single job alone: {single:.1f}s (runs: {', '.join(f'{s:.1f}' for s in singles)})")
            log(f"submit -> first step: median {statistics.median(latencies):.2f}s ({latencies})")
            make1, _ = run_batch(env, client, k, steps, workers)
            log(f"{k} jobs on 1 worker: {make1:.1f}s")
        finally:
            for w in workers:
                w.stop()
        # A seqq worker gives every job a fresh pool process (no state carries over), so it
        # serves at most one task per process start: not a measure of dispatch. Celery's own
        # round trip with seqq's app and settings is measured on a long-lived solo process.
        solo = Worker(
            env,
            tmp / "dispatch.log",
            args=["--pool=solo", "--queues=cpu", "--hostname=dispatch@bench", "--loglevel=WARNING"],
            command=[str(Path(sys.executable).parent / "celery"), "-A", "worker.tasks", "worker"],
        )
        try:
            wait_until(lambda: ping_once(), 120, "the dispatch worker to answer")
            rate = dispatch_rate(100 if args.quick else 500)
            log(f"dispatch rate (no-op round trips, seqq's Celery app): {rate:.0f} tasks/s")
        finally:
            solo.stop()
        workers = start_workers(env, tmp, 2)
        try:
            run_batch(env, client, 2, 10, workers)  # warm the second worker's caches too
            make2, _ = run_batch(env, client, k, steps, workers)
            log(f"{k} jobs on 2 workers: {make2:.1f}s")
        finally:
            for w in workers:
                w.stop()

    result = {
        "jobs": k,
        "steps_per_job": steps,
        "single_job_s": single,
        "makespan_1_worker_s": make1,
        "makespan_2_workers_s": make2,
        "throughput_1_worker_jobs_per_min": 60 * k / make1,
        "throughput_2_workers_jobs_per_min": 60 * k / make2,
        "efficiency_1_worker": k * single / make1,
        "efficiency_2_workers": k * single / 2 / make2,
        "submit_to_first_step_s_median": statistics.median(latencies),
        "dispatch_tasks_per_s": rate,
    }
    if args.json:
        print(json.dumps(result))
    else:
        for key, value in result.items():
            print(f"{key:36s} {value:.3f}" if isinstance(value, float) else f"{key:36s} {value}")


if __name__ == "__main__":
    main()
