"""Training-loop overhead: seqq's `Trainer` against a bare PyTorch loop, in the same precision.

Run on demand (not part of the test suite):

    .venv/bin/python tests/bench/train_overhead.py [--json] [--markdown] [--quick] [--steps N]
        [--rounds R] [--data PATH] [--device cpu|cuda]
    .venv/bin/python tests/bench/train_overhead.py --markdown-from docs/bench/train_overhead.json

For each cell (LSTM, RNN, GRU) four loops train in ONE process, in segments of the same number
of steps, R rounds, each bare loop beside its seqq counterpart (see below):

* bare fp32:    embedding -> nn.LSTM/RNN/GRU -> linear, AdamW, grad clip 1.0, random windows,
                the loss summed on the device and read once per segment (written here; on CUDA
                the cuDNN kernels, batches pinned and copied with non_blocking, fused AdamW as
                seqq uses there, and the clock read only after `torch.cuda.synchronize()`);
* bare bf16:    the same under bf16 autocast;
* seqq fp32:    `worker.train.Trainer` with a real `RunLogger` sending to a real `mlflow server`
                over HTTP (started here on 127.0.0.1: SQLite backend, proxied artifacts), the
                progress reporter of `seqq run` (`scheduler.cli.display.ProgressReporter`: a live
                Rich bar, to /dev/null), train-loss metrics every 10 steps (the default);
* seqq default: the same with `precision: auto` (bf16 autocast on a CUDA GPU that supports it
                and on a CPU with AVX512-BF16/AMX; fp32 elsewhere).

The headline compares like with like: seqq fp32 / bare fp32, and seqq default / the bare loop
in the SAME precision (bare bf16 when auto resolves to bf16). Each figure is the median over
rounds of the per-round ratio (each seqq segment over the bare segment beside it) with its
spread (min-max and quartiles), never a ratio of unpaired medians. What bf16 itself buys
(bare bf16 / bare fp32) is the hardware's gain, not seqq's, and is reported on its own line.

A seqq segment's time is `TrainResult.elapsed_s` of one `Trainer.run()`: the Trainer measures it
from the start of `run()` to the end of its step loop (whose last step reads the loss back, so
on CUDA the queued work is done when it stops the clock). It includes every step (batch
sampling, forward, backward, clip, AdamW), the loss read-back and metric queueing every 10
steps, the reporter calls, and whatever the logger thread, the Rich refresh thread and the
MLflow server take from the cores meanwhile (metric batches over HTTP). It excludes what `run()`
does after its loop (final evaluation, sampling, final checkpoint, test evaluation: "tail") and
waiting for the logger to deliver the rest afterwards ("drain"); both are reported. No seqq
thread runs during bare segments: logger and live bar are created before and closed after each
seqq segment. Each segment continues the same Trainer (raising `optim.max_steps`), so both
sides use a constant learning rate without warm-up (a cosine schedule would restart every
segment).

Checkpoints, evaluation and sampling happen at their default intervals (500/250/500 steps),
which short segments never reach, so one of each is timed apart. Each headline ratio charges
seqq one checkpoint (torch.save, then the upload to the server, counted as if the step waited
for it, which it does not) per 500 steps: ratio = in-loop ratio / (1 + checkpoint share).
Evaluation and sampling are reported as their amortised share of a step (a bare loop that
evaluates pays them too). The order within a round alternates, so slow drifts in a shared
machine's speed hit both sides alike. Other processes' CPU use is measured per segment
(/proc/stat): a round's four segments of a cell are redone (up to --redo times) when others
took over 0.1 cores during one of them. Medians and per-round pairing limit, but cannot remove,
a shared machine's noise: read the spread.

The corpus is `--data` (default: the built-in corpus); the output names it (name, sha256,
characters).
"""

from __future__ import annotations

import argparse
import contextlib
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
sys.path.insert(0, str(REPO))

from tests.bench import common  # noqa: E402

CELLS = ("lstm", "rnn", "gru")
LOOPS = ("bare_fp32", "seqq_fp32", "bare_bf16", "seqq_default")
WARMUP_STEPS = 3
SEED = 1337
LR, WEIGHT_DECAY, BETAS, GRAD_CLIP = 3e-3, 0.01, (0.9, 0.99), 1.0  # seqq's defaults
EVAL_EVERY, SAMPLE_EVERY, CHECKPOINT_EVERY, EVAL_BATCHES = 250, 500, 500, 8  # seqq's defaults
TARGET_RATIO = 0.97  # seqq / bare in the same precision, paired median, every cell
# A round's four segments of a cell are redone (up to --redo times in all) when other
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
    device: str = "cpu"


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


