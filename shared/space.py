"""The sweep file: a base spec, a search space over its fields and how the search runs.

A sweep file is a spec file (the same groups) plus two keys, `space` and `sweep`:

    model: {cell: lstm}
    space:
      optim.lr: {log: [1.0e-4, 1.0e-2]}                  # log-uniform floats
      model.dropout: {range: [0.0, 0.5]}                # uniform floats; `step: 0.1` for a grid
      model.num_layers: {int: [1, 3]}                   # integers; optional `step`, `log: true`
      model.cell: [lstm, gru]                           # choices: a list of single values
    sweep: {trials: 32, parallel: 2, sampler: tpe, pruner: asha, metric: val_loss, seed: 0}
    # optional, ASHA's rungs in steps or seconds: sweep: {asha: {first_rung: 100, factor: 5}}

`parse_sweep` checks all of it at once and raises one `SpecError` naming every bad field; a
space is accepted only when the spec itself accepts each of its bounds and choices, so every
sampled spec is a valid `TrainSpec`. `suggest`, `distributions` and `grid` hand the space to
Optuna, and `trial_spec` turns sampled values into the trial's spec, which names its study trial
(`shared.spec.TrialRef`). Optuna is imported only inside the functions that build its objects,
so importing this module stays as cheap as importing the spec.
"""

from __future__ import annotations

import contextlib
import types
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Union, get_args, get_origin

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from shared.errors import SpecError
from shared.spec import (
    TrainSpec,
    TrialRef,
    build_spec,
    get_dotted,
    load_spec_file,
    parse_duration,
    set_dotted,
    validation_problems,
)

if TYPE_CHECKING:
    from optuna.distributions import BaseDistribution
    from optuna.trial import BaseTrial

Scalar = str | int | float | bool | None  # what Optuna stores as a categorical choice
Sampler = Literal["tpe", "random", "grid"]
Pruner = Literal["asha", "median", "none"]
Metric = Literal["val_loss"]


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _steps_fit(low: float, high: float, step: float) -> bool:
    """Whether `high` lies on the grid of `step` from `low`; decimal, as Optuna checks it."""
    return (Decimal(str(high)) - Decimal(str(low))) % Decimal(str(step)) == 0


class FloatRange(_Frozen):
    """Floats drawn uniformly from low to high, both included (`{range: [lo, hi]}`)."""

    bounds: tuple[float, float] = Field(alias="range", description="Lowest and highest value.")
    step: float | None = Field(None, gt=0.0, description="Draw only low + k·step (a grid).")

    @model_validator(mode="after")
    def _ordered_and_stepped(self) -> FloatRange:
        low, high = self.bounds
        if low > high:
            raise ValueError(f"low {low} is above high {high}")
        if self.step is not None and not _steps_fit(low, high, self.step):
            raise ValueError(f"high - low ({high} - {low}) is not a multiple of step {self.step}")
        return self

    def edges(self) -> tuple[Scalar, ...]:
        """The values whose acceptance by the spec vouches for every value drawn."""
        return self.bounds

    def contains(self, value: Any) -> bool:
        """Whether the range can draw `value` (on its grid, when stepped)."""
        if isinstance(value, bool) or not isinstance(value, int | float):
            return False
        low, high = self.bounds
        on_grid = self.step is None or _steps_fit(low, value, self.step)
        return low <= value <= high and on_grid

    def suggest(self, trial: BaseTrial, name: str) -> float:
        return trial.suggest_float(name, *self.bounds, step=self.step)

    def distribution(self) -> BaseDistribution:
        from optuna.distributions import FloatDistribution

        return FloatDistribution(*self.bounds, step=self.step)

    def grid(self) -> list[Scalar] | None:
        """Every value on the step grid (decimal, so 0.3 is 0.3), or None when continuous."""
        if self.step is None:
            return None
        low, step = Decimal(str(self.bounds[0])), Decimal(str(self.step))
        count = int((Decimal(str(self.bounds[1])) - low) / step) + 1
        return [float(low + k * step) for k in range(count)]


