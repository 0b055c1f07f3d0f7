"""Scale-out benchmark: K short jobs on 1 then 2 worker processes, plus dispatch rate.

    .venv/bin/python tests/bench/scale.py [--json] [--quick] [--jobs K] [--rounds R]

Each worker gets one torch thread (SEQQ_TORCH_THREADS=1), so two fit the two cores. R rounds
(5; --quick: 1), each: one job alone on worker 1, K jobs on worker 1, then worker 2 starts and K
jobs run on both (worker 2 stops again), so a drift in a shared machine's speed hits all three
alike. Ratios are taken within a round, then the median over rounds. Reports:

- a single job's time alone on one such worker, and the makespan of K jobs on 1 and on 2
  workers: from the first submit to the last run's end time (as its worker recorded it). Jobs
  are submitted in this process through seqq's own `scheduler.jobs.submit` (~60 ms a job; a
  `seqq submit` process per job would cost ~2 s of start-up, longer than a whole job, on the
  cores the workers need). The bench looks at the runs once a second: the end times come from
  the runs, so slow polling costs no accuracy and takes almost nothing from the workers,
- efficiency = ideal makespan (K x single / workers) / measured makespan (the issue's
  definition), and the plain speed-up of 2 workers over 1 (makespan 1 / makespan 2),
- the training speed the jobs logged (chars/s, median) in the 1- and the 2-worker batches, and
  the ceiling the machine itself sets: the same model in bare PyTorch loops (one torch thread),
  one process alone, then two at once (`bare_efficiency_2_processes` = alone / two at once: two
  vCPUs of a VM need not give twice one),
- submit -> first training step (median of 3, idle worker, dataset cached), through the CLI
  (`seqq submit`): the `submit_to_first_step_s` metric each run logs at its first step,
- the dispatch rate of no-op `seqq.ping` tasks through the same Celery app (round trip), on
  a long-lived `celery -A worker.tasks worker --pool=solo` process: a `seqq worker`'s pool
  processes are replaced every 20 jobs (every job on a GPU), which is not what dispatch means.

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


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def start_worker(env: dict[str, str], tmp: Path, i: int) -> Worker:
    """`seqq worker` number i on the `cpu` queue, one torch thread, its own cache dir."""
    worker_env = {**env, "SEQQ_HOME": str(tmp / f"w{i}-home"), "SEQQ_TORCH_THREADS": "1"}
    args = ["--name", f"bench{i}@bench", "--queues", "cpu"]
    worker = Worker(worker_env, tmp / f"w{i}-{time.time_ns()}.log", args)
    worker.wait_ready(timeout=120)
    return worker


def job_spec(steps: int, seed: int) -> Any:
    """The bench's job: a 1x64 LSTM on the reference corpus, `steps` steps."""
    from shared.spec import TrainSpec

    run = {"seed": seed, "eval_every": 100, "sample_every": 1000, "checkpoint_every": 1000}
    return TrainSpec.model_validate(
        {
            "model": {"cell": "lstm", "hidden_size": 64, "num_layers": 1, "embedding_dim": 16},
            "data": {"dataset": str(CORPUS), "seq_len": 64},
            "optim": {"batch_size": 32, "max_steps": steps},
            "run": run,
        }
    )


def run_batch(
    client: Any, settings: Any, k: int, steps: int, workers: list[Worker]
) -> tuple[float, list[str]]:
    """k jobs submitted at once to the `cpu` queue that only `workers` consume, once each of
    them is idle; seconds from the first submit to the last run's end time (as its worker
    recorded it), and the job ids."""
    from scheduler.jobs import TERMINAL, submit

    for w in workers:  # idle means idle: no job, and the pool process has finished starting
        wait_until(lambda w=w: pool_ready(w), 120, "an idle pool process")
    started = time.time()
    # Submitted in this process through seqq's own submit (what `seqq submit` calls, ~60 ms a
    # job here): a CLI process per job would cost ~2 s of start-up each, longer than a job.
    jobs = [submit(job_spec(steps, i), settings, queue="cpu").job_id for i in range(k)]

    def runs() -> list[Any]:
        return [client.get_run(j) for j in jobs]

    # One look a second: the end time comes from the run, so polling slowly costs no accuracy
    # and takes almost nothing from the two cores the workers share.
    wait_until(
        lambda: all(r.info.status in TERMINAL for r in runs()),
        3600,
        "jobs to finish",
        interval=1.0,
    )
    done = runs()
    bad = [r.info.run_id for r in done if r.info.status != "FINISHED"]
    if bad:
        raise SystemExit(f"jobs did not finish: {bad}")
    return max(r.info.end_time for r in done) / 1000 - started, jobs


