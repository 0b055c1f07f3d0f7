"""Client latency benchmark: how long `seqq status`, `list` and `submit` take, as a user sees it.

    .venv/bin/python tests/bench/client_latency.py [--json] [--markdown] [--rounds N] [--baseline]
    .venv/bin/python tests/bench/client_latency.py --markdown-from docs/bench/client_latency.json

Each figure is the median wall time of N (5) fresh `seqq` processes, from spawn to exit, against
`seqq --help` timed in the same rounds (rounds interleave the commands, so a drift in a shared
machine's speed hits all alike). Two stores: a real `mlflow server` (SQLite backend, proxied
artifacts, MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false) and an embedded SQLite store, each holding
a few runs submitted first. Redis: database 11 on 127.0.0.1:6379 (flushed). No worker runs: the
submitted jobs stay queued. One untimed warm-up of each command first (the corpus upload happens
there, once per store, as it does once per corpus for a user).

--baseline adds the same commands with SEQQ_LIGHT_CLIENT=false (through MlflowClient, as before
the light client), so the gain is measured in the same run.

Goals (issue 10, item 8): status and list <= 0.5 s against a served MLflow and <= 1 s on the
embedded store; submit <= 1 s.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

import subprocess  # noqa: E402

from tests.bench import common  # noqa: E402
from tests.helpers import (  # noqa: E402
    SEQQ,
    Service,
    base_env,
    seqq_json,
    start_mlflow_server,
)

REDIS_URL = "redis://127.0.0.1:6379/11"
GOALS = {
    ("status", "served"): 0.5,
    ("list", "served"): 0.5,
    ("status", "embedded"): 1.0,
    ("list", "embedded"): 1.0,
    ("submit", "served"): 1.0,
    ("submit", "embedded"): 1.0,
}
SMALL = ["--hidden-size", "32", "--num-layers", "1", "--max-steps", "50", "--seq-len", "32"]


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def timed(args: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    done = subprocess.run([SEQQ, *args], env=env, capture_output=True, text=True, timeout=120)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"seqq {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")
    return elapsed


def start_server(tmp: Path) -> tuple[Service, str]:
    server, port = start_mlflow_server(tmp, timeout=180)
    return server, f"http://127.0.0.1:{port}"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=5, help="fresh processes per command")
    parser.add_argument(
        "--baseline", action="store_true", help="also time SEQQ_LIGHT_CLIENT=false (MlflowClient)"
    )
    common.add_output_options(parser)
    args = parser.parse_args()
    if common.render_saved(args):
        return

    import redis

    conn = redis.Redis.from_url(REDIS_URL)
    conn.flushdb()
    with tempfile.TemporaryDirectory(prefix="seqq-latency-") as tmp_name:
        tmp = Path(tmp_name)
        corpus = tmp / "corpus.txt"
        corpus.write_text("the quick brown fox jumps over the lazy dog.\n" * 400)
        server, server_uri = start_server(tmp)
        try:
            stores = {
                "served": base_env(
                    tmp / "home", SEQQ_BROKER_URL=REDIS_URL, SEQQ_MLFLOW_URI=server_uri
                ),
                "embedded": base_env(
                    tmp / "home",
                    SEQQ_BROKER_URL=REDIS_URL,
                    SEQQ_MLFLOW_URI=f"sqlite:///{tmp / 'embedded' / 'mlflow.db'}",
                ),
            }
            submit = ["submit", "--data", str(corpus), *SMALL]
            commands: dict[tuple[str, str, str], tuple[list[str], dict[str, str]]] = {
                ("help", "-", "light"): (["--help"], stores["served"])
            }
            for store, env in stores.items():
                log(f"filling the {store} store with a few runs")
                job = ""
                for _ in range(3):  # also the warm-up: the corpus upload happens here
                    job = seqq_json(submit, env)["job_id"]
                clients = {"light": env}
                if args.baseline:
                    clients["mlflow"] = {**env, "SEQQ_LIGHT_CLIENT": "false"}
                for client, client_env in clients.items():
                    commands[("status", store, client)] = (["status", job], client_env)
                    commands[("list", store, client)] = (["list"], client_env)
                    commands[("submit", store, client)] = (submit, client_env)
            for argv, env in commands.values():  # untimed warm-up (page cache, .pyc files)
                timed(argv, env)
            times: dict[tuple[str, str, str], list[float]] = {key: [] for key in commands}
            for round_ in range(args.rounds):
                log(f"round {round_ + 1}/{args.rounds}")
                for key, (argv, env) in commands.items():
                    times[key].append(timed(argv, env))
        finally:
            server.stop()
            conn.flushdb()

    help_s = statistics.median(times[("help", "-", "light")])
    rows = []
    for (command, store, client), samples in times.items():
        median = statistics.median(samples)
        goal = GOALS.get((command, store)) if client == "light" else None
        rows.append(
            {
                "command": "seqq --help" if command == "help" else f"seqq {command}",
                "store": store,
                "client": client,
                "median_s": round(median, 3),
                "min_s": round(min(samples), 3),
                "max_s": round(max(samples), 3),
                "x_help": round(median / help_s, 2),
                "goal_s": goal,
                "meets_goal": None if goal is None else median <= goal,
            }
        )
    result: dict[str, Any] = {
        "bench": "client_latency",
        "host": common.describe_host(),
        "rounds": args.rounds,
        "help_median_s": round(help_s, 3),
        "rows": rows,
    }
    common.emit(result, args)


if __name__ == "__main__":
    main()