class LogRange(_Frozen):
    """Floats drawn log-uniformly from low to high, both above 0 (`{log: [lo, hi]}`)."""

    bounds: tuple[float, float] = Field(alias="log", description="Lowest and highest value.")

    @model_validator(mode="after")
    def _ordered_and_positive(self) -> LogRange:
        low, high = self.bounds
        if low <= 0:
            raise ValueError(f"a log range must lie above 0, got low {low}")
        if low > high:
            raise ValueError(f"low {low} is above high {high}")
        return self

    def edges(self) -> tuple[Scalar, ...]:
        """The values whose acceptance by the spec vouches for every value drawn."""
        return self.bounds

    def contains(self, value: Any) -> bool:
        """Whether the range can draw `value`."""
        if isinstance(value, bool) or not isinstance(value, int | float):
            return False
        return self.bounds[0] <= value <= self.bounds[1]

    def suggest(self, trial: BaseTrial, name: str) -> float:
        return trial.suggest_float(name, *self.bounds, log=True)

    def distribution(self) -> BaseDistribution:
        from optuna.distributions import FloatDistribution

        return FloatDistribution(*self.bounds, log=True)

    def grid(self) -> list[Scalar] | None:
        return None  # continuous: no grid to walk


class IntRange(_Frozen):
    """Integers from low to high, both included (`{int: [lo, hi]}`)."""

    bounds: tuple[int, int] = Field(alias="int", description="Lowest and highest value.")
    step: int = Field(1, ge=1, description="Draw only low + k·step.")
    log: bool = Field(False, description="Draw log-uniformly (low >= 1, step 1).")

    @model_validator(mode="after")
    def _ordered_and_stepped(self) -> IntRange:
        low, high = self.bounds
        if low > high:
            raise ValueError(f"low {low} is above high {high}")
        if self.log and low < 1:
            raise ValueError(f"a log int range must start at 1 or above, got low {low}")
        if self.log and self.step != 1:
            raise ValueError("a log int range takes no step (Optuna draws it with step 1)")
        if (high - low) % self.step:
            raise ValueError(f"high - low ({high} - {low}) is not a multiple of step {self.step}")
        return self

    def edges(self) -> tuple[Scalar, ...]:
        """The values whose acceptance by the spec vouches for every value drawn."""
        return self.bounds

    def contains(self, value: Any) -> bool:
        """Whether the range can draw `value` (an integer on its step)."""
        if isinstance(value, bool) or not isinstance(value, int):
            return False
        low, high = self.bounds
        return low <= value <= high and (value - low) % self.step == 0

    def suggest(self, trial: BaseTrial, name: str) -> int:
        return trial.suggest_int(name, *self.bounds, step=self.step, log=self.log)

    def distribution(self) -> BaseDistribution:
        from optuna.distributions import IntDistribution

        return IntDistribution(*self.bounds, log=self.log, step=self.step)

    def grid(self) -> list[Scalar] | None:
        """Every integer the range can draw (a log range is still a finite set of integers)."""
        return list(range(self.bounds[0], self.bounds[1] + 1, self.step))


