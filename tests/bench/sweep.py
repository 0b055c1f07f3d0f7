"""Sweep benchmark: does pruning pay, how fast a freed worker goes on, what reporting costs, and
how trials per hour scale with workers. Everything runs as users run it: `seqq sweep` on the
queue, real `seqq worker` and `seqq scheduler` processes, a real Redis study.

    .venv/bin/python tests/bench/sweep.py [--json] [--markdown] [--quick] [--seeds 0,1,2] [--trials 32]
    .venv/bin/python tests/bench/sweep.py --markdown-from docs/bench/sweep.json

1. **Pruning pays.** For each sweep seed: the same space, trial count and sampler seed with
   `--pruner asha` and `--pruner none`, one after the other on one worker (`--parallel 1`, the
   machine's cores), 32 trials each, as in the issue's example sweep (ASHA saves more the more
   trials it sees: a trial completes only while it leads every rung it reaches, and leaders thin
   out; at 16 trials the TPE-guided trials, each better than the last, complete more often than
   a third of the time allows). Reported per seed: each sweep's best validation loss (nats/char) and its
   total training time (the sum of its trials' training seconds, pruned ones included: the
   `train_time_s` a trial logged at its end, else the `elapsed_s` it logged last), the gap in
   best loss and the ratio of training times. Targets: gap <= 0.02, time ratio <= 1/3.
   Then the pruning decisions alone, replayed: for each unpruned sweep, Optuna's pruners under
   several settings decide over its recorded validation curves, trial by trial in its order
   (`REPLAYED`: first rung and reduction factor); a trial pruned at step s costs s/steps of its measured training seconds. Same
   trials, so a gap there is a pruning mistake; a gap in the live ASHA sweep that the replay
   does not show comes from TPE drawing other trials once it sees pruned ones.
2. **A freed worker goes on.** In the ASHA sweeps: from the evaluation at which a trial was
   pruned (the timestamp MLflow gave that `val_loss`) to the next trial's first training step
   on the same worker (the timestamp of its `submit_to_first_step_s`). Median; target <= 2 s.
3. **Reporting costs.** Timed where it happens: every trial of the sweeps of 1 logs
   `trial_report_s`, the seconds its job spent in `report` and `should_prune`; its share of the
   trial's training seconds, median and max over all those trials. Target < 1%. Also, as the
   issue first framed it, R rounds of the same spec as a lone job and as the one trial of a
   sweep with nothing to search, back to back on one worker: the ratio of their training
   seconds (trial / alone), median over rounds. That ratio is bound by run-to-run noise (a few
   percent on this host) and cannot resolve 1%: the timed share is the figure that can.
4. **Trials per hour.** A sweep without pruning, `--rate-trials` (32) trials, on one worker (`taskset -c 0`,
   `--parallel 1`), then on two (`taskset -c 0` and `-c 1`, `--parallel 2`): trials per hour
   from the first trial's start to the last one's end; efficiency = rate(2) / (2 x rate(1)).
   Target >= 0.9. Workers given one core each, as on one-core machines. Both sweeps use the
   random sampler with one seed, so both train the same trials (TPE would draw differently
   with two in flight, and trial sizes differ threefold across the space): the same work,
   timed on one worker and on two.

Uses Redis database --redis-db (10) on 127.0.0.1:6379 (flushed) and a SQLite MLflow store in a
temp dir; trains on `--data` (default: the built-in corpus), named in the output. Run it alone:
two torch processes on two cores slow each other many times over.
"""

from __future__ import annotations

import argparse
import itertools
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
from tests.helpers import SEQQ, Service, Worker, base_env, seqq_json, wait_until  # noqa: E402

