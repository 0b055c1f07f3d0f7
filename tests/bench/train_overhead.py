"""Training-loop overhead: seqq's `Trainer` against a bare PyTorch loop, side by side.

Run on demand (not part of the test suite):

    .venv/bin/python tests/bench/train_overhead.py [--json] [--quick] [--steps N] [--rounds R]

For each cell (LSTM, RNN, GRU) four loops train in ONE process, in segments of the same number
of steps, R rounds, each bare loop beside its seqq counterpart (see below):

* bare fp32:    embedding -> nn.LSTM/RNN/GRU -> linear, AdamW, grad clip 1.0, random windows,
                the loss summed on the device and read once per segment (written here);
* bare bf16:    the same under bf16 autocast (what bf16 alone buys on this CPU);
* seqq fp32:    `worker.train.Trainer` with a real `RunLogger` sending to a real `mlflow server`
                over HTTP (started here on 127.0.0.1: SQLite backend, proxied artifacts), the
                progress reporter of `seqq run` (`scheduler.cli.display.ProgressReporter`: a live
                Rich bar, to /dev/null), train-loss metrics every 10 steps (the default);
* seqq default: the same with `precision: auto` (bf16 autocast on a CPU with AVX512-BF16/AMX).

A seqq segment's time is `TrainResult.elapsed_s` of one `Trainer.run()`: the Trainer measures it
from the start of `run()` to the end of its step loop. It includes every step (batch sampling,
forward, backward, clip, AdamW), the loss read-back and metric queueing every 10 steps, the
reporter calls, and whatever the logger thread, the Rich refresh thread and the MLflow server
take from the cores meanwhile (metric batches over HTTP). It excludes what `run()` does after its
loop (final evaluation, sampling, final checkpoint, test evaluation: "tail") and waiting for the
logger to deliver the rest afterwards ("drain"); both are reported. No seqq thread runs during
bare segments: logger and live bar are created before and closed after each seqq segment. Each
segment continues the same Trainer (raising `optim.max_steps`), so both sides use a constant
learning rate without warm-up (a cosine schedule would restart every segment).

Checkpoints, evaluation and sampling happen at their default intervals (500/250/500 steps),
which 20-step segments never reach, so one of each is timed apart. The target ratio charges seqq
one checkpoint (torch.save, then the upload to the server, counted as if the step waited for it,
which it does not) per 500 steps: ratio = in-loop ratio / (1 + checkpoint share). Evaluation and
sampling are reported as their amortised share of a step (a bare loop that evaluates pays them
too). Each bare loop runs right beside the seqq loop it is compared with, the order alternating,
so slow drifts in a shared machine's speed hit both alike. Other processes' CPU use is measured
per segment (/proc/stat): a round's four segments of a cell are redone (up to --redo times) when
others took over 0.1 cores during one of them. Medians and per-round pairing limit, but cannot
remove, a shared machine's noise.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

REPO = Path(__file__).resolve().parents[2]
CORPUS = REPO.parent / "shared" / "data" / "tinyshakespeare.txt"
CELLS = ("lstm", "rnn", "gru")
LOOPS = ("bare_fp32", "seqq_fp32", "bare_bf16", "seqq_default")
WARMUP_STEPS = 3
SEED = 1337
LR, WEIGHT_DECAY, BETAS, GRAD_CLIP = 3e-3, 0.01, (0.9, 0.99), 1.0  # seqq's defaults
EVAL_EVERY, SAMPLE_EVERY, CHECKPOINT_EVERY, EVAL_BATCHES = 250, 500, 500, 8  # seqq's defaults
TARGET_RATIO, TARGET_DEFAULT_SPEEDUP = 0.97, 1.8
# A round's three segments of a cell are redone (up to --redo times in all) when other
# processes used more than this many cores during one of them: 2 busy torch threads on 2 cores
# slow down far more than the share taken (each parallel region waits for a preempted thread).
BUSY_CORES = 0.1


@dataclass(frozen=True)
class Plan:
    """Sizes and segment counts of one benchmark run."""

    steps: int
    rounds: int
    hidden: int = 256
    embedding: int = 64
    layers: int = 2
    batch: int = 64
    seq: int = 128
    quick: bool = False


# -- the MLflow server and CPU accounting ----------------------------------------------------
class MlflowServer:
    """A real `mlflow server` on a free local port, in its own process group."""

    def __init__(self, tmp: Path) -> None:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = int(sock.getsockname()[1])
        self.url = f"http://127.0.0.1:{port}"
        self.log = tmp / "mlflow-server.log"
        env = dict(os.environ, MLFLOW_DISABLE_TELEMETRY="true", DO_NOT_TRACK="true")
        # MLflow 3's server also starts a job runner and seven huey consumers (GenAI jobs) seqq
        # never uses; on 2 cores they burn ~30 CPU-seconds after /health answers. Off here.
        env["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] = "false"
        args = f"--host 127.0.0.1 --port {port} --workers 1 --serve-artifacts".split()
        args += ["--backend-store-uri", f"sqlite:///{tmp / 'mlflow.db'}"]
        args += ["--artifacts-destination", str(tmp / "artifacts")]
        with self.log.open("wb") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "mlflow", "server", *args],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def wait_ready(self, deadline_s: float = 120) -> None:
        """Poll /health until it answers, then until the server is idle (done starting)."""
        deadline = time.monotonic() + deadline_s
        while True:
            if self.proc.poll() is not None:
                raise SystemExit(f"mlflow server exited:\n{self.log.read_text()[-3000:]}")
            if time.monotonic() > deadline:
                raise SystemExit(f"mlflow server not healthy after {deadline_s:.0f}s")
            try:
                with urllib.request.urlopen(f"{self.url}/health", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                time.sleep(0.25)
        while time.monotonic() < deadline:  # under 5% of a core over half a second
            before = self.cpu_s()
            time.sleep(0.5)
            if self.cpu_s() - before < 0.025:
                return

    def cpu_s(self) -> float:
        """User + system CPU seconds of the server's live processes."""
        total = 0
        for entry in os.scandir("/proc"):
            if entry.name.isdigit():
                try:
                    fields = Path(entry.path, "stat").read_text().rsplit(")", 1)[1].split()
                except OSError:
                    continue
                if int(fields[2]) == self.proc.pid:  # process group id
                    total += int(fields[11]) + int(fields[12])
        return total / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)


