"""The spec flags shared by `seqq run`, `seqq submit` and `seqq compare`.

Each flag maps to one dotted spec field and overrides the spec file. The table is declared
once and added to each command's signature by `spec_options`, so the three commands cannot
drift apart; the help names the spec key, so `--help` also teaches the spec file format.
"""

from __future__ import annotations

import functools
import inspect
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

PANEL = "Spec (flags override the --spec file)"

# (parameter, dotted spec field or None, type, flag declarations, help)
SPEC_FLAGS: list[tuple[str, str | None, Any, tuple[str, ...], str]] = [
    (
        "spec_file",
        None,
        Path,
        ("--spec", "-f"),
        "YAML or JSON spec file (groups: model, data, optim, run, sample).",
    ),
    (
        "model",
        "model.cell",
        str,
        ("--model", "-m"),
        "Recurrent cell: lstm, rnn or gru.  (spec: model.cell)",
    ),
    (
        "data",
        "data.dataset",
        str,
        ("--data", "-d"),
        "Text file, builtin:stdlib (default, no download) or synthetic:copy?lag=N."
        "  (spec: data.dataset)",
    ),
    (
        "hidden_size",
        "model.hidden_size",
        int,
        ("--hidden-size",),
        "Hidden units per layer (256).  (spec: model.hidden_size)",
    ),
    (
        "num_layers",
        "model.num_layers",
        int,
        ("--num-layers",),
        "Stacked recurrent layers (2).  (spec: model.num_layers)",
    ),
    (
        "embedding_dim",
        "model.embedding_dim",
        int,
        ("--embedding-dim",),
        "Embedding size; 0 = one-hot input (64).  (spec: model.embedding_dim)",
    ),
    (
        "dropout",
        "model.dropout",
        float,
        ("--dropout",),
        "Dropout probability (0).  (spec: model.dropout)",
    ),
    (
        "seq_len",
        "data.seq_len",
        int,
        ("--seq-len",),
        "Characters per training sequence (128).  (spec: data.seq_len)",
    ),
    (
        "batch_size",
        "optim.batch_size",
        int,
        ("--batch-size",),
        "Sequences per step (64).  (spec: optim.batch_size)",
    ),
    ("lr", "optim.lr", float, ("--lr",), "Peak learning rate (3e-3).  (spec: optim.lr)"),
    (
        "max_steps",
        "optim.max_steps",
        int,
        ("--max-steps",),
        "Optimizer steps (2000).  (spec: optim.max_steps)",
    ),
    (
        "time_budget",
        "optim.time_budget",
        str,
        ("--time-budget",),
        "Wall-clock budget instead of steps, e.g. 90s, 10m.  (spec: optim.time_budget)",
    ),
    (
        "eval_every",
        "run.eval_every",
        int,
        ("--eval-every",),
        "Steps between validations (250).  (spec: run.eval_every)",
    ),
    (
        "sample_every",
        "run.sample_every",
        int,
        ("--sample-every",),
        "Steps between samples (500).  (spec: run.sample_every)",
    ),
    (
        "checkpoint_every",
        "run.checkpoint_every",
        int,
        ("--checkpoint-every",),
        "Steps between checkpoints (500).  (spec: run.checkpoint_every)",
    ),
    ("seed", "run.seed", int, ("--seed",), "Random seed (1337).  (spec: run.seed)"),
    ("device", "device", str, ("--device",), "auto, cpu or cuda.  (spec: device)"),
    ("precision", "precision", str, ("--precision",), "auto, fp32 or bf16.  (spec: precision)"),
    (
        "experiment",
        "run.experiment",
        str,
        ("--experiment", "-e"),
        "MLflow experiment (seqq).  (spec: run.experiment)",
    ),
    ("name", "run.name", str, ("--name", "-n"), "MLflow run name.  (spec: run.name)"),
]


QueueOpt = Annotated[
    str | None,
    typer.Option(
        "--queue", help="Send to this queue (cpu, gpu, cpu.high, ...) instead of routing."
    ),
]
PriorityOpt = Annotated[
    str,
    typer.Option("--priority", help="high, normal or low: workers drain high queues first."),
]


class SpecFlags:
    """The values of the spec flags one command received."""

    def __init__(self, values: dict[str, Any]) -> None:
        self.values = values

    def build(self, extra: dict[str, Any] | None = None) -> Any:
        """The validated TrainSpec: file first, then flags, then `extra` dotted overrides."""
        from shared.spec import build_spec, load_spec_file

        path = self.values.get("spec_file")
        raw = load_spec_file(path) if path is not None else {}
        overrides = {field: self.values[param] for param, field, *_ in SPEC_FLAGS if field}
        overrides.update(extra or {})
        return build_spec(raw, overrides)


def spec_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """Add the spec flags to a command; it receives them as `flags: SpecFlags`."""
    signature = inspect.signature(func)
    hints = typing.get_type_hints(func, include_extras=True)
    own = [
        p.replace(annotation=hints[p.name])
        for p in signature.parameters.values()
        if p.name != "flags"
    ]
    added = []
    annotations = {p.name: p.annotation for p in own}
    for param, _field, typ, decls, help_text in SPEC_FLAGS:
        annotation = Annotated[
            typ | None,  # type: ignore[valid-type]
            typer.Option(*decls, help=help_text, rich_help_panel=PANEL, show_default=False),
        ]
        added.append(
            inspect.Parameter(
                param, inspect.Parameter.KEYWORD_ONLY, default=None, annotation=annotation
            )
        )
        annotations[param] = annotation
    names = {p[0] for p in SPEC_FLAGS}

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        values = {name: kwargs.pop(name, None) for name in names}
        return func(*args, flags=SpecFlags(values), **kwargs)

    wrapper.__signature__ = signature.replace(parameters=own + added)  # type: ignore[attr-defined]
    wrapper.__annotations__ = annotations
    return wrapper
