"""The tuned comparison: each cell tuned at equal compute, then its default and tuned specs over
the seeds at equal wall time (`seqq compare --tune`, issue 12 item 2's benchmark).

    .venv/bin/python tests/bench/tuned_compare.py [--json] [--markdown] [--quick]
        [--budget 20m] [--trials 8] [--seeds 2] [--models lstm,rnn] [--data PATH]
    .venv/bin/python tests/bench/tuned_compare.py --markdown-from docs/bench/tuned_compare.json
    .venv/bin/python tests/bench/tuned_compare.py ... --raw out.json   # also keep compare's JSON
    .venv/bin/python tests/bench/tuned_compare.py ... --from-raw out.json --json  # rebuild from it

Runs `seqq compare --local --tune SPACE --budget B --seeds S` as a user would, on `--data`
(default: the built-in corpus; the output names it by sha256), with the space below: every model
gets the same B seconds of sweep training time (B / trials per trial, ASHA pruning), then its
default spec and its tuned spec train over the same S seeds for B / trials seconds each. Reported
per model and variant, mean ± standard deviation over the seeds: the best validation loss, the
test loss of the best checkpoint's weights (the held-out figure), their mean (the loss on the
text's last 10%, nanoGPT's validation split), steps, chars/s and the judge's bits/char on the
samples; per model the values the sweep chose and how its trials ended.

Run it alone: two torch processes on two cores slow each other many times over, and the runs
are timed. A 20-minute budget with 8 trials and 2 seeds takes about 65 minutes here.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from tests.bench import common  # noqa: E402

SEQQ = str(Path(sys.executable).parent / "seqq")
# The base is the default spec but for how often it evaluates (a trial of a minute or two must
# report to its pruner more than once) and no intermediate samples or checkpoints (the final and
# best ones are still written). The space is the one the README's example searches.
SPACE = """\
run: {{eval_every: {eval_every}, sample_every: 1000000, checkpoint_every: 1000000, experiment: tuned}}
space:
  optim.lr: {{log: [3.0e-4, 3.0e-2]}}
  model.hidden_size: [128, 256, 512]
  model.dropout: {{range: [0.0, 0.3]}}
sweep: {{trials: {trials}, sampler: tpe, pruner: asha, seed: 0}}
"""
FIGURES = ("best_val_loss", "test_loss_best", "steps", "chars_per_s")
SAMPLE_BPC = "sample_ref_bpc"


def measure(args: argparse.Namespace, budget: str, trials: int, seeds: int) -> dict[str, Any]:
    corpus = common.describe_corpus(args.data)
    print(common.corpus_line(corpus), file=sys.stderr, flush=True)
    eval_every = 10 if args.quick else 50
    with tempfile.TemporaryDirectory(prefix="seqq-tuned-") as tmp:
        home = Path(tmp)
        space = home / "space.yaml"
        space.write_text(SPACE.format(eval_every=eval_every, trials=trials))
        env = common.isolated_env(home)
        argv = [SEQQ, "compare", "--local", "--models", args.models, "--data", corpus["path"]]
        argv += ["--tune", str(space), "--budget", budget, "--seeds", str(seeds), "--json"]
        if args.quick:
            argv += ["--hidden-size", "32", "--num-layers", "1", "--seq-len", "32"]
        print(f"running: {' '.join(argv)}", file=sys.stderr, flush=True)
        # Progress goes straight to the terminal (an hour without a line is no way to watch a
        # benchmark); the JSON is kept whole before anything reads it, so a fault in the
        # summary below costs a re-read, not the hour (`--raw`).
        done = subprocess.run(argv, stdout=subprocess.PIPE, text=True, env=env, check=False)
        if args.raw is not None:
            args.raw.write_text(done.stdout)
        if done.returncode != 0:
            raise SystemExit(f"seqq compare --tune failed (exit {done.returncode}); see above")
        out = json.loads(done.stdout)
    return result_of(out, corpus, args.quick, budget, seeds)


def last10(runs: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The best weights' loss on the corpus's last 10% over the runs (mean, std, extremes): the
    validation and test splits are its two equal halves (the default split), so their mean is
    that loss, the figure nanoGPT reports as its validation loss."""
    from dataclasses import asdict

    from scheduler.result import Spread

    pairs = [(run.get("best_val_loss"), run.get("test_loss_best")) for run in runs]
    values = [(v + t) / 2 for v, t in pairs if v is not None and t is not None]
    return asdict(Spread.of(values)) if values else None