def own_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def machine_busy_s() -> float:
    """CPU seconds every process on the machine has used since boot (/proc/stat)."""
    fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]
    user, nice, system, _idle, _iowait, irq, softirq, steal = map(int, fields)
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def load_average() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


@dataclass
class Segment:
    chars_per_s: float
    timed_s: float
    span_s: float  # the whole segment, untimed parts included (the CPU figures cover this)
    cpu_s: float  # this process, all threads
    server_cpu_s: float
    other_cpu_s: float  # every other process on the machine
    tail_s: float = 0.0
    drain_s: float = 0.0


@dataclass
class LoopStats:
    segments: list[Segment] = field(default_factory=list)

    def median(self, attr: str = "chars_per_s") -> float:
        return statistics.median(getattr(s, attr) for s in self.segments)


def paired(a: LoopStats, b: LoopStats) -> list[float]:
    """Per round: a's chars/s over b's in the same round."""
    return [x.chars_per_s / y.chars_per_s for x, y in zip(a.segments, b.segments, strict=True)]


def segment_order(rnd: int) -> tuple[str, ...]:
    """Each bare loop runs right beside the seqq loop it is compared with (slow drifts of a
    shared machine's speed then hit both alike); who goes first alternates round by round."""
    fp32, bf16 = ("bare_fp32", "seqq_fp32"), ("bare_bf16", "seqq_default")
    if rnd % 2:
        fp32, bf16 = fp32[::-1], bf16[::-1]
    return fp32 + bf16 if rnd % 4 < 2 else bf16 + fp32


