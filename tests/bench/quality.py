"""Quality at equal wall-clock time: the default LSTM, RNN and GRU specs on tinyshakespeare.

    .venv/bin/python tests/bench/quality.py [--json] [--quick] [--budget 10m] [--models lstm,rnn,gru]

Runs `seqq compare --local` with the *default* spec (only the data, the time budget and a
finer evaluation interval are set) and prints each model's validation loss curve against
training time and steps. Target (issue 3): the default LSTM reaches <= 1.50 nats/char within
10 minutes on 2 CPU cores. `--json` prints {"lstm": {"budget_s", "best_val_loss", "steps"}, ...}.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
CORPUS = REPO.parent / "shared" / "data" / "tinyshakespeare.txt"
SEQQ = str(Path(sys.executable).parent / "seqq")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--json", action="store_true")
    parser.add_argument(
        "--quick", action="store_true", help="12 s per model (three models in under a minute)"
    )
    parser.add_argument("--budget", default=None, help="training time per model (default 10m)")
    parser.add_argument("--models", default="lstm,rnn,gru")
    parser.add_argument("--report", default=None, help="also write the comparison report here")
    args = parser.parse_args()
    budget = args.budget or ("12s" if args.quick else "10m")

    from mlflow import MlflowClient

    from scheduler.compare import read_result
    from shared.spec import parse_duration

    with tempfile.TemporaryDirectory(prefix="seqq-quality-") as tmp:
        home = Path(tmp)
        env = {
            "SEQQ_HOME": str(home),
            "HOME": str(home),
            "PATH": "/usr/bin:/bin",
            "MLFLOW_DISABLE_TELEMETRY": "true",
            "DO_NOT_TRACK": "true",
        }
        argv = [
            SEQQ,
            "compare",
            "--local",
            "--models",
            args.models,
            "--data",
            str(CORPUS),
            "--time-budget",
            budget,
            "--eval-every",
            "100",
            "--experiment",
            "quality",
            "--json",
        ]
        if args.report:
            argv += ["--report", args.report]
        print(f"running: {' '.join(argv)}", file=sys.stderr, flush=True)
        done = subprocess.run(argv, capture_output=True, text=True, env=env, check=False)
        if done.returncode != 0:
            raise SystemExit(f"seqq compare failed:\n{done.stderr[-3000:]}")
        out = json.loads(done.stdout)
        client = MlflowClient(f"sqlite:///{home / 'mlflow.db'}")
        result = {}
        for model, summary in out["models"].items():
            full = read_result(client, summary["job_id"], tmp)
            result[model] = {
                "budget_s": parse_duration(budget),
                "best_val_loss": summary["best_val_loss"],
                "test_loss": summary["test_loss"],
                "steps": summary["steps"],
                "chars_per_s": summary["chars_per_s"],
                "curve": [
                    {"step": s, "time_s": round(t, 1), "val_loss": round(v, 4)}
                    for s, t, v in zip(
                        full.curve_steps, full.curve_time_s, full.curve_val_loss, strict=True
                    )
                ],
            }
    if args.json:
        print(json.dumps(result))
        return
    for model, r in result.items():
        print(
            f"\n{model}: best val {r['best_val_loss']:.3f} nats/char after {r['steps']} steps "
            f"({r['chars_per_s']:.0f} chars/s), test {r['test_loss']:.3f}"
        )
        for point in r["curve"]:
            print(
                f"  step {point['step']:>6}  t {point['time_s']:>7.1f}s  val {point['val_loss']:.4f}"
            )


if __name__ == "__main__":
    main()