def pool_ready(worker: Worker) -> bool:
    """The worker's pool process has finished starting (it logs so) and has no job."""
    log_text = worker.log()
    busy = log_text.count(" received") > log_text.count(" succeeded in ")
    return "pool process ready" in log_text and not busy


def train_rate(client: Any, jobs: list[str]) -> float:
    """Median over the jobs of their last logged training speed (chars/s)."""
    return statistics.median(client.get_metric_history(j, "tokens_per_sec")[-1].value for j in jobs)


BARE_LOOP = """
import sys, time, torch, torch.nn.functional as F
from torch import nn
from worker.train import resolve_precision
torch.set_num_threads(1)
steps, vocab, emb, hidden, seq, batch = (int(a) for a in sys.argv[1:7])
bf16 = resolve_precision("auto", torch.device("cpu")) == "bf16"
torch.manual_seed(0)
embed, head = nn.Embedding(vocab, emb), nn.Linear(hidden, vocab)
rnn = nn.LSTM(emb, hidden, 1, batch_first=True)
params = [*embed.parameters(), *rnn.parameters(), *head.parameters()]
opt = torch.optim.AdamW(params, lr=3e-3)
ids = torch.randint(0, vocab, (1_000_000,))
offsets = torch.arange(seq + 1)
def step():
    window = ids[torch.randint(0, len(ids) - seq - 1, (batch,))[:, None] + offsets]
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        logits = head(rnn(embed(window[:, :-1]))[0]).reshape(-1, vocab).float()
        loss = F.cross_entropy(logits, window[:, 1:].reshape(-1))
    opt.zero_grad(set_to_none=True)
    loss.backward()
    nn.utils.clip_grad_norm_(params, 1.0)
    opt.step()
for _ in range(5):
    step()
sys.stdout.write("ready\\n"); sys.stdout.flush(); sys.stdin.readline()
start = time.perf_counter()
for _ in range(steps):
    step()
print(time.perf_counter() - start)
"""


def bare_seconds(processes: int, steps: int) -> list[float]:
    """Seconds for `steps` steps of the bench's model in a bare PyTorch loop (one torch
    thread), in `processes` processes started together: what the cores give without seqq."""
    import subprocess

    sizes = [65, 16, 64, 64, 32]  # vocab, embedding, hidden, seq, batch: the jobs' model
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", BARE_LOOP, str(steps), *map(str, sizes)],
            cwd=REPO,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env={**os.environ, "OMP_NUM_THREADS": "1"},
        )
        for _ in range(processes)
    ]
    for p in procs:  # all warmed up before any starts the clock
        assert p.stdout is not None and p.stdout.readline().strip() == "ready"
    for p in procs:
        assert p.stdin is not None
        p.stdin.write("go\n")
        p.stdin.flush()
    return [float(p.communicate()[0].strip()) for p in procs]


