"""The spec flags shared by `seqq run`, `seqq submit` and `seqq compare`.

Each flag sets one dotted spec field and overrides the spec file. Its help, its type and the
default it shows are read from that field in `shared.spec` (description, default, bounds), so
the help cannot drift from the spec; the help names the field, so `--help` also teaches the
spec file format. The table is added to each command's signature by `spec_options`, so the
three commands cannot drift apart either.
"""

from __future__ import annotations

import functools
import inspect
import types
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic.fields import FieldInfo

from shared.spec import TrainSpec

PANEL = "Spec (flags override the --spec file)"

# (dotted spec field, flag declarations): everything else a flag says comes from the field.
SPEC_FLAGS: list[tuple[str, tuple[str, ...]]] = [
    ("model.cell", ("--model", "-m")),
    ("data.dataset", ("--data", "-d")),
    ("model.hidden_size", ("--hidden-size",)),
    ("model.num_layers", ("--num-layers",)),
    ("model.embedding_dim", ("--embedding-dim",)),
    ("model.dropout", ("--dropout",)),
    ("data.seq_len", ("--seq-len",)),
    ("optim.batch_size", ("--batch-size",)),
    ("optim.lr", ("--lr",)),
    ("optim.weight_decay", ("--weight-decay",)),
    ("optim.max_steps", ("--max-steps",)),
    ("optim.time_budget", ("--time-budget",)),
    ("optim.patience", ("--patience",)),
    ("run.eval_every", ("--eval-every",)),
    ("run.sample_every", ("--sample-every",)),
    ("run.checkpoint_every", ("--checkpoint-every",)),
    ("run.seed", ("--seed",)),
    ("device", ("--device",)),
    ("precision", ("--precision",)),
    ("run.experiment", ("--experiment", "-e")),
    ("run.name", ("--name", "-n")),
]
SPEC_FILE_PARAM = "spec_file"
SpecFileOpt = Annotated[
    Path | None,
    typer.Option(
        "--spec",
        "-f",
        help="YAML or JSON spec file (groups: model, data, optim, run, sample).",
        rich_help_panel=PANEL,
        show_default=False,
    ),
]
_BOUNDS = (("ge", ">="), ("gt", ">"), ("le", "<="), ("lt", "<"))  # pydantic's names for bounds


def param_name(decls: tuple[str, ...]) -> str:
    """The Python parameter behind a flag: `--hidden-size` -> `hidden_size`."""
    return decls[0].removeprefix("--").replace("-", "_")


def _owner(dotted: str) -> tuple[Any, str]:
    """The pydantic model that holds a dotted spec key, and the key's last part."""
    model: Any = TrainSpec
    *groups, leaf = dotted.split(".")
    for group in groups:
        model = model.model_fields[group].annotation
    return model, leaf


def spec_field(dotted: str) -> FieldInfo:
    """The pydantic field behind a dotted spec key (`model.hidden_size`)."""
    model, leaf = _owner(dotted)
    return typing.cast(FieldInfo, model.model_fields[leaf])


def spec_default(dotted: str) -> Any:
    """The value a spec has for a dotted key when neither file nor flag sets it."""
    return spec_field(dotted).get_default(call_default_factory=True)


def flag_help(dotted: str) -> str:
    """The field's description, the field it sets and its bounds (Typer adds the default)."""
    field = spec_field(dotted)
    bounds = [
        f"{sign} {getattr(item, name)}"
        for item in field.metadata
        for name, sign in _BOUNDS
        if getattr(item, name, None) is not None
    ]
    return f"{field.description}  (spec: {', '.join([dotted, *bounds])})"


def parses_text(dotted: str) -> bool:
    """Whether the spec reads this field from text itself (a "before" validator: '10m')."""
    model, leaf = _owner(dotted)
    validators = model.__pydantic_decorators__.field_validators.values()
    return any(v.info.mode == "before" and leaf in v.info.fields for v in validators)


def flag_type(dotted: str) -> Any:
    """What Typer parses the flag as: the field's own int or float (`int | None` too), else
    text for the spec to validate (choices, durations like '10m', paths), so every bad value is
    reported together."""
    annotation = spec_field(dotted).annotation
    if parses_text(dotted):
        return str
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):  # `int | None`: int
        given = [a for a in typing.get_args(annotation) if a is not type(None)]
        annotation = given[0] if len(given) == 1 else annotation
    return annotation if annotation in (int, float) else str


def spec_option(dotted: str, decls: tuple[str, ...], panel: str | None = PANEL) -> Any:
    """The Typer option of one spec field: its help and shown default read from the field."""
    default = spec_default(dotted)
    return typer.Option(
        *decls,
        help=flag_help(dotted),
        rich_help_panel=panel,
        show_default=False if default is None else str(default),
    )


def spec_flag(dotted: str, decls: tuple[str, ...]) -> Any:
    """The Annotated type of one spec flag: None unless given, so the file's value stands."""
    return Annotated[flag_type(dotted) | None, spec_option(dotted, decls)]


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

        path = self.spec_file
        raw = load_spec_file(path) if path is not None else {}
        # A trial's spec.json names its study trial; given to run, submit or compare it is a
        # lone job again (that trial has ended: reporting to it would fail the job).
        raw.pop("trial", None)
        return build_spec(raw, {**self.overrides(), **(extra or {})})

    @property
    def spec_file(self) -> Path | None:
        return typing.cast(Path | None, self.values.get(SPEC_FILE_PARAM))

    def overrides(self) -> dict[str, Any]:
        """The flags given, as dotted spec fields (a flag not given is not there)."""
        values = {dotted: self.values[param_name(decls)] for dotted, decls in SPEC_FLAGS}
        return {dotted: value for dotted, value in values.items() if value is not None}


def spec_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """Add the spec flags to a command; it receives them as `flags: SpecFlags`."""
    signature = inspect.signature(func)
    hints = typing.get_type_hints(func, include_extras=True)
    own = [
        p.replace(annotation=hints[p.name])
        for p in signature.parameters.values()
        if p.name != "flags"
    ]
    flags = {SPEC_FILE_PARAM: SpecFileOpt}
    flags |= {param_name(decls): spec_flag(dotted, decls) for dotted, decls in SPEC_FLAGS}
    added = [
        inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=None, annotation=typ)
        for name, typ in flags.items()
    ]
    annotations = {p.name: p.annotation for p in own + added}

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        values = {name: kwargs.pop(name, None) for name in flags}
        return func(*args, flags=SpecFlags(values), **kwargs)

    wrapper.__signature__ = signature.replace(parameters=own + added)  # type: ignore[attr-defined]
    wrapper.__annotations__ = annotations
    return wrapper