SWEEP = """\
model: {{cell: lstm, hidden_size: 64, num_layers: 1, embedding_dim: 16}}
data: {{dataset: {corpus}, seq_len: 64}}
optim: {{batch_size: 32, max_steps: {steps}, warmup_steps: 20}}
run: {{eval_every: {eval_every}, eval_batches: 4, sample_every: 1000000, checkpoint_every: 1000000, experiment: {experiment}, seed: 0}}
sample: {{length: 50}}
device: cpu
space:
{space}
sweep: {{trials: {trials}, sampler: {sampler}, pruner: {pruner}, seed: {seed}}}
"""
SPACE = """\
  optim.lr: {log: [1.0e-4, 3.0e-2]}
  model.hidden_size: [32, 64, 128]
"""


# Pruner settings replayed over each unpruned sweep's curves: (kind, first rung in evaluations,
# reduction factor). seqq's ASHA is the first: its first rung at the first evaluation, factor 5
# (its default since this replay showed factor 4, Optuna's, losing the best trial in some orders).
REPLAYED = [
    ("asha", 1, 5),
    ("asha", 1, 4),
    ("asha", 1, 3),
    ("asha", 1, 2),
    ("asha", 1, 6),
    ("asha", 2, 5),
    ("asha", 4, 4),
    ("hyperband", 1, 3),
    ("median", 1, 0),
]


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def sweep_file(tmp: Path, name: str, corpus: str, **values: Any) -> Path:
    path = tmp / f"{name}.yaml"
    path.write_text(SWEEP.format(corpus=corpus, experiment=name, **values))
    return path


def wait_ended(client: Any, run_id: str) -> None:
    """Poll a run's status in this process once a second (a `seqq` process per look would
    take ~1.5 s of the cores the workers train on)."""
    wait_until(
        lambda: client.get_run(run_id).info.status in ("FINISHED", "FAILED", "KILLED"),
        7200,
        f"run {run_id} to end",
        interval=1.0,
    )


def run_sweep(env: dict[str, str], client: Any, path: Path, parallel: int) -> dict[str, Any]:
    """Submit a sweep, wait for its parent run to end; its record (`seqq sweep status`)."""
    sweep_id = seqq_json(["sweep", "-f", str(path), "--parallel", str(parallel)], env)["sweep_id"]
    wait_ended(client, sweep_id)
    return seqq_json(["sweep", "status", sweep_id], env)


def train_seconds(client: Any, run_id: str) -> float:
    """A trial's training seconds: `train_time_s` at its end, else the last `elapsed_s`."""
    run = client.get_run(run_id)
    if "train_time_s" in run.data.metrics:
        return float(run.data.metrics["train_time_s"])
    history = client.get_metric_history(run_id, "elapsed_s")
    return max((m.value for m in history), default=0.0)


def report_share(client: Any, run_id: str) -> float | None:
    """The share of a trial's training seconds it spent reporting to the study (each attempt
    logs its own `trial_report_s`; a resumed trial's attempts add up)."""
    history = client.get_metric_history(run_id, "trial_report_s")
    train_s = train_seconds(client, run_id)
    if not history or train_s <= 0:
        return None
    return sum(m.value for m in history) / train_s


def curves(client: Any, record: dict[str, Any]) -> list[dict[str, Any]]:
    """Each trial of a finished unpruned sweep in trial order: its training seconds and its
    validation curve (the study's values: MLflow holds the same), saved with the result so
    other pruner settings can be replayed over it later (`--replay-from`)."""
    rows = sorted(record["trials"], key=lambda r: r["number"])
    out = []
    for row in rows:
        history = client.get_metric_history(row["run_id"], "val_loss")
        out.append(
            {
                "number": row["number"],
                "train_s": train_seconds(client, row["run_id"]),
                "curve": sorted([m.step, m.value] for m in history),
            }
        )
    return out


def _pruner(kind: str, first: int, factor: int, steps: int) -> Any:
    from optuna.pruners import HyperbandPruner, MedianPruner, SuccessiveHalvingPruner

    if kind == "asha":
        return SuccessiveHalvingPruner(min_resource=first, reduction_factor=factor)
    if kind == "hyperband":
        return HyperbandPruner(min_resource=first, max_resource=steps, reduction_factor=factor)
    return MedianPruner(n_startup_trials=5, n_warmup_steps=first)


