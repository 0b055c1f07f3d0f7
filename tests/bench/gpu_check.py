"""`make gpu-check`: the one command for whoever has an NVIDIA GPU; prints one JSON summary.

    .venv/bin/python tests/bench/gpu_check.py [--out FILE] [--redis-db N] [--steps N] [--rounds R]

Three checks, each timed and reported whether or not the others pass (the exit code is 1 when
any fails), sized to finish in about 10 minutes on one GPU:

1. `gpu_tests`: the GPU unit tests (tests/test_gpus.py, and every test marked `cuda`, which
   must run, not skip);
2. `worker_job`: one job through a real `seqq worker --gpus all` with `device: cuda`, Redis from
   scripts/ensure-redis.sh, a SQLite MLflow store in a temporary SEQQ_HOME; the job must end
   FINISHED with its `seqq.device` tag naming the GPU;
3. `train_overhead`: `tests/bench/train_overhead.py --device cuda --json`: seqq against a bare
   cuDNN loop, bf16 beside bf16 and fp32 beside fp32.

The summary goes to stdout and to `--out` (default: $SEQQ_GPU_CHECK_OUT, if set), so a remote
runner can collect it. Without a usable GPU it stops at once with one line saying what is
missing (no `nvidia-smi`, or a torch that sees no CUDA device) and exit code 2.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

NO_GPU_EXIT = 2
# Seconds each check may take before it counts as failed (a hang must not eat the budget).
LIMITS = {"gpu_tests": 180, "worker_job": 240, "train_overhead": 330}


def missing_driver(which: Callable[[str], str | None] = shutil.which) -> str | None:
    """Why this machine has no NVIDIA GPU to use, in one line; None when it has a driver.
    Needs no torch: `make gpu-check` asks this before it installs anything."""
    if which("nvidia-smi") is None:
        return "gpu-check: no nvidia-smi on PATH: this machine has no NVIDIA driver (or GPU)"
    return None


def missing_gpu(which: Callable[[str], str | None] = shutil.which) -> str | None:
    """Why this machine cannot run the check, in one line; None when it can."""
    reason = missing_driver(which)
    if reason:
        return reason
    import torch

    if not torch.cuda.is_available():
        build = f"CUDA {torch.version.cuda}" if torch.version.cuda else "a CPU-only build"
        return (
            f"gpu-check: torch {torch.__version__} ({build}) sees no CUDA device; install a "
            "CUDA build of torch in .venv (e.g. TORCH_PIN with --index-url) and check nvidia-smi"
        )
    return None


def run(argv: list[str], env: dict[str, str], timeout: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        argv, env=env, cwd=REPO, capture_output=True, text=True, timeout=timeout, check=False
    )


def gpu_tests(env: dict[str, str]) -> dict[str, Any]:
    py = [sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider"]
    out: dict[str, Any] = {}
    for name, args in (("test_gpus", ["tests/test_gpus.py"]), ("cuda", ["-m", "cuda", "tests"])):
        done = run([*py, *args], env, LIMITS["gpu_tests"])
        summary = done.stdout.strip().splitlines()[-1] if done.stdout.strip() else ""
        out[name] = summary
        if done.returncode != 0:
            raise RuntimeError(f"pytest {' '.join(args)}: {summary}\n{done.stdout[-2000:]}")
        if name == "cuda" and ("skipped" in summary or "passed" not in summary):
            raise RuntimeError(f"the cuda-marked tests did not all run on this GPU: {summary}")
    return out


def worker_job(env: dict[str, str], redis_db: int) -> dict[str, Any]:
    from shared import names
    from tests.helpers import TINY, Worker, base_env, seqq_json

    subprocess.run(["bash", "scripts/ensure-redis.sh"], cwd=REPO, check=True, timeout=120)
    with tempfile.TemporaryDirectory(prefix="seqq-gpu-check-") as tmp:
        home = Path(tmp)
        job_env = base_env(home, SEQQ_BROKER_URL=f"redis://127.0.0.1:6379/{redis_db}")
        import redis

        redis.Redis.from_url(job_env["SEQQ_BROKER_URL"]).flushdb()
        worker = Worker(job_env, home / "worker.log", ["--gpus", "all"])
        try:
            worker.wait_ready(timeout=120)
            started = time.monotonic()
            job = seqq_json(
                ["submit", *TINY, "--device", "cuda", "--wait"], job_env, LIMITS["worker_job"]
            )
            seconds = time.monotonic() - started
            if job.get("status") != "FINISHED":
                raise RuntimeError(f"job ended {job.get('status')}: {worker.log()[-2000:]}")
            from mlflow import MlflowClient

            tags = MlflowClient(f"sqlite:///{home / 'mlflow.db'}").get_run(job["job_id"]).data.tags
            device = tags.get(names.TAG_DEVICE, "")
            if "cpu" in device.lower() or not device:
                raise RuntimeError(f"the job ran on {device!r}, not on the GPU")
            return {"job_id": job["job_id"], "device": device, "submit_to_finished_s": seconds}
        finally:
            worker.stop()


def train_overhead(env: dict[str, str], steps: int, rounds: int) -> dict[str, Any]:
    argv = [sys.executable, "tests/bench/train_overhead.py", "--device", "cuda", "--json"]
    argv += ["--steps", str(steps), "--rounds", str(rounds)]
    done = run(argv, env, LIMITS["train_overhead"])
    if done.returncode != 0:
        raise RuntimeError(f"train_overhead.py failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout)


def check(name: str, summary: dict[str, Any], body: Callable[[], Any]) -> None:
    """Run one check into the summary: its result or its error, and its seconds."""
    started = time.monotonic()
    print(f"gpu-check: {name} ...", file=sys.stderr, flush=True)
    try:
        summary[name] = {"ok": True, "result": body()}
    except Exception as exc:  # every check is reported, whatever the others did
        summary[name] = {"ok": False, "error": f"{exc.__class__.__name__}: {exc}"}
    summary[name]["seconds"] = round(time.monotonic() - started, 1)
    print(f"gpu-check: {name} {'ok' if summary[name]['ok'] else 'FAILED'}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--out",
        type=Path,
        default=os.environ.get("SEQQ_GPU_CHECK_OUT") or None,
        help="also write the JSON summary here (default: $SEQQ_GPU_CHECK_OUT)",
    )
    parser.add_argument("--redis-db", type=int, default=13, help="Redis database (flushed)")
    parser.add_argument("--steps", type=int, default=100, help="overhead bench: steps/segment")
    parser.add_argument("--rounds", type=int, default=5, help="overhead bench: rounds")
    parser.add_argument(
        "--preflight", action="store_true", help="only check for an NVIDIA driver (no torch)"
    )
    args = parser.parse_args(argv)
    reason = missing_driver() if args.preflight else missing_gpu()
    if reason:
        print(reason, file=sys.stderr)
        return NO_GPU_EXIT
    if args.preflight:
        return 0
    import torch

    env = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "true"}
    summary: dict[str, Any] = {
        "gpu": torch.cuda.get_device_name(),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version(),
    }
    check("gpu_tests", summary, lambda: gpu_tests(env))
    check("worker_job", summary, lambda: worker_job(env, args.redis_db))
    check("train_overhead", summary, lambda: train_overhead(env, args.steps, args.rounds))
    summary["ok"] = all(summary[n]["ok"] for n in ("gpu_tests", "worker_job", "train_overhead"))
    text = json.dumps(summary)
    if args.out:
        args.out.write_text(text + "\n", encoding="utf-8")
    print(text)
    return 0 if summary["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
