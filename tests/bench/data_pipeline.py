"""Data pipeline: seqq's corpus encoding speed and peak memory against the naive approaches.

Run on demand (not part of the test suite):

    .venv/bin/python tests/bench/data_pipeline.py [--json] [--markdown] [--quick] [--mb N]
        [--data PATH]

Writes a deterministic corpus (the lines of `--data`, by default the built-in corpus, shuffled with a fixed seed, repeated to
--mb megabytes, 1 MB = 10**6 bytes; 100 by default, 10 with --quick) and a Unicode variant of the
same size (a share of lines carry CJK characters and emoji, so the vocabulary exceeds 256). Each
approach then runs once in each of --processes fresh subprocesses (3), as a job would: a first
call, cold allocator included. Peak RSS is the child's `ru_maxrss` at the end minus its RSS after
imports (the file's bytes, once read, count: an encoder needs them), the largest of the
processes. MB/s is corpus bytes over the median of the processes' seconds. The parent streams
the corpus to disk and stays small, so no child inherits a high-water mark from it.

* seqq encode_bytes:  `worker.data.encode_bytes` on the file's bytes (read untimed, beforehand);
* seqq load_corpus:   `worker.data.load_corpus` on an empty cache (read + encode + write .npy),
                      the file itself in the OS page cache (it was just written);
* dict per char:      `{c: i}` over the sorted characters and a list comprehension, then a NumPy
                      array (decode + vocabulary + ids);
* whole-corpus one-hot: a float32 (chars x vocab) matrix built from the ids with `np.eye(V)[ids]`
                      on a slice, EXTRAPOLATED linearly to the corpus (the real one would not fit);
* seqq encode_bytes on a Unicode corpus of the same size (745 distinct characters, uint16 ids).
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from tests.bench import common  # noqa: E402

MB = 10**6
TARGET_MB_PER_S, TARGET_PEAK_OVER_CORPUS = 100.0, 3.0
ONE_HOT_SLICE = 2 * MB
APPROACHES = ("encode_bytes", "load_corpus", "dict_per_char", "one_hot")


# -- corpus generation (streamed: the parent stays small, so children's ru_maxrss is theirs) -
def unicode_line(line: str, rng: random.Random) -> str:
    if rng.random() >= 0.3:
        return line
    cjk = "".join(chr(0x4E00 + rng.randrange(600)) for _ in range(rng.randrange(1, 6)))
    emoji = chr(0x1F600 + rng.randrange(80)) if rng.random() < 0.5 else ""
    return f"{line} {cjk}{emoji}"


def write_corpus(path: Path, source: Path, size: int, unicode: bool) -> None:
    """`size` bytes (to the last whole line) of `source`'s lines, shuffled; the same bytes on
    every run for the same source."""
    rng = random.Random(1234)
    lines = source.read_text(encoding="utf-8").splitlines()
    if unicode:
        lines = [unicode_line(line, rng) for line in lines]
    written = 0
    with path.open("wb") as out:
        while written < size:
            rng.shuffle(lines)
            block = ("\n".join(lines) + "\n").encode("utf-8")
            if written + len(block) > size:
                block = block[: block.rfind(b"\n", 0, size - written) + 1]
                if not block:
                    break
            out.write(block)
            written += len(block)


# -- the child: one approach, measured in a clean process -------------------------------------
def rss_bytes() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


def maxrss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux


def child(approach: str, path: Path) -> dict[str, Any]:
    """One first call of one approach in this fresh process: seconds and peak RSS."""
    import gc
    import shutil

    import numpy as np

    from shared.dataset import sha256_file
    from shared.spec import DataSpec
    from worker.data import encode_bytes, load_corpus

    sha = sha256_file(path) if approach == "load_corpus" else ""  # a job has it from the spec
    gc.collect()
    baseline = rss_bytes()
    out: dict[str, Any] = {"corpus_bytes": path.stat().st_size, "baseline_rss": baseline}
    out["baseline_maxrss"] = maxrss_bytes()
    start = time.perf_counter()
    if approach == "one_hot":  # only the slice: the matrix of the whole corpus would not fit
        with path.open("rb") as handle:
            raw = handle.read(ONE_HOT_SLICE)
    else:
        raw = path.read_bytes() if approach != "load_corpus" else b""
    out["read_s"] = time.perf_counter() - start
    if approach == "encode_bytes":
        start = time.perf_counter()
        vocab, ids = encode_bytes(raw)
        out["seconds"] = time.perf_counter() - start
        out |= {"vocab_size": vocab.size, "dtype": str(ids.dtype), "chars": len(ids)}
    elif approach == "load_corpus":
        cache = Path(tempfile.mkdtemp(prefix="seqq-bench-cache-"))
        try:
            start = time.perf_counter()
            corpus = load_corpus(path, sha, DataSpec(), cache)
            out["seconds"] = time.perf_counter() - start
            out["peak_over_baseline"] = maxrss_bytes() - baseline
            start = time.perf_counter()
            warm = load_corpus(path, sha, DataSpec(), cache)
            out["warm_load_s"] = time.perf_counter() - start
            out |= {"vocab_size": corpus.vocab.size, "cache_hit": warm.cache_hit}
        finally:
            shutil.rmtree(cache)
    elif approach == "dict_per_char":
        start = time.perf_counter()
        text = raw.decode("utf-8")
        chars = sorted(set(text))
        index = {c: i for i, c in enumerate(chars)}
        listed = [index[c] for c in text]
        ids = np.array(listed, dtype=np.uint8 if len(chars) <= 256 else np.uint16)
        out["seconds"] = time.perf_counter() - start
        out |= {"vocab_size": len(chars), "chars": len(ids)}
    elif approach == "one_hot":
        vocab, ids = encode_bytes(raw)
        gc.collect()
        slice_base = rss_bytes()
        start = time.perf_counter()
        one_hot = np.eye(vocab.size, dtype=np.float32)[ids]
        out["seconds"] = time.perf_counter() - start
        out |= {
            "vocab_size": vocab.size,
            "slice_chars": len(ids),
            "slice_peak_over_base": maxrss_bytes() - slice_base,
            "matrix_bytes": one_hot.nbytes,
        }
    else:
        raise SystemExit(f"unknown approach {approach}")
    out["peak_rss"] = maxrss_bytes()
    out.setdefault("peak_over_baseline", out["peak_rss"] - baseline)
    return out


def run_children(approach: str, path: Path, processes: int) -> dict[str, Any]:
    """The approach in `processes` fresh processes: per-process seconds, the largest peak."""
    runs = []
    for _ in range(processes):
        cmd = [sys.executable, __file__, "--child", approach, "--path", str(path)]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=1800)
        if done.returncode != 0:
            raise SystemExit(f"{approach} failed:\n{done.stderr[-3000:]}")
        runs.append(json.loads(done.stdout))
    merged = runs[0] | {
        "seconds": [r["seconds"] for r in runs],
        "median_s": statistics.median(r["seconds"] for r in runs),
        "peak_over_baseline": max(r["peak_over_baseline"] for r in runs),
    }
    if approach == "load_corpus":
        merged["warm_load_s"] = statistics.median(r["warm_load_s"] for r in runs)
    return merged


# -- the parent: generate, measure, summarise --------------------------------------------------
def load_average() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def measure(size: int, processes: int, data: str, say: Any) -> dict[str, Any]:
    import shutil

    corpus = common.describe_corpus(data)
    say(common.corpus_line(corpus) + " (the lines the generated corpora are made of)")
    source = Path(corpus["path"])
    load_before = load_average()
    tmp = Path(tempfile.mkdtemp(prefix="seqq-bench-data-"))
    try:
        ascii_path, unicode_path = tmp / "ascii.txt", tmp / "unicode.txt"
        start = time.perf_counter()
        write_corpus(ascii_path, source, size, unicode=False)
        write_corpus(unicode_path, source, size, unicode=True)
        say(f"wrote 2 corpora of {size / MB:.0f} MB in {time.perf_counter() - start:.1f}s")
        runs: dict[str, dict[str, Any]] = {}
        for approach in APPROACHES:
            n = 1 if approach == "one_hot" else processes
            runs[approach] = run_children(approach, ascii_path, n)
            say(f"{approach}: {runs[approach]['median_s']:.3f}s (median of {n} process(es))")
        runs["unicode_encode_bytes"] = run_children("encode_bytes", unicode_path, processes)
        say(f"unicode encode_bytes: {runs['unicode_encode_bytes']['median_s']:.3f}s")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    def summary(run: dict[str, Any]) -> dict[str, Any]:
        corpus = run["corpus_bytes"]
        return {
            "mb_per_s": round(corpus / MB / run["median_s"], 1),
            "seconds": [round(s, 4) for s in run["seconds"]],
            "peak_rss_mb": round(run["peak_over_baseline"] / MB, 1),
            "peak_rss_over_corpus": round(run["peak_over_baseline"] / corpus, 2),
            "vocab_size": run.get("vocab_size"),
        }

    seqq = summary(runs["encode_bytes"])
    one_hot = runs["one_hot"]
    # chars x vocab float32 for the whole corpus; time scales with the bytes written.
    full_matrix = runs["encode_bytes"]["chars"] * runs["encode_bytes"]["vocab_size"] * 4
    scale = full_matrix / one_hot["matrix_bytes"]
    result: dict[str, Any] = {
        "bench": "data_pipeline",
        "corpus": corpus,
        "host": common.describe_host(),
        "mb_per_s": seqq["mb_per_s"],
        "peak_rss_over_corpus": seqq["peak_rss_over_corpus"],
        "corpus_mb": round(size / MB, 1),
        "processes_per_approach": processes,
        "encode_bytes": seqq | {"dtype": runs["encode_bytes"]["dtype"]},
        "read_file_s": round(runs["encode_bytes"]["read_s"], 3),
        "load_corpus_cold": summary(runs["load_corpus"])
        | {"warm_load_s": round(runs["load_corpus"]["warm_load_s"], 4)},
        "dict_per_char": summary(runs["dict_per_char"]),
        "one_hot": {
            "extrapolated_from_slice_mb": round(ONE_HOT_SLICE / MB, 1),
            "slice_s": round(one_hot["median_s"], 4),
            "slice_peak_rss_mb": round(one_hot["slice_peak_over_base"] / MB, 1),
            "seconds_extrapolated": round(one_hot["median_s"] * scale, 2),
            "mb_per_s_extrapolated": round(size / MB / (one_hot["median_s"] * scale), 1),
            "matrix_mb_extrapolated": round(full_matrix / MB),
            "peak_rss_over_corpus_extrapolated": round(full_matrix / size, 1),
            "vocab_size": runs["encode_bytes"]["vocab_size"],
        },
        "unicode": summary(runs["unicode_encode_bytes"])
        | {
            "dtype": runs["unicode_encode_bytes"]["dtype"],
            "chars": runs["unicode_encode_bytes"]["chars"],
        },
        "load_average": {"before": load_before, "after": load_average()},
        "targets": {"mb_per_s_min": TARGET_MB_PER_S, "peak_rss_over_corpus_max": 3.0},
    }
    result["targets"]["met"] = (
        result["mb_per_s"] >= TARGET_MB_PER_S
        and result["peak_rss_over_corpus"] <= TARGET_PEAK_OVER_CORPUS
    )
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="A 10 MB corpus (under a minute).")
    parser.add_argument("--mb", type=float, help="Corpus size in MB (default 100; quick 10).")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--path", type=Path, help=argparse.SUPPRESS)
    parser.add_argument(
        "--processes", type=int, default=3, help="Fresh processes per approach (default 3)."
    )
    common.add_data_option(parser)
    common.add_output_options(parser)
    args = parser.parse_args()
    if common.render_saved(args):
        return
    # A SIGTERM (timeout, kill) still runs the `finally` blocks: no orphan server or temp files.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    if args.child:
        sys.stdout.write(json.dumps(child(args.child, args.path)) + "\n")
        return

    from rich.console import Console

    console = Console(stderr=args.json, highlight=False)
    if not console.is_terminal:
        console.width = 150  # a wide table in a log or a pipe
    size = int((args.mb or (10 if args.quick else 100)) * MB)
    if args.quick:
        console.print("QUICK run: a 10 MB corpus instead of 100 MB.")
    started = time.monotonic()

    def say(message: str) -> None:
        console.print(f"[{time.monotonic() - started:6.1f}s] {message}", markup=False)

    result = measure(size, args.processes, args.data, say) | {"quick": bool(args.quick)}
    common.emit(result, args)


if __name__ == "__main__":
    main()
