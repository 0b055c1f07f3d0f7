"""What every benchmark shares: the corpus it measured, the host it ran on, its output modes.

A figure is only as good as what it names: each benchmark's JSON carries `bench` (its name, which
`render.py` uses to draw its table), `corpus` (name, sha256 and characters of the text it read, when
it reads one) and `host`. Output modes are the same everywhere: text on the terminal, `--json`
(one object on stdout; saved under docs/bench/<name>.json), `--markdown` (the docs' table, drawn
by `render.py` from that same object) and `--markdown-from FILE` (the table of a saved result,
without measuring: what docs/ quotes, so copying cannot drift).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
from importlib import metadata
from pathlib import Path
from typing import Any

from shared.dataset import resolve_dataset
from shared.spec import BUILTIN_DATASET, DataSpec

# Where the built-in corpus is written once per Python version (it is deterministic).
CACHE_DIR = Path(tempfile.gettempdir()) / "seqq-bench"


def add_data_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data",
        default=BUILTIN_DATASET,
        metavar="PATH",
        help=f"reference text: a file path or {BUILTIN_DATASET!r} (default: the built-in corpus, "
        "this Python's standard-library sources; nothing is read outside the repository)",
    )


def describe_corpus(reference: str) -> dict[str, Any]:
    """The checked local file behind `reference`, named so a reader can tell what was measured."""
    dataset = resolve_dataset(DataSpec(dataset=reference), CACHE_DIR)
    return {
        "dataset": reference,
        "name": dataset.name,
        "sha256": dataset.sha256,
        "chars": dataset.n_chars,
        "path": str(dataset.path),
    }


def corpus_line(corpus: dict[str, Any]) -> str:
    return (
        f"corpus: {corpus['name']} ({corpus['dataset']}), {corpus['chars']:,} characters, "
        f"sha256 {corpus['sha256'][:16]}"
    )


def isolated_env(home: Path) -> dict[str, str]:
    """The environment of a `seqq` run a benchmark starts: its own home (store, caches), no
    user settings, no telemetry."""
    return {
        "SEQQ_HOME": str(home),
        "HOME": str(home),
        "PATH": "/usr/bin:/bin",
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "DO_NOT_TRACK": "true",
    }


def describe_host() -> dict[str, Any]:
    """Enough about the machine to tell two results apart; torch's version without importing it."""
    model = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text(errors="replace").splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    try:
        torch_version = metadata.version("torch")
    except metadata.PackageNotFoundError:
        torch_version = None
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {
        "cpu": model,
        "usable_cores": cores,
        "python": platform.python_version(),
        "torch": torch_version,
    }


def add_output_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--json", action="store_true", help="one JSON object on stdout (progress on stderr)"
    )
    parser.add_argument(
        "--markdown",
        action="store_true",
        help="with --json, also print the docs' Markdown table (on stderr); without --json it "
        "is always printed",
    )
    parser.add_argument(
        "--markdown-from",
        type=Path,
        metavar="FILE",
        help="print the Markdown table of a saved --json result and exit (measures nothing)",
    )


def render_saved(args: argparse.Namespace) -> bool:
    """Handle `--markdown-from`: True when the table was printed and the benchmark should stop."""
    if args.markdown_from is None:
        return False
    from tests.bench.render import load, markdown

    sys.stdout.write(markdown(load(args.markdown_from)))
    return True


def emit(result: dict[str, Any], args: argparse.Namespace) -> None:
    """Write the result as the options ask: its Markdown table (always without `--json`; with
    it only on `--markdown`, and to stderr, so `--json > FILE` stays one object), and the JSON."""
    if args.markdown or not args.json:
        from tests.bench.render import markdown

        (sys.stderr if args.json else sys.stdout).write(markdown(result))
    if args.json:
        sys.stdout.write(json.dumps(result) + "\n")