def _decide(trials: list[dict[str, Any]], pruner: Any) -> tuple[float, float]:
    """One pruner over the trials in their order: the best value among the trials it lets
    complete, and the training seconds it spends (a pruned trial: its share of steps)."""
    import optuna
    from optuna.trial import TrialState

    study = optuna.create_study(pruner=pruner)
    spent, best = 0.0, float("inf")
    for t in trials:
        trial, last = study.ask(), t["curve"][-1][0]
        for step, value in t["curve"]:
            trial.report(value, step)
            if step < last and trial.should_prune():
                spent += t["train_s"] * step / last
                study.tell(trial, state=TrialState.PRUNED)
                break
        else:
            spent += t["train_s"]
            best = min(best, min(v for _, v in t["curve"]))
            study.tell(trial, min(v for _, v in t["curve"]))
    return best, spent


def replay(
    trials: list[dict[str, Any]], steps: int, eval_every: int, orders: int
) -> dict[str, Any]:
    """Each REPLAYED pruner deciding over the same trials: in the sweep's own order, the best
    value of the trials it lets complete minus the unpruned best (`loss_gap`) and its share of
    the training time (`time_ratio`); over `orders` shuffled orders (seeded), the mean of each
    and the share of orders whose gap exceeds 0.02 (`misses`)."""
    import random

    import optuna

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    full = min(min(v for _, v in t["curve"]) for t in trials)
    total = sum(t["train_s"] for t in trials)
    shuffles = [random.Random(i).sample(trials, len(trials)) for i in range(orders)]
    out = {}
    for kind, evals, factor in REPLAYED:
        first = evals * eval_every
        name = f"{kind} {first}" + (f"x{factor}" if factor else "")
        name += " (seqq's)" if (kind, evals, factor) == REPLAYED[0] else ""
        best, spent = _decide(trials, _pruner(kind, first, factor, steps))
        row: dict[str, Any] = {"loss_gap": best - full, "time_ratio": spent / total}
        if shuffles:
            runs = [_decide(order, _pruner(kind, first, factor, steps)) for order in shuffles]
            gaps = [b - full for b, _ in runs]
            row["shuffled"] = {
                "orders": orders,
                "mean_gap": statistics.fmean(gaps),
                "misses": sum(g > 0.02 for g in gaps) / orders,
                "mean_time_ratio": statistics.fmean(t / total for _, t in runs),
            }
        out[name] = row
    return out


def replay_saved(path: Path, orders: int) -> None:
    """Replay the settings over a saved result's unpruned curves; print its replay table."""
    import json

    from tests.bench import render

    result = json.loads(path.read_text(encoding="utf-8"))
    for row in result["pruning"]:
        saved = row["none"].get("curves")
        if not saved:
            raise SystemExit(f"{path}: seed {row['seed']} has no saved curves to replay")
        row["replay"] = replay(saved, result["steps"], result["eval_every"], orders)
    print(render.replay_table(result))


def first_step_ms(client: Any, run_id: str) -> int | None:
    history = client.get_metric_history(run_id, "submit_to_first_step_s")
    return history[0].timestamp if history else None


def prune_to_next_s(client: Any, record: dict[str, Any]) -> list[float]:
    """For each pruned trial: seconds from its pruning evaluation to the next trial's first
    step (trials run one at a time, so the next trial is on the same worker)."""
    rows = sorted(record["trials"], key=lambda r: r["number"])
    out = []
    for row, nxt in itertools.pairwise(rows):
        if row["state"] != "PRUNED" or not nxt["run_id"] or row["pruned_step"] is None:
            continue
        evals = client.get_metric_history(row["run_id"], "val_loss")
        decided = [m.timestamp for m in evals if m.step == row["pruned_step"]]
        started = first_step_ms(client, nxt["run_id"])
        if decided and started:
            out.append((started - decided[0]) / 1000)
    return out