def spread(ratios: list[float]) -> dict[str, float]:
    """The median of per-round ratios and how far they spread: what a headline ratio is."""
    ordered = sorted(ratios)
    if len(ordered) > 1:
        q1, _, q3 = statistics.quantiles(ordered, n=4, method="inclusive")
    else:
        q1 = q3 = ordered[0]
    return {
        "median": round(statistics.median(ordered), 4),
        "q1": round(q1, 4),
        "q3": round(q3, 4),
        "min": round(ordered[0], 4),
        "max": round(ordered[-1], 4),
        "rounds": len(ordered),
    }


def segment_order(rnd: int) -> tuple[str, ...]:
    """Each bare loop runs right beside the seqq loop it is compared with (slow drifts of a
    shared machine's speed then hit both alike); who goes first alternates round by round."""
    fp32, bf16 = ("bare_fp32", "seqq_fp32"), ("bare_bf16", "seqq_default")
    if rnd % 2:
        fp32, bf16 = fp32[::-1], bf16[::-1]
    return fp32 + bf16 if rnd % 4 < 2 else bf16 + fp32


def versus(
    stats: dict[tuple[str, str], LoopStats],
    cell: str,
    seqq_name: str,
    bare_name: str,
    checkpoint_s: float,
    plan: Plan,
) -> dict[str, Any]:
    """seqq against the bare loop in the same precision, per round, charged one checkpoint per
    default interval (its share of this seqq loop's step time)."""
    s, b = stats[cell, seqq_name], stats[cell, bare_name]
    share = checkpoint_s / CHECKPOINT_EVERY / (plan.batch * plan.seq / s.median())
    return {
        "bare": bare_name,
        "bare_chars_per_s": round(b.median()),
        "seqq_chars_per_s": round(s.median()),
        "ratio": spread([r / (1 + share) for r in paired(s, b)]),
        "ratio_in_loop": spread(paired(s, b)),
        "amortized_checkpoint_share": round(share, 4),
    }


def sync(device: torch.device) -> None:
    """Wait for the device's queued kernels: a CUDA clock read before this measures launches."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


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
        self.device = torch.device(plan.device)
        self.model = BareRNN(cell, self.vocab, plan)
        torch.manual_seed(SEED)  # the initial weights of the seqq model: one noise source fewer
        seqq_model = CharRNN(self.vocab, cell, plan.embedding, plan.hidden, plan.layers)
        self.model.load_state_dict(seqq_model.state_dict())
        self.model.to(self.device)
        self.params = list(self.model.parameters())
        self.opt = torch.optim.AdamW(
            self.params,
            lr=LR,
            weight_decay=WEIGHT_DECAY,
            betas=BETAS,
            fused=self.device.type == "cuda",  # what seqq's Trainer uses on CUDA
        )
        # The corpus stays in host memory, as seqq's does; each batch is copied over.
        self.ids = torch.from_numpy(np.asarray(corpus.split("train"), dtype=np.int64))
        self.offsets = torch.arange(plan.seq + 1)
        self.gen = torch.Generator().manual_seed(0)

    def batch(self) -> torch.Tensor:
        high = len(self.ids) - self.plan.seq - 1
        starts = torch.randint(0, high, (self.plan.batch,), generator=self.gen)
        window = self.ids[starts[:, None] + self.offsets]
        if self.device.type == "cuda":  # pinned, so the copy can overlap the previous step
            return window.pin_memory().to(self.device, non_blocking=True)
        return window

    def run(self, steps: int) -> float:
        """Seconds for `steps` steps (the loss is read once, after the clock stops)."""
        loss_sum = torch.zeros((), device=self.device)
        sync(self.device)
        start = time.perf_counter()
        for _ in range(steps):
            window = self.batch()
            with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.bf16):
                logits, _ = self.model(window[:, :-1])
                logits = logits.reshape(-1, self.vocab).float()
                loss = F.cross_entropy(logits, window[:, 1:].reshape(-1))
            self.opt.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(self.params, GRAD_CLIP)
            self.opt.step()
            loss_sum += loss.detach()
        sync(self.device)
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
        device = torch.device(spec.device)
        self.precision = resolve_precision(spec.precision, device)
        name = f"{spec.model.cell}-{spec.precision}"
        self.run_id = client.create_run(experiment_id, run_name=name).info.run_id
        torch.manual_seed(spec.run.seed)
        model = CharRNN.from_spec(spec.model, corpus.vocab.size)
        # The logger and the reporter are made per segment, in run().
        self.trainer = Trainer(
            spec, corpus, model, device, self.precision,
            None,  # type: ignore[arg-type]  # the logger: set per segment, in run()
            None,  # type: ignore[arg-type]  # the reporter: likewise
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
        trainer.sampler.sample(trainer.model, trainer.step, trainer.logger)
        end = time.perf_counter()
        trainer.logger.flush(timeout=300)
        ckpt_start = time.perf_counter()
        trainer._checkpoint("bench-checkpoint", trainer.elapsed())
        trainer.logger.flush(timeout=300)
        ckpt_end = time.perf_counter()
        trainer.logger.close(timeout=300)
        return middle - start, end - middle, ckpt_end - ckpt_start


def seqq_spec(plan: Plan, cell: str, precision: str, corpus: dict[str, Any]) -> Any:
    from shared.spec import build_spec

    overrides = {
        "model.cell": cell,
        "model.hidden_size": plan.hidden,
        "model.embedding_dim": plan.embedding,
        "model.num_layers": plan.layers,
        "optim.batch_size": plan.batch,
        "data.seq_len": plan.seq,
        "data.dataset": corpus["path"],
        "data.sha256": corpus["sha256"],
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
        "device": plan.device,
        "precision": precision,
    }
    return build_spec(overrides=overrides)


# -- orchestration ---------------------------------------------------------------------------
def check_device(plan: Plan) -> str:
    """The device's name, or a one-line exit when CUDA was asked for and is not there."""
    if plan.device != "cuda":
        return "cpu"
    if not torch.cuda.is_available():
        raise SystemExit(
            f"--device cuda: torch {torch.__version__} sees no CUDA device "
            f"(built for CUDA {torch.version.cuda}); run on a machine with an NVIDIA GPU"
        )
    # The bare loop is meant to be cuDNN's: nothing here may have switched it off.
    if not torch.backends.cudnn.enabled or not torch.backends.cudnn.is_available():
        raise SystemExit("--device cuda: cuDNN is unavailable or disabled in this torch")
    return torch.cuda.get_device_name()


