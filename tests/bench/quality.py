"""Quality at equal wall-clock time: the default LSTM, RNN and GRU specs on a reference text.

    .venv/bin/python tests/bench/quality.py [--json] [--markdown] [--quick] [--budget 10m]
        [--models lstm,rnn,gru] [--data PATH]
    .venv/bin/python tests/bench/quality.py --markdown-from docs/bench/quality.json

Runs `seqq compare --local` with the *default* spec (only the data, the time budget, a finer
evaluation interval and a checkpoint at every evaluation are set; neither changes what is
trained) on `--data` (default: the built-in corpus; the output names it by sha256). For each
model it reports, from the same run:

- the best validation loss and its step, and the test loss of THOSE weights (the checkpoint
  taken at that evaluation, scored here on the test windows exactly as the worker scores them):
  the held-out pair a reader compares;
- the final validation loss and the final weights' test loss: what the run itself reports. The
  bench recomputes the latter from the `final` checkpoint and stops if it differs, so the
  test-at-best figure is known to be computed the worker's way;
- the validation curve against training time and steps.

Target (issue 3): the default LSTM reaches <= 1.50 nats/char within 10 minutes on 2 CPU cores.
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
EVAL_EVERY = 100
# The recomputed final test loss must equal the run's: same weights, windows and function.
SAME_LOSS = 1e-4


def test_loss_of(client: Any, run_id: str, folder: str, corpus: dict[str, Any], tmp: Path) -> float:
    """Test loss of the run's checkpoint `folder`, computed as the worker's Trainer does."""
    import torch

    from shared import names
    from shared.spec import TrainSpec
    from worker import checkpoint
    from worker.data import eval_windows, load_corpus
    from worker.train import evaluate

    artifact = f"{names.ARTIFACT_CHECKPOINTS}/{folder}/{names.CHECKPOINT_FILE}"
    path = Path(client.download_artifacts(run_id, artifact, str(tmp / run_id / folder)))
    payload = checkpoint.load(path)
    model, _ = checkpoint.restore_model(payload)
    spec = TrainSpec.model_validate(payload["spec"])
    data = load_corpus(Path(corpus["path"]), corpus["sha256"], spec.data, tmp / "cache")
    windows = eval_windows(
        data.split("test"), spec.data.seq_len, spec.optim.batch_size, spec.run.eval_batches
    )
    return evaluate(model, torch.from_numpy(windows), spec.optim.batch_size)


def measure(models: str, budget: str, data: str, report: str | None) -> dict[str, Any]:
    from mlflow import MlflowClient

    from scheduler.compare import read_result
    from shared import names
    from shared.spec import parse_duration

    corpus = common.describe_corpus(data)
    print(common.corpus_line(corpus), file=sys.stderr, flush=True)
    with tempfile.TemporaryDirectory(prefix="seqq-quality-") as tmp:
        home = Path(tmp)
        env = common.isolated_env(home)
        argv = [SEQQ, "compare", "--local", "--models", models, "--data", corpus["path"]]
        argv += ["--time-budget", budget, "--eval-every", str(EVAL_EVERY)]
        # A checkpoint at every evaluation, so the best one's weights can be scored on test.
        argv += ["--checkpoint-every", str(EVAL_EVERY), "--experiment", "quality", "--json"]
        if report:
            argv += ["--report", report]
        print(f"running: {' '.join(argv)}", file=sys.stderr, flush=True)
        done = subprocess.run(argv, capture_output=True, text=True, env=env, check=False)
        if done.returncode != 0:
            raise SystemExit(f"seqq compare failed:\n{done.stderr[-3000:]}")
        out = json.loads(done.stdout)
        client = MlflowClient(f"sqlite:///{home / 'mlflow.db'}")
        results = {}
        for model, summary in out["models"].items():
            full = read_result(client, summary["job_id"], tmp)
            best = min(range(len(full.curve_steps)), key=lambda i: full.curve_val_loss[i])
            best_step, last_step = full.curve_steps[best], full.curve_steps[-1]
            best_folder = (
                names.FINAL_CHECKPOINT
                if best_step == last_step
                else names.checkpoint_dir_name(best_step)
            )
            final_test = test_loss_of(client, full.job_id, names.FINAL_CHECKPOINT, corpus, home)
            if abs(final_test - summary["test_loss"]) > SAME_LOSS:
                raise SystemExit(
                    f"{model}: the final checkpoint scores {final_test:.5f} on test, the run "
                    f"reports {summary['test_loss']:.5f}: this bench does not score as the worker"
                )
            results[model] = {
                "best_val_loss": full.curve_val_loss[best],
                "best_val_step": best_step,
                "test_loss_at_best": test_loss_of(client, full.job_id, best_folder, corpus, home),
                "final_val_loss": full.curve_val_loss[-1],
                "test_loss_final": summary["test_loss"],
                "steps": summary["steps"],
                "chars_per_s": summary["chars_per_s"],
                "curve": [
                    {"step": s, "time_s": round(t, 1), "val_loss": round(v, 4)}
                    for s, t, v in zip(
                        full.curve_steps, full.curve_time_s, full.curve_val_loss, strict=True
                    )
                ],
            }
    return {
        "bench": "quality",
        "corpus": corpus,
        "host": common.describe_host(),
        "budget_s": parse_duration(budget),
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
    parser.add_argument("--report", default=None, help="also write the comparison report here")
    common.add_data_option(parser)
    common.add_output_options(parser)
    args = parser.parse_args()
    if common.render_saved(args):
        return
    budget = args.budget or ("12s" if args.quick else "10m")
    result = measure(args.models, budget, args.data, args.report) | {"quick": bool(args.quick)}
    if not args.json:
        for model, r in result["models"].items():
            print(f"\n{model}: validation curve")
            for point in r["curve"]:
                print(
                    f"  step {point['step']:>6}  t {point['time_s']:>7.1f}s  "
                    f"val {point['val_loss']:.4f}"
                )
    common.emit(result, args)


if __name__ == "__main__":
    main()