class Choice(_Frozen):
    """One of the listed values (a YAML list of single values: numbers, strings, booleans)."""

    values: tuple[Scalar, ...] = Field(description="The values to choose among, in order.")

    @model_validator(mode="before")
    @classmethod
    def _single_values(cls, data: Any) -> Any:
        # Checked here so a nested list reads as one sentence, not one error per union member.
        listed = data.get("values") if isinstance(data, dict) else None
        for item in listed if isinstance(listed, list | tuple) else ():
            if not isinstance(item, Scalar):
                raise ValueError(f"choice {item!r} is not a single value (number, string, bool)")
        return data

    @model_validator(mode="after")
    def _not_empty_nor_repeated(self) -> Choice:
        if not self.values:
            raise ValueError("an empty choice: list at least one value")
        for index, value in enumerate(self.values):
            if value in self.values[:index]:
                raise ValueError(f"choice {value!r} is listed twice")
        return self

    def edges(self) -> tuple[Scalar, ...]:
        """The values whose acceptance by the spec vouches for every value drawn."""
        return self.values

    def contains(self, value: Any) -> bool:
        """Whether `value` is one of the choices (of the same type: 1 is not True)."""
        return any(type(value) is type(choice) and value == choice for choice in self.values)

    def suggest(self, trial: BaseTrial, name: str) -> Scalar:
        return trial.suggest_categorical(name, self.values)

    def distribution(self) -> BaseDistribution:
        from optuna.distributions import CategoricalDistribution

        return CategoricalDistribution(self.values)

    def grid(self) -> list[Scalar] | None:
        return list(self.values)


Dimension = FloatRange | LogRange | IntRange | Choice
Space = dict[str, Dimension]  # dotted spec field -> where its value is drawn from


class AshaSettings(_Frozen):
    """Successive halving's rungs: the first at `first_rung` (steps, or seconds of training),
    each next `factor` times further; a trial trains past a rung only while it is in the best
    1/factor of the trials that have reached that rung (`shared.study.pruner`)."""

    first_rung: int | str | None = Field(
        None,
        description="ASHA's first rung: steps (100) or seconds of training ('30s'); none = "
        "budget / factor^2 seconds for time-budgeted trials, else the first evaluation.",
    )
    factor: int = Field(
        5,
        ge=2,
        description="ASHA's reduction factor: rung k at first_rung x factor^k; the best "
        "1/factor of a rung go on.",
    )

    @field_validator("first_rung")
    @classmethod
    def _steps_or_duration(cls, value: int | str | None) -> int | str | None:
        """Steps (at least 1) or a duration with its unit; a bare '100' would be ambiguous."""
        if value is None or (isinstance(value, int) and value >= 1):
            return value
        seconds = None
        if isinstance(value, str) and value.strip()[-1:].isalpha():
            with contextlib.suppress(ValueError):
                seconds = parse_duration(value)
        if not seconds:
            raise ValueError("expected steps (100) or a duration of training like '30s'")
        return value

    @property
    def first_rung_s(self) -> float | None:
        """The first rung in seconds of training, when it is given as a duration."""
        return parse_duration(self.first_rung) if isinstance(self.first_rung, str) else None


class SweepSettings(_Frozen):
    """How the search runs: how many trials, how many at once, which sampler and pruner."""

    trials: int = Field(20, ge=1, description="Trials in all, whether they finish, prune or fail.")
    parallel: int | None = Field(
        None, ge=1, description="Trials in flight at once; none = the live workers on the queue."
    )
    sampler: Sampler = Field(
        "tpe", description="Optuna sampler: tpe, random or grid (grid: choices, stepped ranges)."
    )
    pruner: Pruner = Field(
        "asha", description="Early stopping: asha (successive halving), median or none."
    )
    asha: AshaSettings = Field(
        default_factory=AshaSettings,
        description="ASHA's rungs: {first_rung: steps or '30s', factor: n} (default factor 5).",
    )
    metric: Metric = Field(
        "val_loss", description="What the study minimises: validation loss, the only one for now."
    )
    try_base: bool = Field(
        False,
        description="Trial 0 trains the base spec's own values of the searched fields (when the "
        "space can draw them all; not with grid), so the best is never worse than the base at "
        "the sweep's trial budget. `seqq compare --tune` turns it on.",
    )
    seed: int | None = Field(0, ge=0, description="Sampler seed; none = a fresh draw each sweep.")


class SweepFile(_Frozen):
    """A checked sweep file: the spec every trial starts from, the space and the settings."""

    base: TrainSpec
    space: Space
    sweep: SweepSettings