def makespan_s(client: Any, record: dict[str, Any]) -> float:
    runs = [client.get_run(r["run_id"]) for r in record["trials"] if r["run_id"]]
    first = min(first_step_ms(client, r.info.run_id) or r.info.start_time for r in runs)
    return (max(r.info.end_time for r in runs) - first) / 1000


def start_worker(env: dict[str, str], tmp: Path, name: str, core: int | None) -> Worker:
    prefix = ["taskset", "-c", str(core)] if core is not None else []
    worker = Worker(  # one home: workers on one machine share its corpus cache
        {**env, "SEQQ_HOME": str(tmp / "worker-home")},
        tmp / f"{name}-{time.time_ns()}.log",
        args=["--queues", "cpu", "--name", f"{name}@bench"],
        prefix=prefix,
    )
    worker.wait_ready(timeout=120)
    return worker


def stats(values: list[float]) -> dict[str, float]:
    return {
        "median": statistics.median(values),
        "min": min(values),
        "max": max(values),
        "n": len(values),
    }


PARTS = ("pruning", "overhead", "rate")  # 1 and 2 and 3's timed share; 3's paired rounds; 4
# What a merged result must share with the run that adds to it.
SETTINGS = ("quick", "trials", "steps", "eval_every", "space")


def start_result(args: argparse.Namespace, corpus_info: dict[str, Any], **settings: Any) -> Any:
    """A new result, or (`--merge FILE`) the saved one this run adds to: its parts and seeds
    not measured now are kept; a saved result measured with other settings is refused."""
    import json

    result: dict[str, Any] = {
        "bench": "sweep",
        "corpus": {k: v for k, v in corpus_info.items() if k != "path"},
        **settings,
    }
    if args.merge is None:
        return result
    saved = json.loads(args.merge.read_text(encoding="utf-8"))
    differ = [k for k in (*SETTINGS, "corpus") if saved.get(k) != result[k]]
    if differ:
        raise SystemExit(f"--merge {args.merge}: measured with other {', '.join(differ)}")
    return saved | result


