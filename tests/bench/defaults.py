"""How the default spec's regularisation was chosen: a sweep over dropout, weight decay and size,
then the current default beside the sweep's choice at several training budgets (issue 12 item 5).

    .venv/bin/python tests/bench/defaults.py [--json] [--markdown] [--quick] [--data PATH]
        [--model lstm] [--trial-budget 10m] [--trials 12] [--budgets 2m,10m,30m] [--seeds 1]
        [--values '{"model.dropout": 0.1, ...}'] [--merge saved.json]
        [--space '{"optim.lr": {"log": [0.003, 0.015]}, ...}'] [--sampler grid] [--pruner none]
    .venv/bin/python tests/bench/defaults.py --markdown-from docs/bench/defaults.json

Part 1, unless `--values` gives the candidate: one `seqq sweep --local` over the default spec's
model.dropout, optim.weight_decay and model.hidden_size (or `--space`), every trial
`--trial-budget` of training (TPE, ASHA, today's default as trial 0; a grid has no trial 0, but
may hold today's values as one of its points), as a user would run it. Its best trial's values
are the candidate (today's own, when nothing beat them).

Part 2: the current default and the candidate each trained (`seqq compare --local`, the same
seeds) for every budget in `--budgets`; at the trial budget the sweep's own trials are the check
(the trial that trained today's default and the best trial, at the first seed). Per budget and
spec: steps, the best validation loss and its step, the final validation loss, how much worse
the end is than the best (`final - best`: the default "ends worse than its best" when this is
well above zero), and the test loss of the best and of the final weights. The aim is a default
whose end is no worse than its best at every budget from 2 to 30 minutes, with the best test
loss no worse than today's default.

Run it alone: two torch processes on two cores slow each other many times over. With the
defaults (a 12-trial sweep of 10-minute trials, then two specs at 2, 10 and 30 minutes) it takes
about two hours here; `--values` skips the sweep, `--budgets` narrows the check, and `--merge`
adds a later run's checks (say `--budgets 30m`) to a saved result.
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
from tests.bench.quality import run_figures, spreads  # noqa: E402
from tests.bench.render import default_trial  # noqa: E402

SEQQ = str(Path(sys.executable).parent / "seqq")
# What the sweep searches: the regularisation the issue names and the size it trades against.
SPACE = {
    "model.dropout": {"range": [0.0, 0.3]},
    "optim.weight_decay": {"log": [1.0e-3, 3.0e-1]},
    "model.hidden_size": [128, 256, 512],
}
# What the result keeps of each sweep trial (`seqq sweep --json`'s rows).
TRIAL_KEYS = ("number", "state", "values", "best_val_loss", "steps", "pruned_step", "base")
QUICK_SPEC = {"model.hidden_size": 32, "model.num_layers": 1, "data.seq_len": 32}
QUICK_SPACE = {**SPACE, "model.hidden_size": [16, 32]}


def nest(dotted: dict[str, Any]) -> dict[str, Any]:
    """{"model.dropout": 0.1} -> {"model": {"dropout": 0.1}}: a spec file's groups."""
    from shared.spec import set_dotted

    out: dict[str, Any] = {}
    for key, value in dotted.items():
        set_dotted(out, key, value)
    return out