def _field_kind(dotted: str) -> str:
    """'int', 'float' or 'other' for a leaf of the spec; a problem sentence when it is none."""
    model: type[BaseModel] = TrainSpec
    *groups, leaf = dotted.split(".")
    for group in groups:
        inner = model.model_fields.get(group)
        annotation = inner.annotation if inner else None
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return "not a spec field"
        model = annotation
    info = model.model_fields.get(leaf)
    if info is None:
        return "not a spec field"
    annotation = info.annotation
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        first = next(iter(annotation.model_fields))
        return f"a group of fields, not one value (search one, e.g. {dotted}.{first})"
    optional = get_origin(annotation) in (Union, types.UnionType)
    kinds = [a for a in get_args(annotation) if a is not type(None)] if optional else [annotation]
    if len(kinds) == 1 and kinds[0] in (int, float):
        return "int" if kinds[0] is int else "float"
    return "other"


def _parse_dimension(raw: Any) -> Dimension:
    """The typed dimension a space entry spells; pydantic errors locate within the entry."""
    if isinstance(raw, list):
        return Choice.model_validate({"values": raw})
    forms: dict[str, type[Dimension]] = {"int": IntRange, "range": FloatRange, "log": LogRange}
    # `int` first: `{int: [...], log: true}` is a log int range, not a log float range.
    form = next((forms[key] for key in forms if isinstance(raw, dict) and key in raw), None)
    if form is None:
        raise ValueError(
            "expected a list of choices or one of {range: [lo, hi]}, {log: [lo, hi]}, "
            "{int: [lo, hi]} (a fixed value belongs in the base spec)"
        )
    return form.model_validate(raw)


def _kind_problem(dimension: Dimension, kind: str) -> str | None:
    """Why this form cannot draw this field's values, if it cannot."""
    if kind == "other" and not isinstance(dimension, Choice):
        return "takes no range of numbers: list the choices"
    # An int range on a float field is harmless (every int is a float the spec takes); a float
    # range on an int field would draw 0.37 hidden units.
    if kind == "int" and isinstance(dimension, FloatRange | LogRange):
        return "is an integer field: use {int: [lo, hi]} (with log: true for a log scale)"
    return None


def _refusals(base: dict[str, Any], dotted: str, dimension: Dimension) -> list[str]:
    """The spec's own word on each edge of a dimension, every other field as in the base."""
    problems = []
    for value in dimension.edges():
        raw = _with_values(base, {dotted: value})
        try:
            TrainSpec.model_validate(raw)
        except ValidationError as exc:
            # A cross-field check has no field of its own; its sentence names the fields.
            reasons = ", ".join(p.removeprefix("spec: ") for p in validation_problems(exc))
            problems.append(f"space.{dotted}: {value!r} is refused by the spec ({reasons})")
    return problems


def _with_values(base: dict[str, Any], values: dict[str, Any]) -> dict[str, Any]:
    """A copy of a spec mapping with dotted fields set, the base left untouched."""
    # Not build_spec's overrides: they skip None (a flag not given), but a drawn None is a value.
    raw = {key: dict(group) if isinstance(group, dict) else group for key, group in base.items()}
    for dotted, value in values.items():
        set_dotted(raw, dotted, value)
    return raw


def _parse_space(raw: Any, base: dict[str, Any] | None) -> tuple[Space, list[str]]:
    """The typed space and every problem with it; refusals are asked only of a valid base."""
    if not isinstance(raw, dict) or not raw:
        return {}, ["space: name at least one spec field, e.g. {optim.lr: {log: [1e-4, 1e-2]}}"]
    space: Space = {}
    problems: list[str] = []
    for dotted, entry in raw.items():
        kind = _field_kind(str(dotted))
        if kind not in ("int", "float", "other"):
            problems.append(f"space.{dotted}: {kind}")
            continue
        try:
            dimension = _parse_dimension(entry)
        except ValidationError as exc:
            problems += validation_problems(exc, prefix=f"space.{dotted}")
            continue
        except ValueError as exc:
            problems.append(f"space.{dotted}: {exc}")
            continue
        mismatch = _kind_problem(dimension, kind)
        if mismatch:
            problems.append(f"space.{dotted}: {mismatch}")
        elif base is not None:
            problems += _refusals(base, dotted, dimension)
        space[dotted] = dimension
    return space, problems


