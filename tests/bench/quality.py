"""Quality at equal wall-clock time: the default LSTM, RNN and GRU specs on a reference text,
over seeds: training speed, held-out loss and the quality of the generated text.

    .venv/bin/python tests/bench/quality.py [--json] [--markdown] [--quick] [--budget 10m]
        [--seeds 3] [--models lstm,rnn,gru] [--data PATH]
    .venv/bin/python tests/bench/quality.py --markdown-from docs/bench/quality.json

Runs one `seqq compare --local --seeds N` with the *default* spec (only the data, the time
budget and a finer evaluation interval are set; none changes what is trained) on `--data`
(default: the built-in corpus; the output names it by sha256): every model trained with the same
N seeds for the same wall time. For each model, every run's figures as the run logged them and
their mean, sample standard deviation and extremes over the seeds:

- steps and characters per second (training time);
- the best validation loss and its step, the test loss of THOSE weights (the run's
  `checkpoints/best/`, scored by the worker: `test_loss_best`), the final validation loss and
  the final weights' test loss (loss);
- on the default split (validation then test, 5% each, at the end), the loss of the best
  weights on the whole last 10% (the mean of the two), which is nanoGPT's validation split, so a
  figure on its text compares with nanoGPT's published character-level losses;
- the text quality of its last samples (`sample_word_share`, `sample_ref_bpc`,
  `sample_copy_span`, `sample_repetition`) beside the same measures on held-out text;
- the validation curve against training time and steps (per run).

Target (issue 3): the default LSTM reaches <= 1.50 nats/char within 10 minutes on 2 CPU cores.
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

from tests.bench import common  # noqa: E402

SEQQ = str(Path(sys.executable).parent / "seqq")
EVAL_EVERY = 100
# Each run's figures, as `seqq compare` reads them from MLflow (ModelResult fields).
FIGURES = (
    "steps",
    "chars_per_s",
    "best_val_loss",
    "best_step",
    "test_loss_best",
    "final_val_loss",
    "test_loss",
    "last10_loss_best",
)


def run_figures(full: Any) -> dict[str, Any]:
    """One run as the bench keeps it: its figures, text quality and validation curve."""
    own = [name for name in FIGURES if name not in ("final_val_loss", "last10_loss_best")]
    figures = {name: getattr(full, name) for name in own}
    figures["final_val_loss"] = full.curve_val_loss[-1] if full.curve_val_loss else None
    # Validation then test are the corpus's last 10% in two equal halves (the default split):
    # their mean at the best weights is the loss on the last 10%, nanoGPT's validation split.
    pair = (figures["best_val_loss"], figures["test_loss_best"])
    figures["last10_loss_best"] = None if None in pair else (pair[0] + pair[1]) / 2
    return {
        "seed": full.seed,
        "status": full.status,
        **figures,
        "text_quality": dict(full.text_quality),
        "curve": [
            {"step": s, "time_s": round(t, 1), "val_loss": round(v, 4)}
            for s, t, v in zip(
                full.curve_steps, full.curve_time_s, full.curve_val_loss, strict=True
            )
        ],
    }


def spreads(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Each figure's and text measure's mean, sample std, min, max and n over the runs."""
    from scheduler.result import TEXT_FIGURES, Spread

    def of(values: list[Any]) -> dict[str, Any] | None:
        present = [float(v) for v in values if v is not None]
        return asdict(Spread.of(present)) if present else None

    out: dict[str, Any] = {name: of([r.get(name) for r in runs]) for name in FIGURES}
    quality = {m: of([r["text_quality"].get(m) for r in runs]) for m in TEXT_FIGURES}
    out["text_quality"] = {m: s for m, s in quality.items() if s is not None}
    return out


def measure(models: str, budget: str, seeds: int, data: str, report: str | None) -> dict[str, Any]:
    from mlflow import MlflowClient

    from scheduler.result import read_result
    from shared.spec import parse_duration

    corpus = common.describe_corpus(data)
    print(common.corpus_line(corpus), file=sys.stderr, flush=True)
    with tempfile.TemporaryDirectory(prefix="seqq-quality-") as tmp:
        home = Path(tmp)
        env = common.isolated_env(home)
        argv = [SEQQ, "compare", "--local", "--models", models, "--data", corpus["path"]]
        argv += ["--time-budget", budget, "--eval-every", str(EVAL_EVERY), "--seeds", str(seeds)]
        argv += ["--experiment", "quality", "--json"]
        if report:
            argv += ["--report", report]
        print(f"running: {' '.join(argv)}", file=sys.stderr, flush=True)
        done = subprocess.run(argv, capture_output=True, text=True, env=env, check=False)
        if done.returncode != 0:
            raise SystemExit(f"seqq compare failed:\n{done.stderr[-3000:]}")
        out = json.loads(done.stdout)
        client = MlflowClient(f"sqlite:///{home / 'mlflow.db'}")
        results: dict[str, Any] = {}
        length = None
        for run in out["runs"]:
            full = read_result(client, run["job_id"], tmp)
            results.setdefault(run["model"], {"runs": []})["runs"].append(run_figures(full))
            length = full.sample_length or length
        for entry in results.values():
            entry["summary"] = spreads(entry["runs"])
    return {
        "bench": "quality",
        "corpus": corpus,
        "host": common.describe_host(),
        "budget_s": parse_duration(budget),
        "seeds": out["seeds"],
        "sample_length": length,
        "models": results,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--quick", action="store_true", help="12 s per model (three models in under a minute)"
    )
    parser.add_argument("--budget", default=None, help="training time per model (default 10m)")
    parser.add_argument("--models", default="lstm,rnn,gru")
    parser.add_argument(
        "--seeds", type=int, default=None, help="seeds per model, the same for all (3; quick 1)"
    )
    parser.add_argument("--report", default=None, help="also write the comparison report here")
    common.add_data_option(parser)
    common.add_output_options(parser)
    args = parser.parse_args()
    if common.render_saved(args):
        return
    budget = args.budget or ("12s" if args.quick else "10m")
    seeds = args.seeds or (1 if args.quick else 3)
    result = measure(args.models, budget, seeds, args.data, args.report)
    result["quick"] = bool(args.quick)
    if not args.json:
        for model, entry in result["models"].items():
            for run in entry["runs"]:
                print(f"\n{model} seed {run['seed']}: validation curve")
                for point in run["curve"]:
                    print(
                        f"  step {point['step']:>6}  t {point['time_s']:>7.1f}s  "
                        f"val {point['val_loss']:.4f}"
                    )
    common.emit(result, args)


if __name__ == "__main__":
    main()
