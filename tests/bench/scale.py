"""Scale-out benchmark: K short jobs on 1 then 2 workers, on `seqq worker --cpus 2`, dispatch rate.

    .venv/bin/python tests/bench/scale.py [--json] [--markdown] [--quick] [--jobs K] [--rounds R]
    .venv/bin/python tests/bench/scale.py --markdown-from docs/bench/scale.json

Workers start exactly as the README tells users to, with no environment override: each of the
two "workers" is `taskset -c I seqq worker` (a worker given one core, as on a one-core machine:
seqq sizes its jobs' torch threads from the cores it may use), and the one-machine layout is
`seqq worker --cpus 2` (two jobs at once, each given half the cores by seqq itself). Every job's
`seqq.device` tag (which says its torch threads) is reported per layout, so a worker that hands
its jobs more threads than their share shows in the figures. R rounds (5; --quick: 1), each: one
job alone on worker 1, K jobs on worker 1, then worker 2 starts and K jobs run on both (worker
2 stops again), then K jobs on a `seqq worker --cpus 2` started for them (on its own queue,
cpu.low, which worker 1 does not drain), so a drift in a shared machine's speed hits all four
alike. Ratios are taken within a round, then the median over rounds. Reports:

- a single job's time alone on one such worker, and the makespan of K jobs on 1 and on 2
  workers: from the first submit to the last run's end time (as its worker recorded it). Jobs
  are submitted in this process through seqq's own `scheduler.jobs.submit` (~60 ms a job; a
  `seqq submit` process per job would cost ~2 s of start-up, longer than a whole job, on the
  cores the workers need). The bench looks at the runs once a second: the end times come from
  the runs, so slow polling costs no accuracy and takes almost nothing from the workers,
- efficiency = ideal makespan (K x single / workers) / measured makespan (the issue's
  definition), for 2 workers and for `--cpus 2`, and the plain speed-up of 2 workers over 1
  (makespan 1 / makespan 2),
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
Uses Redis database --redis-db (12) on 127.0.0.1:6379 (flushed) and a SQLite MLflow store in a
temp dir. The jobs train on `--data` (default: the built-in corpus), named in the output.
"""

from __future__ import annotations

import argparse
import functools
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from tests.bench import common  # noqa: E402
from tests.helpers import Worker, base_env, seqq_json, wait_until  # noqa: E402

REDIS_URL = "redis://127.0.0.1:6379/12"  # --redis-db replaces the database number
# The one-machine layout drains its own queue, so worker 1 can stay up (idle) meanwhile.
CPUS2_QUEUE = "cpu.low"


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def worker_command(i: int) -> list[str]:
    """Worker i: `seqq worker` on core i (the `cpu` queue only), as a user gives a worker one
    core; `i = "cpus2"`: the README's one-machine command for two jobs at once."""
    if i == CPUS2:
        return ["seqq", "worker", "--cpus", "2", "--queues", CPUS2_QUEUE, "--name", "cpus2@bench"]
    return [
        "taskset",
        "-c",
        str(i),
        "seqq",
        "worker",
        "--queues",
        "cpu",
        "--name",
        f"bench{i}@bench",
    ]


CPUS2 = -1  # the index worker_command gives `seqq worker --cpus 2`


def start_worker(env: dict[str, str], tmp: Path, i: int) -> Worker:
    """Worker i as `worker_command` says, its own cache dir, nothing else in its environment."""
    command = worker_command(i)
    split = command.index("seqq")
    worker = Worker(
        {**env, "SEQQ_HOME": str(tmp / f"w{i}-home")},
        tmp / f"w{i}-{time.time_ns()}.log",
        args=command[split + 2 :],
        prefix=command[:split],
    )
    worker.wait_ready(timeout=120)
    return worker


def thread_tags(client: Any, jobs: list[str]) -> list[str]:
    """The distinct `seqq.device` tags of the jobs (device and torch threads, as they ran)."""
    from shared import names

    return sorted({client.get_run(j).data.tags.get(names.TAG_DEVICE, "?") for j in jobs})


def job_spec(steps: int, seed: int, corpus: str) -> Any:
    """The bench's job: a 1x64 LSTM on the reference corpus, `steps` steps."""
    from shared.spec import TrainSpec

    run = {"seed": seed, "eval_every": 100, "sample_every": 1000, "checkpoint_every": 1000}
    return TrainSpec.model_validate(
        {
            "model": {"cell": "lstm", "hidden_size": 64, "num_layers": 1, "embedding_dim": 16},
            "data": {"dataset": corpus, "seq_len": 64},
            "optim": {"batch_size": 32, "max_steps": steps},
            "run": run,
        }
    )