def seqq_json(argv: list[str], env: dict[str, str]) -> dict[str, Any]:
    """One `seqq ... --json` command, its progress on this terminal, its JSON returned."""
    print(f"running: seqq {' '.join(argv)}", file=sys.stderr, flush=True)
    done = subprocess.run([SEQQ, *argv], stdout=subprocess.PIPE, text=True, env=env, check=False)
    if done.returncode != 0:
        raise SystemExit(f"seqq {argv[0]} failed (exit {done.returncode}); see above")
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def run_sweep(
    home: Path, env: dict[str, str], args: argparse.Namespace, corpus: dict[str, Any]
) -> dict[str, Any]:
    """Part 1: the sweep as a user runs it; its best trial's values and how its trials ended."""
    base: dict[str, Any] = dict(QUICK_SPEC) if args.quick else {}
    base |= {
        "model.cell": args.model,
        "data.dataset": corpus["path"],
        "optim.time_budget": seconds(args.trial_budget),
        "run.eval_every": 20 if args.quick else 100,
        "run.sample_every": 1_000_000,
        "run.checkpoint_every": 1_000_000,
        "run.experiment": "defaults-sweep",
    }
    space = json.loads(args.space) if args.space else QUICK_SPACE if args.quick else SPACE
    sweep_file = nest(base) | {
        "space": space,
        # Today's default is trial 0 (try_base): it is replaced only by values that beat it.
        "sweep": {
            "trials": args.trials,
            "sampler": args.sampler,
            "pruner": args.pruner,
            "seed": 0,
            "try_base": True,
        },
    }
    path = home / "sweep.json"
    path.write_text(json.dumps(sweep_file))
    record = seqq_json(["sweep", "-f", str(path), "--local", "--json"], env)
    best = record.get("best")
    if not best:
        raise SystemExit("the sweep completed no trial: no candidate to check")
    # At the trial budget the check is the sweep itself: its base trial is today's default and
    # its best trial the chosen values, each a whole run of that budget at the first seed.
    rows = {row["number"]: row for row in record["trials"]}
    base_row = default_trial(record["trials"], default_values(list(space), args.quick))
    best_is_base = base_row is not None and base_row["number"] == best["number"]
    pairs = [("default", base_row)] + ([] if best_is_base else [("chosen", rows[best["number"]])])
    trial_checks = [
        figures_check(home, name, [row["run_id"]], seconds(args.trial_budget))
        | {"source": f"sweep trial {row['number']}"}
        for name, row in pairs
        if row is not None and row["state"] == "COMPLETE"
    ]
    return {
        "trial_budget_s": seconds(args.trial_budget),
        "trials": args.trials,
        "pruner": args.pruner,
        "sampler": args.sampler,
        "space": space,
        "best_value": best["value"],
        "best_values": best["values"],
        "best_is_base": best_is_base,
        "counts": record.get("counts"),
        "trial_rows": [
            {key: row.get(key) for key in TRIAL_KEYS} for row in record.get("trials", [])
        ],
        "checks": trial_checks,
    }


def seconds(duration: str) -> float:
    """A duration flag ('10m') in seconds."""
    from shared.spec import parse_duration

    value = parse_duration(duration)
    if value is None:
        raise SystemExit(f"not a duration: {duration!r}")
    return value


def figures_check(home: Path, name: str, run_ids: list[str], budget_s: float) -> dict[str, Any]:
    """One spec at one budget: its runs' figures read from MLflow, and their spread."""
    from mlflow import MlflowClient

    from scheduler.result import Spread, read_result

    client = MlflowClient(f"sqlite:///{home / 'mlflow.db'}")
    with tempfile.TemporaryDirectory(prefix="seqq-defaults-read-") as tmp:
        runs = [run_figures(read_result(client, run_id, tmp)) for run_id in run_ids]
    for run in runs:
        pair = (run["final_val_loss"], run["best_val_loss"])
        run["end_gap"] = None if None in pair else pair[0] - pair[1]
    summary = spreads(runs)
    gaps = [run["end_gap"] for run in runs if run["end_gap"] is not None]
    summary["end_gap"] = asdict(Spread.of(gaps)) if gaps else None
    return {
        "spec": name,
        "budget_s": budget_s,
        "host": common.describe_host(),
        "runs": runs,
        "summary": summary,
    }


def check(
    home: Path,
    env: dict[str, str],
    args: argparse.Namespace,
    corpus: dict[str, Any],
    name: str,
    values: dict[str, Any],
    budget: str,
) -> dict[str, Any]:
    """Part 2, one cell: `values` over the default spec, trained `budget` over the seeds, set as
    the sweep's trials are (no samples or checkpoints but the final and best ones)."""
    spec = (dict(QUICK_SPEC) if args.quick else {}) | values
    spec |= {"run.sample_every": 1_000_000, "run.checkpoint_every": 1_000_000}
    path = home / f"{name}.json"
    path.write_text(json.dumps(nest(spec)))
    argv = ["compare", "--local", "-f", str(path), "--models", args.model, "--data"]
    argv += [corpus["path"], "--time-budget", budget, "--seeds", str(args.seeds)]
    argv += ["--eval-every", str(20 if args.quick else 100), "--experiment", "defaults", "--json"]
    out = seqq_json(argv, env)
    run_ids = [run["job_id"] for run in out["runs"]]
    return figures_check(home, name, run_ids, seconds(budget))


def default_values(fields: list[str], quick: bool) -> dict[str, Any]:
    """Today's default of each searched field, read from the spec itself (--quick's own size)."""
    from shared.spec import TrainSpec, get_dotted

    spec = TrainSpec()
    return {d: QUICK_SPEC[d] if quick and d in QUICK_SPEC else get_dotted(spec, d) for d in fields}