def first_rung_s(trial_budget_s: float, trials: int) -> float | None:
    """ASHA's first rung in seconds of training, as seqq sets it for these timed trials (each
    next rung 5 times further); None where its rungs are steps."""
    import yaml

    from shared.space import parse_sweep
    from shared.study import time_rungs

    raw = yaml.safe_load(SPACE.format(eval_every=50, trials=trials))
    raw["optim"] = {"time_budget": trial_budget_s}
    return time_rungs(parse_sweep(raw))


def result_of(
    out: dict[str, Any], corpus: dict[str, Any], quick: bool, budget: str, seeds: int
) -> dict[str, Any]:
    """The benchmark's result from `seqq compare --tune --json`'s output."""
    from shared.spec import parse_duration

    tune = out["tune"]
    models = {}
    for model, record in tune["models"].items():
        variants = {}
        for variant in ("default", "tuned"):
            summary = out["summary"].get(f"{model} {variant}")
            if summary is None:  # its sweep completed no trial: no tuned runs
                continue
            figures = {figure: summary[figure] for figure in FIGURES}
            figures[SAMPLE_BPC] = summary["text_quality"].get(SAMPLE_BPC)
            runs = [run for run in out["runs"] if run["model"] == f"{model} {variant}"]
            figures["last10_loss_best"] = last10(runs)
            variants[variant] = figures
        models[model] = {
            "variants": variants,
            "default_values": record["default_values"],
            "tuned_values": record["tuned_values"],
            "default_won": record.get("default_won", False),  # tuned = the default's runs
            "sweep_best_val_loss": (record["best"] or {}).get("value"),
            "counts": record["counts"],
        }
    return {
        "bench": "tuned_compare",
        "corpus": {k: v for k, v in corpus.items() if k != "path"},
        "host": common.describe_host(),
        "quick": bool(quick),
        "budget_s": parse_duration(budget),
        "trial_budget_s": tune["trial_budget_s"],
        "trials": tune["trials"],
        "seeds": seeds,
        "asha_first_rung_s": first_rung_s(tune["trial_budget_s"], tune["trials"]),
        # Whether each sweep's trial 0 was the model's default spec (try_base, since it exists).
        "default_as_trial": any(
            row.get("base") for record in tune["models"].values() for row in record["trials"]
        ),
        "space": SPACE.format(eval_every=0, trials=0)
        .split("space:\n")[1]
        .split("sweep:")[0]
        .strip()
        .splitlines(),
        "models": models,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="tiny models, a minute or two")
    parser.add_argument("--budget", default=None, help="sweep training time per model (20m)")
    parser.add_argument("--trials", type=int, default=None, help="trials per sweep (8)")
    parser.add_argument("--seeds", type=int, default=None, help="seeds per final spec (2)")
    parser.add_argument("--models", default="lstm,rnn")
    parser.add_argument(
        "--raw", type=Path, default=None, help="also save `seqq compare --json`'s output here"
    )
    parser.add_argument(
        "--from-raw",
        type=Path,
        default=None,
        metavar="FILE",
        help="build the result from a saved --raw output instead of measuring (same --budget, "
        "--seeds, --data and --quick as the run that wrote it)",
    )
    common.add_data_option(parser)
    common.add_output_options(parser)
    args = parser.parse_args()
    if common.render_saved(args):
        return
    budget = args.budget or ("40s" if args.quick else "20m")
    trials = args.trials or (4 if args.quick else 8)
    seeds = args.seeds or 2
    if args.from_raw is not None:
        out = json.loads(args.from_raw.read_text())
        corpus = common.describe_corpus(args.data)
        result = result_of(out, corpus, args.quick, budget, seeds)
    else:
        result = measure(args, budget, trials, seeds)
    common.emit(result, args)


if __name__ == "__main__":
    main()