def run_batch(
    client: Any,
    settings: Any,
    k: int,
    steps: int,
    workers: list[Worker],
    corpus: str,
    queue: str = "cpu",
) -> tuple[float, list[str]]:
    """k jobs submitted at once to `queue` that only `workers` consume, once each of them is
    idle; seconds from the first submit to the last run's end time (as its worker
    recorded it), and the job ids."""
    from scheduler.jobs import submit
    from shared.state import TERMINAL

    for w in workers:  # idle means idle: no job, and the pool process has finished starting
        wait_until(functools.partial(pool_ready, w), 120, "an idle pool process")
    started = time.time()
    # Submitted in this process through seqq's own submit (what `seqq submit` calls, ~60 ms a
    # job here): a CLI process per job would cost ~2 s of start-up each, longer than a job.
    jobs = [submit(job_spec(steps, i, corpus), settings, queue=queue).job_id for i in range(k)]

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


def run_finished(client: Any, run_id: str) -> bool:
    return bool(client.get_run(run_id).info.status == "FINISHED")


def pool_ready(worker: Worker) -> bool:
    """Every pool process of the worker has finished starting (each logs so) and none has a
    job; `--cpus N` starts N of them."""
    argv = worker.argv
    pools = int(argv[argv.index("--cpus") + 1]) if "--cpus" in argv else 1
    log_text = worker.log()
    busy = log_text.count(" received") > log_text.count(" succeeded in ")
    return log_text.count("pool process ready") >= pools and not busy


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
    parser.add_argument("--quick", action="store_true", help="a smoke run in under two minutes")
    parser.add_argument("--jobs", type=int, default=None, help="K jobs per batch")
    parser.add_argument("--rounds", type=int, default=None, help="rounds of the four batches")
    parser.add_argument("--redis-db", type=int, default=12, help="Redis database (flushed)")
    common.add_data_option(parser)
    common.add_output_options(parser)
    args = parser.parse_args()
    if common.render_saved(args):
        return
    global REDIS_URL
    REDIS_URL = REDIS_URL.rsplit("/", 1)[0] + f"/{args.redis_db}"
    corpus_info = common.describe_corpus(args.data)
    corpus = corpus_info["path"]
    log(common.corpus_line(corpus_info))
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
            run_batch(client, settings, 1, 10, [first], corpus)  # warm the dataset cache
            latencies = []
            spec_file = tmp / "job.json"
            spec_file.write_text(job_spec(steps, 0, corpus).model_dump_json())
            for _ in range(3):
                wait_until(lambda: pool_ready(first), 120, "an idle pool process")
                # the CLI path end to end: `seqq submit` to an idle worker
                job = seqq_json(["submit", "--spec", str(spec_file)], env)["job_id"]
                wait_until(
                    functools.partial(run_finished, client, job), 600, "the job", interval=1.0
                )
                latencies.append(client.get_metric_history(job, "submit_to_first_step_s")[0].value)
            log(f"submit -> first step: median {statistics.median(latencies):.2f}s ({latencies})")
            singles, make1s, make2s, makecs = [], [], [], []
            single_jobs, jobs1, jobs2, jobsc = [], [], [], []
            for r in range(rounds):
                single, jobs = run_batch(client, settings, 1, steps, [first], corpus)
                singles.append(single)
                single_jobs += jobs
                make1, jobs = run_batch(client, settings, k, steps, [first], corpus)
                make1s.append(make1)
                jobs1 += jobs
                second = start_worker(env, tmp, 1)
                try:  # warm the second, then both
                    run_batch(client, settings, 2, 10, [first, second], corpus)
                    make2, jobs = run_batch(client, settings, k, steps, [first, second], corpus)
                finally:
                    second.stop()
                make2s.append(make2)
                jobs2 += jobs
                machine = start_worker(env, tmp, CPUS2)
                try:
                    run_batch(client, settings, 2, 10, [machine], corpus, CPUS2_QUEUE)
                    makec, jobs = run_batch(
                        client, settings, k, steps, [machine], corpus, CPUS2_QUEUE
                    )
                finally:
                    machine.stop()
                makecs.append(makec)
                jobsc += jobs
                log(
                    f"round {r + 1}: single {singles[-1]:.2f}s, {k} jobs on 1 worker "
                    f"{make1:.1f}s, on 2 workers {make2:.1f}s, on --cpus 2 {makec:.1f}s"
                )
            rate1, rate2 = train_rate(client, jobs1), train_rate(client, jobs2)
            threads = {
                "1 worker": thread_tags(client, single_jobs + jobs1),
                "2 workers": thread_tags(client, jobs2),
                "--cpus 2": thread_tags(client, jobsc),
            }
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
        "bench": "scale",
        "corpus": corpus_info,
        "host": common.describe_host(),
        "quick": bool(args.quick),
        "worker_commands": {
            "1 worker": " ".join(worker_command(0)),
            "2 workers": f"{' '.join(worker_command(0))} & {' '.join(worker_command(1))}",
            "--cpus 2": " ".join(worker_command(CPUS2)),
        },
        "torch_threads_per_job": {n: "; ".join(t) for n, t in threads.items()},
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
        "makespan_cpus_2_s": statistics.median(makecs),
        "efficiency_cpus_2": statistics.median(
            k * s / 2 / m for s, m in zip(singles, makecs, strict=True)
        ),
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
    if not args.json:
        for key, value in result.items():
            if isinstance(value, float):
                print(f"{key:36s} {value:.3f}")
    common.emit(result, args)


if __name__ == "__main__":
    main()