def measure(args: argparse.Namespace) -> dict[str, Any]:
    corpus = common.describe_corpus(args.data)
    print(common.corpus_line(corpus), file=sys.stderr, flush=True)
    with tempfile.TemporaryDirectory(prefix="seqq-defaults-") as tmp:
        home = Path(tmp)
        env = common.isolated_env(home)
        sweep, checks = None, []
        if args.values is not None:
            chosen = json.loads(args.values)
        else:
            sweep = run_sweep(home, env, args, corpus)
            chosen = sweep["best_values"]
            checks = sweep.pop("checks")
        current = default_values(list(chosen), args.quick)
        done = {(c["spec"], c["budget_s"]) for c in checks}
        checks += [
            check(home, env, args, corpus, name, values, budget)
            for budget in args.budgets.split(",")
            for name, values in (("default", current), ("chosen", chosen))
            if (name, seconds(budget)) not in done
            and not (name == "chosen" and chosen == current)  # the default won: one spec
            and name in args.specs.split(",")
        ]
        checks.sort(key=lambda c: (c["budget_s"], c["spec"] != "default"))
    return {
        "bench": "defaults",
        "quick": bool(args.quick),
        "corpus": {k: v for k, v in corpus.items() if k != "path"},
        "host": common.describe_host(),
        "model": args.model,
        "seeds": args.seeds,
        "sweep": sweep,
        "candidates": {"default": current, "chosen": chosen},
        "checks": checks,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="tiny models, a few minutes")
    parser.add_argument("--model", default="lstm", help="the cell whose default is chosen")
    parser.add_argument("--trial-budget", default=None, help="training time per trial (10m)")
    parser.add_argument("--trials", type=int, default=None, help="sweep trials (12)")
    parser.add_argument("--budgets", default=None, help="check budgets (2m,10m,30m)")
    parser.add_argument("--seeds", type=int, default=1, help="seeds per checked spec (1)")
    parser.add_argument(
        "--specs",
        default="default,chosen",
        help="which specs the budget checks train: default, chosen or both (default both)",
    )
    parser.add_argument(
        "--space",
        default=None,
        metavar="JSON",
        help="search this space instead (a sweep file's `space`, as JSON): e.g. the learning "
        "rate beside size and dropout, for the nanoGPT target",
    )
    parser.add_argument(
        "--sampler",
        default="tpe",
        choices=["tpe", "random", "grid"],
        help="the sweep's sampler (tpe); grid visits every point of a space of choices",
    )
    parser.add_argument(
        "--pruner",
        default="asha",
        choices=["asha", "median", "none"],
        help="the sweep's pruner (asha); none trains every trial its whole budget",
    )
    parser.add_argument(
        "--merge",
        type=Path,
        default=None,
        metavar="FILE",
        help="check the saved result's chosen values (no sweep) and add these checks to it",
    )
    parser.add_argument(
        "--values",
        default=None,
        metavar="JSON",
        help="skip the sweep and check these dotted values against today's default",
    )
    common.add_data_option(parser)
    common.add_output_options(parser)
    args = parser.parse_args()
    if common.render_saved(args):
        return
    args.trial_budget = args.trial_budget or ("15s" if args.quick else "10m")
    args.trials = args.trials or (3 if args.quick else 12)
    args.budgets = args.budgets or ("10s,20s" if args.quick else "2m,10m,30m")
    if args.merge is not None:
        saved = json.loads(args.merge.read_text())
        args.values = args.values or json.dumps(saved["candidates"]["chosen"])
        result = merge(saved, measure(args))
    else:
        result = measure(args)
    common.emit(result, args)


def merge(saved: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """A saved result with this run's checks added (a check of the same spec and budget is
    replaced): each check is paired within the run that measured it, and names its host."""
    if saved["candidates"] != new["candidates"] or saved["corpus"] != new["corpus"]:
        raise SystemExit("--merge: the saved result checked other values or another corpus")
    measured = {(c["spec"], c["budget_s"]) for c in new["checks"]}
    kept = [c for c in saved["checks"] if (c["spec"], c["budget_s"]) not in measured]
    checks = sorted([*kept, *new["checks"]], key=lambda c: (c["budget_s"], c["spec"] != "default"))
    return saved | {"checks": checks, "sweep": new["sweep"] or saved["sweep"]}


if __name__ == "__main__":
    main()