def paired_median(a: LoopStats, b: LoopStats) -> float:
    return statistics.median(paired(a, b))


def paired_range(a: LoopStats, b: LoopStats) -> tuple[float, float]:
    ratios = paired(a, b)
    return min(ratios), max(ratios)


# -- the two loops ---------------------------------------------------------------------------
class BareRNN(nn.Module):
    """Embedding -> recurrent cell -> linear; attribute names match CharRNN's weights."""

    def __init__(self, cell: str, vocab: int, plan: Plan) -> None:
        super().__init__()
        kind = {"lstm": nn.LSTM, "rnn": nn.RNN, "gru": nn.GRU}[cell]
        self.embedding = nn.Embedding(vocab, plan.embedding)
        self.rnn = kind(plan.embedding, plan.hidden, plan.layers, batch_first=True)
        self.head = nn.Linear(plan.hidden, vocab)

    def forward(self, ids: torch.Tensor) -> tuple[torch.Tensor, None]:
        return self.head(self.rnn(self.embedding(ids))[0]), None


class BareLoop:
    """The minimal hand-written loop: what training costs without any bookkeeping."""

    def __init__(self, cell: str, corpus: Any, plan: Plan, bf16: bool = False) -> None:
        from worker.model import CharRNN

        self.plan, self.vocab, self.bf16 = plan, corpus.vocab.size, bf16
        self.model = BareRNN(cell, self.vocab, plan)
        torch.manual_seed(SEED)  # the initial weights of the seqq model: one noise source fewer
        seqq_model = CharRNN(self.vocab, cell, plan.embedding, plan.hidden, plan.layers)
        self.model.load_state_dict(seqq_model.state_dict())
        self.params = list(self.model.parameters())
        self.opt = torch.optim.AdamW(self.params, lr=LR, weight_decay=WEIGHT_DECAY, betas=BETAS)
        self.ids = torch.from_numpy(np.asarray(corpus.split("train"), dtype=np.int64))
        self.offsets = torch.arange(plan.seq + 1)
        self.gen = torch.Generator().manual_seed(0)

    def run(self, steps: int) -> float:
        """Seconds for `steps` steps (the loss is read once, after the clock stops)."""
        plan, high = self.plan, len(self.ids) - self.plan.seq - 1
        loss_sum = torch.zeros(())
        start = time.perf_counter()
        for _ in range(steps):
            starts = torch.randint(0, high, (plan.batch,), generator=self.gen)
            window = self.ids[starts[:, None] + self.offsets]
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.bf16):
                logits, _ = self.model(window[:, :-1])
                logits = logits.reshape(-1, self.vocab).float()
                loss = F.cross_entropy(logits, window[:, 1:].reshape(-1))
            self.opt.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(self.params, GRAD_CLIP)
            self.opt.step()
            loss_sum += loss.detach()
        elapsed = time.perf_counter() - start
        if not torch.isfinite(loss_sum):
            raise SystemExit("the bare loop diverged")
        return elapsed