def parse_sweep(raw: dict[str, Any]) -> SweepFile:
    """A checked sweep from a sweep file's mapping; one SpecError naming every bad field."""
    raw = dict(raw)
    raw_space, raw_settings = raw.pop("space", None), raw.pop("sweep", None) or {}
    problems: list[str] = []
    base: TrainSpec | None = None
    if "trial" in raw:  # each trial's reference is written by the sweep, never by hand
        problems.append("trial: set by `seqq sweep` for each trial; remove it from the file")
        raw.pop("trial")
    try:
        base = TrainSpec.model_validate(raw)
    except ValidationError as exc:
        problems += validation_problems(exc)  # worded exactly like a spec file's problems
    base_raw = base.model_dump(mode="json") if base is not None else None
    space, space_problems = _parse_space(raw_space, base_raw)
    problems += space_problems
    settings: SweepSettings | None = None
    try:
        settings = SweepSettings.model_validate(raw_settings)
    except ValidationError as exc:
        problems += validation_problems(exc, prefix="sweep")
    # Read from the raw settings, so a grid space is checked even beside a bad trial count.
    if isinstance(raw_settings, dict) and raw_settings.get("sampler") == "grid":
        problems += [
            f"space.{dotted}: the grid sampler needs choices or stepped ranges (add a step)"
            for dotted, dimension in space.items()
            if dimension.grid() is None
        ]
    if problems or base is None or settings is None:
        raise SpecError("invalid sweep: " + "; ".join(problems))
    return SweepFile(base=base, space=space, sweep=settings)


def load_sweep_file(path: Path) -> SweepFile:
    """A checked sweep from a YAML or JSON file (read like a spec file)."""
    return parse_sweep(load_spec_file(path))


def suggest(trial: BaseTrial, space: Space) -> dict[str, Any]:
    """One drawn value per dotted field, asked of an Optuna trial (the dotted name is the param)."""
    return {dotted: dimension.suggest(trial, dotted) for dotted, dimension in space.items()}


def base_values(sweep: SweepFile) -> dict[str, Scalar] | None:
    """The base spec's own value of every searched field, or None when the space cannot draw
    one of them (the base is then no trial of this sweep)."""
    values: dict[str, Scalar] = {}
    for dotted, dimension in sweep.space.items():
        value = get_dotted(sweep.base, dotted)
        if not dimension.contains(value):
            return None
        values[dotted] = value
    return values


def distributions(space: Space) -> dict[str, BaseDistribution]:
    """The space as Optuna distributions, for `study.ask(fixed_distributions=...)`."""
    return {dotted: dimension.distribution() for dotted, dimension in space.items()}


def grid(space: Space) -> dict[str, list[Scalar]]:
    """Every value of every field, for Optuna's GridSampler; ValueError on a continuous range."""
    points = {dotted: dimension.grid() for dotted, dimension in space.items()}
    continuous = [dotted for dotted, values in points.items() if values is None]
    if continuous:
        raise ValueError(f"no grid over continuous ranges: {', '.join(continuous)}")
    return {dotted: values for dotted, values in points.items() if values is not None}


def trial_spec(base: TrainSpec, values: dict[str, Any], trial: TrialRef | None = None) -> TrainSpec:
    """The spec a trial trains: the base with its drawn values (and the reference to its study
    trial), validated like any spec."""
    raw = _with_values(base.model_dump(mode="json"), values)
    if trial is not None:
        raw["trial"] = trial.model_dump(mode="json")
    return build_spec(raw)