def measure(plan: Plan, redos: int, data: str, say: Any) -> dict[str, Any]:
    from worker.data import eval_windows, load_corpus
    from worker.tracking import configure_mlflow_env
    from worker.train import evaluate, resolve_precision

    device_name = check_device(plan)
    device = torch.device(plan.device)
    load_before = load_average()
    threads = len(os.sched_getaffinity(0))
    torch.set_num_threads(threads)
    corpus_info = common.describe_corpus(data)
    say(common.corpus_line(corpus_info))
    tmp = Path(tempfile.mkdtemp(prefix="seqq-bench-train-"))
    server = MlflowServer(tmp)
    try:
        configure_mlflow_env()
        spec_data = seqq_spec(plan, "lstm", "fp32", corpus_info).data
        corpus = load_corpus(Path(corpus_info["path"]), corpus_info["sha256"], spec_data, tmp / "c")
        auto = resolve_precision("auto", device)
        say(f"{device_name}; torch threads {threads}; precision auto resolves to {auto}")
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
                seqq_spec(plan, cell, prec, corpus_info), corpus, client, experiment, tmp
            )
            for cell in CELLS
            for name, prec in (("seqq_fp32", "fp32"), ("seqq_default", "auto"))
        }
        for seqq_loop in seqq.values():  # warm-up: step-0 evaluation, first steps, the tail
            seqq_loop.run(WARMUP_STEPS)

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

        # seqq default's twin is the bare loop in the precision auto chose.
        default_twin = "bare_bf16" if auto == "bf16" else "bare_fp32"
        cells: dict[str, Any] = {}
        for cell in CELLS:
            t_eval, t_sample, t_ckpt = seqq[cell, "seqq_fp32"].bookkeeping_s()

            s_fp32 = stats[cell, "seqq_fp32"]
            step_s = plan.batch * plan.seq / s_fp32.median()
            cells[cell] = {
                "fp32": versus(stats, cell, "seqq_fp32", "bare_fp32", t_ckpt, plan),
                "default": versus(stats, cell, "seqq_default", default_twin, t_ckpt, plan)
                | {"precision": auto},
                # What bf16 itself buys on this hardware: no seqq code in either loop.
                "hardware_bf16_over_fp32": spread(
                    paired(stats[cell, "bare_bf16"], stats[cell, "bare_fp32"])
                ),
                # What a user gets from seqq's default against a plain fp32 loop: seqq's
                # overhead and the hardware's bf16 gain together.
                "default_vs_bare_fp32": spread(
                    paired(stats[cell, "seqq_default"], stats[cell, "bare_fp32"])
                ),
                "checkpoint_s": round(t_ckpt, 3),
                "seqq_tail_s_median": round(s_fp32.median("tail_s"), 3),
                "seqq_drain_s_median": round(s_fp32.median("drain_s"), 3),
                # Outside the segments: one eval / one sample, amortised over their default
                # intervals, as a share of a seqq fp32 step.
                "eval_s": round(t_eval, 3),
                "sample_s": round(t_sample, 3),
                "amortized_eval_sample_share": round(
                    (t_eval / EVAL_EVERY + t_sample / SAMPLE_EVERY) / step_s, 4
                ),
                "segments_chars_per_s": {
                    n: [round(g.chars_per_s) for g in stats[cell, n].segments] for n in LOOPS
                },
                "median_cpu_s": {
                    n: {k: round(stats[cell, n].median(k), 2) for k in ("cpu_s", "server_cpu_s")}
                    for n in LOOPS
                },
            }

        windows = torch.from_numpy(
            eval_windows(corpus.split("val"), plan.seq, plan.batch, EVAL_BATCHES)
        ).to(device)
        val_loss = {
            name: round(evaluate(model, windows, plan.batch), 4)
            for name, model in (
                ("seqq_default", seqq["lstm", "seqq_default"].trainer.model),
                ("seqq_fp32", seqq["lstm", "seqq_fp32"].trainer.model),
                ("bare_fp32", bare["lstm", "bare_fp32"].model),
                ("bare_bf16", bare["lstm", "bare_bf16"].model),
            )
        }
        segments = [g for st in stats.values() for g in st.segments]
        config = asdict(plan) | {
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
        if device.type == "cuda":
            config |= {
                "cuda": torch.version.cuda,
                "cudnn": torch.backends.cudnn.version(),
                "cudnn_benchmark": torch.backends.cudnn.benchmark,
            }
        for seqq_loop in seqq.values():
            client.set_terminated(seqq_loop.run_id, "FINISHED")
        return {
            "bench": "train_overhead",
            "device": plan.device,
            "device_name": device_name,
            "corpus": corpus_info,
            "host": common.describe_host(),
            "cells": cells,
            "lstm_val_loss": val_loss,
            "config": config,
            "targets": {
                "ratio_min": TARGET_RATIO,
                "met": all(
                    cells[c][kind]["ratio"]["median"] >= TARGET_RATIO
                    for c in CELLS
                    for kind in ("fp32", "default")
                ),
            },
        }
    finally:
        server.stop()
        shutil.rmtree(tmp, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="Under a minute: a smaller model.")
    parser.add_argument("--steps", type=int, help="Steps per segment (default 20; quick 16).")
    parser.add_argument("--rounds", type=int, help="Rounds of segments (default 5; quick 3).")
    parser.add_argument(
        "--device",
        choices=("cpu", "cuda"),
        default="cpu",
        help="cpu (default) or cuda: every loop on the first visible GPU, the bare one on cuDNN.",
    )
    parser.add_argument(
        "--redo",
        type=int,
        default=4,
        help=f"Redo at most this many round groups taken while other processes used over "
        f"{BUSY_CORES} cores (default 4; busy groups beyond are kept and counted).",
    )
    common.add_data_option(parser)
    common.add_output_options(parser)
    args = parser.parse_args()
    if common.render_saved(args):
        return
    # A SIGTERM (timeout, kill) still runs the `finally` blocks: no orphan server or temp files.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    if args.quick:
        plan = Plan(args.steps or 16, args.rounds or 3, 128, 32, 2, 32, 64, True, args.device)
    else:
        plan = Plan(args.steps or 20, args.rounds or 5, device=args.device)
    if plan.steps <= WARMUP_STEPS or plan.rounds < 1:
        parser.error(f"--steps must exceed {WARMUP_STEPS} and --rounds must be at least 1")

    from rich.console import Console

    console = Console(stderr=args.json, highlight=False)
    if not console.is_terminal:
        console.width = 180  # the table stays whole in a log or a pipe
    if plan.quick:
        console.print("QUICK run: a smaller model and fewer steps than the docs' sizes.")
    started = time.monotonic()

    def say(message: str) -> None:
        console.print(f"[{time.monotonic() - started:6.1f}s] {message}", markup=False)

    # MLflow prints run links on stdout; with --json, stdout carries the JSON object alone.
    with contextlib.redirect_stdout(sys.stderr) if args.json else contextlib.nullcontext():
        result = measure(plan, args.redo, args.data, say)
    common.emit(result, args)


if __name__ == "__main__":
    main()
