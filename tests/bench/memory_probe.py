"""Long-range memory probe: where do an LSTM and a simple RNN stop remembering, over seeds?

    .venv/bin/python tests/bench/memory_probe.py [--json] [--markdown] [--quick] [--lags 5,10,20] [--seeds 3] [--budget 60s] [--models lstm,rnn]
    .venv/bin/python tests/bench/memory_probe.py --markdown-from docs/bench/memory_probe.json

For each lag, one `seqq compare --local --models lstm,rnn --seeds N` trains every cell with the
same N seeds for the same wall-clock budget on `synthetic:copy?lag=L` (each record is `R|R\\n`,
R = lag-1 random letters, so every character of the second copy repeats the one exactly `lag`
positions back). Beside each run's best validation loss stand the chance level (remembers no
content: ln A on every letter) and the perfect-recall level (ln A on the first copy only). The
share of the gap a run closes, (chance - loss) / (chance - perfect), is its recall: ~1 remembers,
~0 does not. Per model and lag: recall's mean, sample standard deviation and min-max over the
seeds; per model: the largest lag whose mean recall is at least 0.5 (its reach).
Sequence length is 4 x lag, so most second-copy characters see their twin inside the window.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from dataclasses import asdict
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from scheduler.result import Spread  # noqa: E402
from tests.bench import common, render  # noqa: E402

SEQQ = str(Path(sys.executable).parent / "seqq")


def dataset(lag: int) -> str:
    return f"synthetic:copy?lag={lag}&alphabet=8"


def compare_argv(lag: int, models: str, seeds: int, budget: str) -> list[str]:
    """The one `seqq compare` that measures a lag: every model at every seed."""
    return [
        SEQQ,
        "compare",
        "--local",
        "--models",
        models,
        "--seeds",
        str(seeds),
        "--json",
        "--data",
        dataset(lag),
        "--seq-len",
        str(max(32, 4 * lag)),
        "--hidden-size",
        "128",
        "--num-layers",
        "1",
        "--embedding-dim",
        "16",
        "--batch-size",
        "32",
        "--lr",
        "0.003",
        # No regularisation: the copy stream never repeats, so there is nothing to overfit,
        # and dropout or a stronger weight decay would only blur what the cells can remember.
        "--dropout",
        "0",
        "--weight-decay",
        "0.01",
        "--time-budget",
        budget,
        "--max-steps",
        "100000",
        "--eval-every",
        "100",
        "--sample-every",
        "100000",
        "--checkpoint-every",
        "100000",
        "--experiment",
        "memory-probe",
    ]


def lag_row(lag: int, comparison: dict[str, Any]) -> dict[str, Any]:
    """One lag's row from `seqq compare --json`: each run's recall, and each model's spread."""
    levels = comparison["levels"]
    chance, perfect = levels["chance"], levels["perfect recall"]
    models: dict[str, Any] = {}
    for run in comparison["runs"]:
        loss = run["best_val_loss"]
        recall = None if loss is None else (chance - loss) / (chance - perfect)
        models.setdefault(run["model"], {"runs": []})["runs"].append(
            {"seed": run["seed"], "job_id": run["job_id"], "status": run["status"],
             "best_val_loss": loss, "steps": run["steps"], "recall": recall}
        )  # fmt: skip
    for entry in models.values():
        for figure in ("recall", "best_val_loss", "steps"):
            values = [r[figure] for r in entry["runs"] if r[figure] is not None]
            entry[figure] = asdict(Spread.of(values)) if values else None
    return {
        "lag": lag,
        "dataset": dataset(lag),
        "chance": chance,
        "perfect": perfect,
        "models": models,
    }


def run_lag(lag: int, models: str, seeds: int, budget: str, home: Path) -> dict[str, Any]:
    env = {
        "SEQQ_HOME": str(home),
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "DO_NOT_TRACK": "true",
        "PATH": "/usr/bin:/bin",
        "HOME": str(home),
    }
    argv = compare_argv(lag, models, seeds, budget)
    done = subprocess.run(argv, capture_output=True, text=True, env=env, check=False)
    if done.returncode != 0:
        raise SystemExit(f"lag {lag}: seqq compare failed:\n{done.stderr[-2000:]}")
    return lag_row(lag, json.loads(done.stdout))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="two lags, two seeds, 10 s each run")
    parser.add_argument("--lags", default=None, help="comma-separated lags (default 5,10,20)")
    parser.add_argument("--seeds", type=int, default=None, help="seeds per model (default 3)")
    parser.add_argument("--budget", default=None, help="training time per run, e.g. 60s")
    parser.add_argument("--models", default="lstm,rnn")
    common.add_output_options(parser)
    args = parser.parse_args(argv)
    if common.render_saved(args):
        return
    lags = [int(x) for x in (args.lags or ("5,10" if args.quick else "5,10,20")).split(",")]
    seeds = args.seeds or (2 if args.quick else 3)
    budget = args.budget or ("10s" if args.quick else "60s")
    rows = []
    with tempfile.TemporaryDirectory(prefix="seqq-memory-") as tmp:
        for lag in lags:
            rows.append(run_lag(lag, args.models, seeds, budget, Path(tmp)))
            print(f"lag {lag} done", file=sys.stderr, flush=True)
    models = list(rows[0]["models"])
    runs = [run for row in rows for m in models for run in row["models"][m]["runs"]]
    # Synthetic data only: the text is named by its reference in each row, no corpus file.
    result = {
        "bench": "memory_probe",
        "host": common.describe_host(),
        "budget": budget,
        "quick": bool(args.quick),
        "seeds": sorted({run["seed"] for run in runs}),
        "rows": rows,
        "threshold": render.RECALL_THRESHOLD,
        "reach": {m: render.memory_reach(rows, m) for m in models},
    }
    common.emit(result, args)


if __name__ == "__main__":
    main()