class SeqqLoop:
    """seqq's Trainer on one MLflow run, advanced one segment per `run()`."""

    def __init__(self, spec: Any, corpus: Any, client: Any, experiment_id: str, tmp: Path):
        from worker.model import CharRNN
        from worker.train import Trainer, resolve_precision

        self.spec, self.client = spec, client
        self.precision = resolve_precision(spec.precision, torch.device("cpu"))
        name = f"{spec.model.cell}-{spec.precision}"
        self.run_id = client.create_run(experiment_id, run_name=name).info.run_id
        torch.manual_seed(spec.run.seed)
        model = CharRNN.from_spec(spec.model, corpus.vocab.size)
        # The logger and the reporter are made per segment, in run().
        self.trainer = Trainer(
            spec, corpus, model, torch.device("cpu"), self.precision, None, None,
            tmp / "checkpoints" / self.run_id,
        )  # fmt: skip

    def run(self, steps: int) -> tuple[float, float, float]:
        """(timed loop seconds, untimed tail seconds, untimed drain seconds)."""
        from rich.console import Console

        from scheduler.cli import display
        from worker.tracking import RunLogger

        trainer = self.trainer
        target = trainer.step + steps
        optim = self.spec.optim.model_copy(update={"max_steps": target})
        trainer.spec = self.spec.model_copy(update={"optim": optim})
        with open(os.devnull, "w") as sink:
            console = Console(file=sink, force_terminal=True, width=120)
            progress = display.make_progress(console)  # exactly the bar `seqq run` shows
            task = progress.add_task(self.spec.model.cell, total=target, stats="")
            trainer.reporter = display.ProgressReporter(progress, task)
            trainer.logger = RunLogger(self.client, self.run_id)
            progress.start()
            try:
                start = time.perf_counter()
                result = trainer.run()
                wall = time.perf_counter() - start
            finally:
                progress.stop()
        start = time.perf_counter()
        if not trainer.logger.close(timeout=300):
            raise SystemExit("seqq's RunLogger could not deliver to the MLflow server")
        return result.elapsed_s, wall - result.elapsed_s, time.perf_counter() - start

    def bookkeeping_s(self) -> tuple[float, float, float]:
        """Seconds of one validation pass, one sampling pass and one checkpoint (saved, then
        uploaded to the server: counted as if the step waited for the upload, which it does
        not), each outside any segment."""
        from worker.tracking import RunLogger
        from worker.train import evaluate

        trainer = self.trainer
        start = time.perf_counter()
        evaluate(trainer.model, trainer.val_windows, self.spec.optim.batch_size)
        middle = time.perf_counter()
        trainer.logger = RunLogger(self.client, self.run_id)
        trainer._sample(trainer.step)
        end = time.perf_counter()
        trainer.logger.flush(timeout=300)
        ckpt_start = time.perf_counter()
        trainer._checkpoint("bench-checkpoint", trainer.elapsed())
        trainer.logger.flush(timeout=300)
        ckpt_end = time.perf_counter()
        trainer.logger.close(timeout=300)
        return middle - start, end - middle, ckpt_end - ckpt_start


def seqq_spec(plan: Plan, cell: str, precision: str, sha: str) -> Any:
    from shared.spec import build_spec

    overrides = {
        "model.cell": cell,
        "model.hidden_size": plan.hidden,
        "model.embedding_dim": plan.embedding,
        "model.num_layers": plan.layers,
        "optim.batch_size": plan.batch,
        "data.seq_len": plan.seq,
        "data.dataset": str(CORPUS),
        "data.sha256": sha,
        "optim.max_steps": WARMUP_STEPS,
        "optim.lr": LR,
        "optim.weight_decay": WEIGHT_DECAY,
        "optim.grad_clip": GRAD_CLIP,
        "optim.schedule": "constant",
        "optim.warmup_steps": 0,
        # The default interval (500), which segments never reach: one checkpoint's cost is
        # measured apart and amortised over it, as eval and sampling are.
        "run.checkpoint_every": CHECKPOINT_EVERY,
        "run.seed": SEED,
        "device": "cpu",
        "precision": precision,
    }
    return build_spec(overrides=overrides)


