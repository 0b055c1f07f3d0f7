"""Long-range memory probe: where do an LSTM and a simple RNN stop remembering?

    .venv/bin/python tests/bench/memory_probe.py [--json] [--markdown] [--quick] [--lags 5,20,50,100] [--budget 90s]
    .venv/bin/python tests/bench/memory_probe.py --markdown-from docs/bench/memory_probe.json

For each lag, `seqq compare --local --models lstm,rnn` trains both cells for the same wall-clock
budget on `synthetic:copy?lag=L` (each record is `R|R\\n`, R = lag-1 random letters, so every
character of the second copy repeats the one exactly `lag` positions back). Reported beside
each model's best validation loss: the chance level (remembers no content: ln A on every
letter) and the perfect-recall level (ln A on the first copy only). The share of the gap a
model closes, (chance - loss) / (chance - perfect), is its recall: ~1 remembers, ~0 does not.
Sequence length is 4 x lag, so most second-copy characters see their twin inside the window.
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

from tests.bench import common  # noqa: E402

SEQQ = str(Path(sys.executable).parent / "seqq")


def run_lag(lag: int, budget: str, home: Path) -> dict[str, object]:
    dataset = f"synthetic:copy?lag={lag}&alphabet=8"
    argv = [
        SEQQ,
        "compare",
        "--local",
        "--models",
        "lstm,rnn",
        "--json",
        "--data",
        dataset,
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
    env = {
        "SEQQ_HOME": str(home),
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "DO_NOT_TRACK": "true",
        "PATH": "/usr/bin:/bin",
        "HOME": str(home),
    }
    done = subprocess.run(argv, capture_output=True, text=True, env=env, check=False)
    if done.returncode != 0:
        raise SystemExit(f"lag {lag}: seqq compare failed:\n{done.stderr[-2000:]}")
    out = json.loads(done.stdout)
    levels = out["levels"]
    chance, perfect = levels["chance"], levels["perfect recall"]
    row: dict[str, object] = {"lag": lag, "dataset": dataset, "chance": chance, "perfect": perfect}
    for model, summary in out["models"].items():
        loss = summary["best_val_loss"]
        row[model] = {
            "best_val_loss": loss,
            "steps": summary["steps"],
            "recall": (chance - loss) / (chance - perfect),
        }
    return row


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="two lags, 20 s each model")
    parser.add_argument("--lags", default=None)
    parser.add_argument("--budget", default=None, help="training time per model, e.g. 90s")
    common.add_output_options(parser)
    args = parser.parse_args()
    if common.render_saved(args):
        return
    lags = [int(x) for x in (args.lags or ("5,20" if args.quick else "5,20,50,100")).split(",")]
    budget = args.budget or ("20s" if args.quick else "90s")
    rows = []
    with tempfile.TemporaryDirectory(prefix="seqq-memory-") as tmp:
        for lag in lags:
            rows.append(run_lag(lag, budget, Path(tmp)))
            print(f"lag {lag} done", file=sys.stderr, flush=True)
    # Synthetic data only: the text is named by its reference in each row, no corpus file.
    result = {
        "bench": "memory_probe",
        "host": common.describe_host(),
        "budget": budget,
        "quick": bool(args.quick),
        "rows": rows,
    }
    common.emit(result, args)


if __name__ == "__main__":
    main()