def merge_rows(old: list[dict[str, Any]], new: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The pruning rows by seed, a seed measured now replacing its saved row."""
    by_seed = {row["seed"]: row for row in old} | {row["seed"]: row for row in new}
    return [by_seed[seed] for seed in sorted(by_seed)]


def pooled(rows: list[dict[str, Any]], key: str) -> dict[str, float] | None:
    """`stats` over the values every row recorded under `key` (rows measured before it was
    recorded per row count for nothing)."""
    values = [v for row in rows for v in row.get(key, [])]
    return stats(values) if values else None


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="a smoke run of a few minutes")
    parser.add_argument("--seeds", default=None, help="sweep seeds, comma-separated (0,1,2)")
    parser.add_argument("--trials", type=int, default=None, help="trials per sweep of 1 (32)")
    parser.add_argument("--rate-trials", type=int, default=None, help="trials per sweep of 4 (32)")
    parser.add_argument("--rounds", type=int, default=None, help="rounds of part 3 (3)")
    parser.add_argument(
        "--parts",
        default=",".join(PARTS),
        help="what to measure, comma-separated: pruning (1, 2 and 3's timed share), overhead "
        "(3's paired rounds), rate (4); default all",
    )
    parser.add_argument(
        "--merge",
        type=Path,
        default=None,
        metavar="FILE",
        help="add to a saved result: keep its parts and seeds not measured now (each figure is "
        "still paired within the run that measured it); the settings must match",
    )
    parser.add_argument("--redis-db", type=int, default=10, help="Redis database (flushed)")
    parser.add_argument(
        "--orders", type=int, default=20, help="shuffled trial orders per replayed setting (20)"
    )
    parser.add_argument(
        "--replay-from",
        type=Path,
        default=None,
        metavar="FILE",
        help="train nothing: replay the pruner settings over a saved result's unpruned curves",
    )
    common.add_data_option(parser)
    common.add_output_options(parser)
    args = parser.parse_args()
    if common.render_saved(args):
        return
    if args.replay_from is not None:
        replay_saved(args.replay_from, args.orders)
        return
    parts = [p.strip() for p in args.parts.split(",") if p.strip()]
    if not parts or set(parts) - set(PARTS):
        raise SystemExit(f"--parts: expected some of {', '.join(PARTS)}, got {args.parts!r}")
    seeds = [int(s) for s in (args.seeds or ("0" if args.quick else "0,1,2")).split(",")]
    trials = args.trials or (4 if args.quick else 32)
    rate_trials = args.rate_trials or (4 if args.quick else 32)
    rounds = args.rounds or (1 if args.quick else 3)
    steps, eval_every = (60, 20) if args.quick else (3000, 100)
    corpus_info = common.describe_corpus(args.data)
    corpus = corpus_info["path"]
    log(common.corpus_line(corpus_info))
    result = start_result(
        args,
        corpus_info,
        quick=args.quick,
        trials=trials,
        steps=steps,
        eval_every=eval_every,
        space=SPACE.strip().splitlines(),
    )
    host = common.describe_host()
    result["host"] = host
    result.setdefault("measured", []).append(
        {
            "date": time.strftime("%Y-%m-%d"),
            "parts": parts,
            "seeds": seeds if "pruning" in parts else [],
            "host": host,
        }
    )

    import redis
    from mlflow import MlflowClient

    redis_url = f"redis://127.0.0.1:6379/{args.redis_db}"
    redis.Redis.from_url(redis_url).flushdb()
    with tempfile.TemporaryDirectory(prefix="seqq-sweep-bench-") as tmp_name:
        tmp = Path(tmp_name)
        uri = f"sqlite:///{tmp / 'mlflow.db'}"
        client = MlflowClient(uri)
        client.search_experiments()  # migrate the store before any worker touches it
        # The scheduler at its default reap interval, as users run it: its beat takes CPU
        # from the workers it shares the cores with.
        env = base_env(tmp / "client-home", SEQQ_BROKER_URL=redis_url, SEQQ_MLFLOW_URI=uri)
        os.environ.update(MLFLOW_DISABLE_TELEMETRY="true")
        scheduler = Service([SEQQ, "scheduler"], tmp / "scheduler.log", env=env)
        try:
            if "pruning" in parts or "overhead" in parts:
                worker = start_worker(env, tmp, "all-cores", None)
                try:
                    if "pruning" in parts:
                        rows = measure_pruning(
                            env,
                            client,
                            tmp,
                            corpus,
                            seeds,
                            trials,
                            (steps, eval_every),
                            args.orders,
                        )
                        result["pruning"] = merge_rows(result.get("pruning", []), rows)
                        result["prune_to_next_trial_s"] = pooled(result["pruning"], "to_next_s")
                        log(f"pruned -> next trial: {result['prune_to_next_trial_s']}")
                        result["report_share"] = pooled(result["pruning"], "report_shares")
                        log(f"reporting's share of a trial's training: {result['report_share']}")
                    if "overhead" in parts:
                        result["report_overhead"] = measure_overhead(
                            env, client, tmp, corpus, rounds, (steps, eval_every)
                        )
                finally:
                    worker.stop()
            if "rate" in parts:
                result.update(
                    measure_rate(env, client, tmp, corpus, rate_trials, (steps, eval_every))
                )
        finally:
            scheduler.stop()
    common.emit(result, args)


def measure_pruning(
    env: dict[str, str],
    client: Any,
    tmp: Path,
    corpus: str,
    seeds: list[int],
    trials: int,
    size: tuple[int, int],
    orders: int,
) -> list[dict[str, Any]]:
    """1 and 2, and 3's timed share: per seed, the unpruned and the ASHA sweep one after the
    other on one worker, the replay over the unpruned one's curves, and each row's raw
    pruned -> next-trial gaps and reporting shares (pooled over rows by the caller)."""
    steps, eval_every = size
    rows = []
    for seed in seeds:
        row: dict[str, Any] = {"seed": seed, "to_next_s": [], "report_shares": []}
        for pruner in ("none", "asha"):
            name = f"prune-{pruner}-{seed}"
            path = sweep_file(
                tmp,
                name,
                corpus,
                steps=steps,
                eval_every=eval_every,
                space=SPACE,
                trials=trials,
                sampler="tpe",
                pruner=pruner,
                seed=seed,
            )
            record = run_sweep(env, client, path, parallel=1)
            ids = [r["run_id"] for r in record["trials"] if r["run_id"]]
            row[pruner] = {
                "best_val_loss": (record["best"] or {}).get("value"),
                "train_s": sum(train_seconds(client, i) for i in ids),
                "counts": record["counts"],
            }
            row["report_shares"] += [s for i in ids if (s := report_share(client, i)) is not None]
            if pruner == "none":
                row[pruner]["curves"] = curves(client, record)
                row["replay"] = replay(row[pruner]["curves"], steps, eval_every, orders)
                log(f"seed {seed} replay: {row['replay']}")
            if pruner == "asha":
                row["to_next_s"] = prune_to_next_s(client, record)
            log(
                f"seed {seed} {pruner}: { {k: v for k, v in row[pruner].items() if k != 'curves'} }"
            )
        none, asha = row["none"], row["asha"]
        row["loss_gap"] = asha["best_val_loss"] - none["best_val_loss"]
        row["time_ratio"] = asha["train_s"] / none["train_s"]
        rows.append(row)
    return rows


def measure_overhead(
    env: dict[str, str], client: Any, tmp: Path, corpus: str, rounds: int, size: tuple[int, int]
) -> dict[str, float]:
    """3's paired rounds: the same spec as a sweep's one trial and alone, back to back."""
    steps, eval_every = size
    ratios = []
    for r in range(rounds):
        one = "  optim.lr: [3.0e-3]\n"
        path = sweep_file(
            tmp,
            f"report-{r}",
            corpus,
            steps=steps * 2,
            eval_every=eval_every,
            space=one,
            trials=1,
            sampler="tpe",
            pruner="none",
            seed=0,
        )
        record = run_sweep(env, client, path, parallel=1)
        trial_s = train_seconds(client, record["trials"][0]["run_id"])
        spec = tmp / f"report-{r}-alone.yaml"
        spec.write_text(path.read_text().split("space:")[0])  # the base alone
        alone = seqq_json(["submit", "-f", str(spec), "--lr", "3.0e-3"], env)
        wait_ended(client, alone["job_id"])
        alone_s = train_seconds(client, alone["job_id"])
        ratios.append(trial_s / alone_s)
        log(f"round {r}: trial {trial_s:.2f}s, alone {alone_s:.2f}s")
    return stats(ratios)


def measure_rate(
    env: dict[str, str],
    client: Any,
    tmp: Path,
    corpus: str,
    rate_trials: int,
    size: tuple[int, int],
) -> dict[str, Any]:
    """4: the same random-sampler sweep on one one-core worker, then on two."""
    steps, eval_every = size
    rates = {}
    for count in (1, 2):
        workers = [start_worker(env, tmp, f"core{i}", i) for i in range(count)]
        try:
            path = sweep_file(
                tmp,
                f"rate-{count}",
                corpus,
                steps=steps,
                eval_every=eval_every,
                space=SPACE,
                trials=rate_trials,
                sampler="random",
                pruner="none",
                seed=0,
            )
            record = run_sweep(env, client, path, parallel=count)
            span = makespan_s(client, record)
            rates[count] = len(record["trials"]) / span * 3600
            log(f"{count} worker(s): {len(record['trials'])} trials in {span:.1f}s")
        finally:
            for w in workers:
                w.stop()
    return {
        "rate_trials": rate_trials,
        "rate_sampler": "random",
        "trials_per_hour": {str(k): v for k, v in rates.items()},
        "efficiency_2_workers": rates[2] / (2 * rates[1]),
    }


if __name__ == "__main__":
    main()