# -- orchestration ---------------------------------------------------------------------------
def measure(plan: Plan, redos: int, say: Any) -> dict[str, Any]:
    from shared.dataset import sha256_file
    from worker.data import eval_windows, load_corpus
    from worker.tracking import configure_mlflow_env
    from worker.train import evaluate, resolve_precision

    load_before = load_average()
    threads = len(os.sched_getaffinity(0))
    torch.set_num_threads(threads)
    tmp = Path(tempfile.mkdtemp(prefix="seqq-bench-train-"))
    server = MlflowServer(tmp)
    try:
        configure_mlflow_env()
        sha = sha256_file(CORPUS)
        corpus = load_corpus(CORPUS, sha, seqq_spec(plan, "lstm", "fp32", sha).data, tmp / "c")
        auto = resolve_precision("auto", torch.device("cpu"))
        say(f"torch threads {threads}; precision auto resolves to {auto} on this CPU")
        bare = {
            (cell, name): BareLoop(cell, corpus, plan, bf16=name == "bare_bf16")
            for cell in CELLS
            for name in ("bare_fp32", "bare_bf16")
        }
        for loop in bare.values():  # warm-up, untimed, while the server starts
            loop.run(WARMUP_STEPS)
        server.wait_ready()
        say(f"mlflow server ready at {server.url}")
        from mlflow import MlflowClient

        client = MlflowClient(server.url)
        experiment = client.create_experiment(f"seqq-bench-{int(time.time())}")
        seqq = {
            (cell, name): SeqqLoop(
                seqq_spec(plan, cell, prec, sha), corpus, client, experiment, tmp
            )
            for cell in CELLS
            for name, prec in (("seqq_fp32", "fp32"), ("seqq_default", "auto"))
        }
        for loop in seqq.values():  # warm-up: step-0 evaluation, first steps, the tail
            loop.run(WARMUP_STEPS)

        stats = {(cell, name): LoopStats() for cell in CELLS for name in LOOPS}
        chars = plan.steps * plan.batch * plan.seq
        redone, redos_left, kept_busy = 0, redos, 0

        def segment(cell: str, name: str, label: str) -> Segment:
            cpu0, server0, busy0 = own_cpu_s(), server.cpu_s(), machine_busy_s()
            start = time.perf_counter()
            if name.startswith("bare"):
                timed, tail, drain = bare[cell, name].run(plan.steps), 0.0, 0.0
            else:
                timed, tail, drain = seqq[cell, name].run(plan.steps)
            span = time.perf_counter() - start
            ours, server_s = own_cpu_s() - cpu0, server.cpu_s() - server0
            other = max(0.0, machine_busy_s() - busy0 - ours - server_s)
            say(
                f"{label} {cell:4} {name:12} {chars / timed:8.0f} chars/s  timed {timed:6.2f}s"
                f" of {span:6.2f}s; cpu: ours {ours:5.1f}s, server {server_s:4.2f}s, "
                f"others {other:4.1f}s"
            )
            return Segment(chars / timed, timed, span, ours, server_s, other, tail, drain)

        for rnd in range(plan.rounds):
            for cell in CELLS:
                while True:
                    order = segment_order(rnd)
                    group = {n: segment(cell, n, f"round {rnd + 1}/{plan.rounds}") for n in order}
                    busy = max(g.other_cpu_s / g.span_s for g in group.values()) > BUSY_CORES
                    if busy and redos_left > 0:
                        redone, redos_left = redone + 1, redos_left - 1
                        say(f"  other processes took over {BUSY_CORES} cores: redoing {cell}")
                        continue
                    kept_busy += busy
                    break
                for name, seg in group.items():
                    stats[cell, name].segments.append(seg)

        result: dict[str, Any] = {}
        for cell in CELLS:
            b, s, b16, d = (stats[cell, name] for name in LOOPS)
            t_eval, t_sample, t_ckpt = seqq[cell, "seqq_fp32"].bookkeeping_s()
            step_s = plan.batch * plan.seq / s.median()
            ckpt_share = t_ckpt / CHECKPOINT_EVERY / step_s
            result[cell] = {
                "bare_chars_per_s": round(b.median()),
                "seqq_chars_per_s": round(s.median()),
                # seqq's in-loop speed over bare, then charged one checkpoint per default
                # interval: the ratio the target is about.
                "ratio": round(s.median() / b.median() / (1 + ckpt_share), 4),
                "ratio_in_loop": round(s.median() / b.median(), 4),
                "checkpoint_s": round(t_ckpt, 3),
                "amortized_checkpoint_share": round(ckpt_share, 4),
                "ratio_paired_median": round(paired_median(s, b) / (1 + ckpt_share), 4),
                "seqq_default_chars_per_s": round(d.median()),
                "default_vs_bare_fp32": round(d.median() / b.median(), 4),
                "default_vs_bare_fp32_paired_median": round(paired_median(d, b), 4),
                "bare_bf16_chars_per_s": round(b16.median()),
                "bare_bf16_vs_bare_fp32": round(b16.median() / b.median(), 4),
                "default_vs_bare_bf16": round(d.median() / b16.median(), 4),
                "ratio_paired_range": [round(r, 3) for r in paired_range(s, b)],
                "default_vs_bare_fp32_paired_range": [round(r, 3) for r in paired_range(d, b)],
                "segments_chars_per_s": {
                    n: [round(g.chars_per_s) for g in stats[cell, n].segments] for n in LOOPS
                },
                "median_cpu_s": {
                    n: {k: round(stats[cell, n].median(k), 2) for k in ("cpu_s", "server_cpu_s")}
                    for n in LOOPS
                },
                "seqq_tail_s_median": round(s.median("tail_s"), 3),
                "seqq_drain_s_median": round(s.median("drain_s"), 3),
                # Outside the segments: one eval / one sample, amortised over their default
                # intervals, as a share of a seqq fp32 step.
                "eval_s": round(t_eval, 3),
                "sample_s": round(t_sample, 3),
                "amortized_eval_sample_share": round(
                    (t_eval / EVAL_EVERY + t_sample / SAMPLE_EVERY) / step_s, 4
                ),
            }

        windows = torch.from_numpy(
            eval_windows(corpus.split("val"), plan.seq, plan.batch, EVAL_BATCHES)
        )
        result["lstm_default_vs_bare_fp32"] = result["lstm"]["default_vs_bare_fp32"]
        for key, model in (
            ("lstm_default_val_loss", seqq["lstm", "seqq_default"].trainer.model),
            ("lstm_bare_fp32_val_loss", bare["lstm", "bare_fp32"].model),
            ("lstm_seqq_fp32_val_loss", seqq["lstm", "seqq_fp32"].trainer.model),
        ):
            result[key] = round(evaluate(model, windows, plan.batch), 4)
        segments = [g for st in stats.values() for g in st.segments]
        result["config"] = asdict(plan) | {
            "warmup_steps": WARMUP_STEPS,
            "steps_trained_lstm": seqq["lstm", "seqq_fp32"].trainer.step,
            "torch_threads": threads,
            "precision_auto": auto,
            "mlflow_server": "local; sqlite; proxied artifacts; 1 worker; no job runner",
            "groups_redone_because_busy": redone,
            "busy_groups_kept": kept_busy,
            "load_average_before": load_before,
            "load_average_after": load_average(),
            # Cores' worth of CPU other processes took while the segments ran.
            "other_processes_cores": round(
                sum(g.other_cpu_s for g in segments) / sum(g.span_s for g in segments), 2
            ),
        }
        result["targets"] = {
            "ratio_min": TARGET_RATIO,
            "lstm_default_vs_bare_fp32_min": TARGET_DEFAULT_SPEEDUP,
            "met": all(result[c]["ratio"] >= TARGET_RATIO for c in CELLS)
            and result["lstm_default_vs_bare_fp32"] >= TARGET_DEFAULT_SPEEDUP,
        }
        for loop in seqq.values():
            client.set_terminated(loop.run_id, "FINISHED")
        return result
    finally:
        server.stop()
        shutil.rmtree(tmp, ignore_errors=True)