def on_worker_s(client: Any, jobs: list[str]) -> float:
    """Median over the jobs of first training step -> the run's end time (training, periodic
    evaluation, the final evaluation, samples and checkpoint, closing the run)."""
    spans = []
    for j in jobs:
        first = client.get_metric_history(j, "submit_to_first_step_s")[0].timestamp
        spans.append((client.get_run(j).info.end_time - first) / 1000)
    return statistics.median(spans)


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
    parser.add_argument("--rounds", type=int, default=None, help="rounds of the three batches")
    args = parser.parse_args()
    k = args.jobs or (2 if args.quick else 6)
    steps = 60 if args.quick else 300
    rounds = args.rounds or (1 if args.quick else 5)

    import redis
    from mlflow import MlflowClient

    from shared.settings import Settings

    redis.Redis.from_url(REDIS_URL).flushdb()
    with tempfile.TemporaryDirectory(prefix="seqq-scale-") as tmp_name:
        tmp = Path(tmp_name)
        uri = f"sqlite:///{tmp / 'mlflow.db'}"
        client = MlflowClient(uri)
        client.search_experiments()  # migrate the store before any worker touches it
        env = base_env(tmp / "client-home", SEQQ_BROKER_URL=REDIS_URL, SEQQ_MLFLOW_URI=uri)
        os.environ.update(MLFLOW_DISABLE_TELEMETRY="true")
        settings = Settings(broker_url=REDIS_URL, mlflow_uri=uri, home=tmp / "client-home")

        # A seqq worker gives every job a fresh pool process now and then (no state carries
        # over): not a measure of dispatch. Celery's own round trip with seqq's app and
        # settings is measured on a long-lived solo process, before the workers start.
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

        # The second worker runs only for the 2-worker batches; the rounds interleave the
        # three kinds of batch so that a drift in the machine's speed hits all of them.
        first = start_worker(env, tmp, 0)
        try:
            run_batch(client, settings, 1, 10, [first])  # warm the dataset cache
            latencies = []
            spec_file = tmp / "job.json"
            spec_file.write_text(job_spec(steps, 0).model_dump_json())
            for _ in range(3):
                wait_until(lambda: pool_ready(first), 120, "an idle pool process")
                # the CLI path end to end: `seqq submit` to an idle worker
                job = seqq_json(["submit", "--spec", str(spec_file)], env)["job_id"]
                wait_until(
                    lambda j=job: client.get_run(j).info.status == "FINISHED", 600, "the job", 1.0
                )
                latencies.append(client.get_metric_history(job, "submit_to_first_step_s")[0].value)
            log(f"submit -> first step: median {statistics.median(latencies):.2f}s ({latencies})")
            singles, make1s, make2s, single_jobs, jobs1, jobs2 = [], [], [], [], [], []
            for r in range(rounds):
                single, jobs = run_batch(client, settings, 1, steps, [first])
                singles.append(single)
                single_jobs += jobs
                make1, jobs = run_batch(client, settings, k, steps, [first])
                make1s.append(make1)
                jobs1 += jobs
                second = start_worker(env, tmp, 1)
                try:
                    run_batch(client, settings, 2, 10, [first, second])  # warm the second
                    make2, jobs = run_batch(client, settings, k, steps, [first, second])
                finally:
                    second.stop()
                make2s.append(make2)
                jobs2 += jobs
                log(
                    f"round {r + 1}: single {singles[-1]:.2f}s, {k} jobs on 1 worker "
                    f"{make1:.1f}s, on 2 workers {make2:.1f}s"
                )
            rate1, rate2 = train_rate(client, jobs1), train_rate(client, jobs2)
            span0 = on_worker_s(client, single_jobs)
            span1, span2 = on_worker_s(client, jobs1), on_worker_s(client, jobs2)
        finally:
            first.stop()
    # The ceiling: the same model in bare PyTorch loops, one process alone, then two at once.
    bare_alone = statistics.median(bare_seconds(1, steps)[0] for _ in range(rounds))
    bare_pair = [t for _ in range(rounds) for t in bare_seconds(2, steps)]
    bare_efficiency = bare_alone / statistics.mean(bare_pair)
    log(
        f"bare loops, {steps} steps: alone {bare_alone:.2f}s, two at once "
        f"{statistics.mean(bare_pair):.2f}s each (efficiency {bare_efficiency:.3f})"
    )

    single, make1, make2 = (statistics.median(x) for x in (singles, make1s, make2s))
    per_round = [k * s / 2 / m for s, m in zip(singles, make2s, strict=True)]
    result = {
        "jobs": k,
        "steps_per_job": steps,
        "rounds": rounds,
        "single_job_s": single,
        "makespan_1_worker_s": make1,
        "makespan_2_workers_s": make2,
        "throughput_1_worker_jobs_per_min": 60 * k / make1,
        "throughput_2_workers_jobs_per_min": 60 * k / make2,
        "efficiency_1_worker": statistics.median(
            k * s / m for s, m in zip(singles, make1s, strict=True)
        ),
        # per round, from batches minutes apart at most; the median of those is the figure
        "efficiency_2_workers": statistics.median(per_round),
        "efficiency_2_workers_per_round": per_round,
        "efficiency_2_workers_of_median_times": k * single / 2 / make2,
        "speedup_2_over_1_worker": statistics.median(
            m1 / m2 for m1, m2 in zip(make1s, make2s, strict=True)
        ),
        "job_on_worker_s_alone": span0,
        "job_on_worker_s_1_worker": span1,
        "job_on_worker_s_2_workers": span2,
        "train_chars_per_s_1_worker": rate1,
        "train_chars_per_s_2_workers": rate2,
        "bare_loop_s_alone": bare_alone,
        "bare_loop_s_two_at_once": statistics.mean(bare_pair),
        "bare_efficiency_2_processes": bare_efficiency,
        "submit_to_first_step_s_median": statistics.median(latencies),
        "dispatch_tasks_per_s": rate,
    }
    if args.json:
        print(json.dumps(result))
    else:
        for key, value in result.items():
            shown = (
                f"{value:.3f}"
                if isinstance(value, float)
                else ", ".join(f"{v:.3f}" for v in value)
                if isinstance(value, list)
                else str(value)
            )
            print(f"{key:36s} {shown}")


if __name__ == "__main__":
    main()