def report(result: dict[str, Any], plan: Plan, console: Any) -> None:
    from rich.table import Table

    config = result["config"]
    title = (
        f"chars/s: median of {plan.rounds} segments of {plan.steps} steps ({plan.layers}x"
        f"{plan.hidden} hidden, embedding {plan.embedding}, batch {plan.batch}, seq {plan.seq}"
        f"{'; QUICK: a smaller model than the issue asks' if plan.quick else ''})"
    )
    table = Table(title=title)
    columns = ("cell", "bare fp32", "seqq fp32", "ratio", "paired median [min-max]",
               "bare bf16", "seqq default", "default/bare fp32", "paired median [min-max]",
               "default/bare bf16", "tail s", "ckpt", "eval+sample")  # fmt: skip
    for column in columns:
        table.add_column(column, justify="right")
    for cell in CELLS:
        r = result[cell]
        low, high = r["ratio_paired_range"]
        low_d, high_d = r["default_vs_bare_fp32_paired_range"]
        table.add_row(
            cell,
            f"{r['bare_chars_per_s']:,}",
            f"{r['seqq_chars_per_s']:,}",
            f"{r['ratio']:.3f}",
            f"{r['ratio_paired_median']:.3f} [{low:.2f}-{high:.2f}]",
            f"{r['bare_bf16_chars_per_s']:,}",
            f"{r['seqq_default_chars_per_s']:,}",
            f"{r['default_vs_bare_fp32']:.3f}",
            f"{r['default_vs_bare_fp32_paired_median']:.3f} [{low_d:.2f}-{high_d:.2f}]",
            f"{r['default_vs_bare_bf16']:.3f}",
            f"{r['seqq_tail_s_median']:.2f}",
            f"{r['amortized_checkpoint_share']:.2%}",
            f"{r['amortized_eval_sample_share']:.2%}",
        )
    console.print(table)
    console.print(
        f"seqq default = precision auto -> {config['precision_auto']}. Validation loss after "
        f"{config['steps_trained_lstm']} steps each, same windows: LSTM seqq default "
        f"{result['lstm_default_val_loss']:.4f}, bare fp32 {result['lstm_bare_fp32_val_loss']:.4f}"
        f", seqq fp32 {result['lstm_seqq_fp32_val_loss']:.4f}"
    )
    console.print(
        f"other processes used {config['other_processes_cores']:.2f} cores during the kept "
        f"segments; {config['groups_redone_because_busy']} round groups redone because they "
        f"were busy, {config['busy_groups_kept']} busy ones kept "
        f"(load average {config['load_average_before']} before, "
        f"{config['load_average_after']} after)"
    )
    met = "met" if result["targets"]["met"] else "NOT met"
    console.print(
        f"targets: ratio >= {TARGET_RATIO} for every cell and LSTM default/bare fp32 >= "
        f"{TARGET_DEFAULT_SPEEDUP}: {met}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", action="store_true", help="One JSON object on stdout.")
    parser.add_argument("--quick", action="store_true", help="Under a minute: a smaller model.")
    parser.add_argument("--steps", type=int, help="Steps per segment (default 20; quick 16).")
    parser.add_argument("--rounds", type=int, help="Rounds of segments (default 5; quick 3).")
    parser.add_argument(
        "--redo",
        type=int,
        default=4,
        help=f"Redo at most this many round groups taken while other processes used over "
        f"{BUSY_CORES} cores (default 4; busy groups beyond are kept and counted).",
    )
    args = parser.parse_args()
    # A SIGTERM (timeout, kill) still runs the `finally` blocks: no orphan server or temp files.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    if args.quick:
        plan = Plan(args.steps or 16, args.rounds or 3, 128, 32, 2, 32, 64, quick=True)
    else:
        plan = Plan(args.steps or 20, args.rounds or 5)
    if plan.steps <= WARMUP_STEPS or plan.rounds < 1:
        parser.error(f"--steps must exceed {WARMUP_STEPS} and --rounds must be at least 1")

    from rich.console import Console

    console = Console(stderr=args.json, highlight=False)
    if not console.is_terminal:
        console.width = 180  # the table stays whole in a log or a pipe
    if plan.quick:
        console.print("QUICK run: a smaller model and fewer steps than the issue's sizes.")
    started = time.monotonic()

    def say(message: str) -> None:
        console.print(f"[{time.monotonic() - started:6.1f}s] {message}", markup=False)

    # MLflow prints run links on stdout; with --json, stdout carries the JSON object alone.
    with contextlib.redirect_stdout(sys.stderr) if args.json else contextlib.nullcontext():
        result = measure(plan, args.redo, say)
    report(result, plan, console)
    if args.json:
        sys.stdout.write(json.dumps(result) + "\n")


if __name__ == "__main__":
    main()
