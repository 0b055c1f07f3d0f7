"""The training spec: one frozen, validated object that describes a job completely.

A `TrainSpec` is built on the client from a file and/or flags, travels to the worker as JSON,
is validated again there, and is logged to MLflow as flattened params. It holds only what
decides the result (model, data, optimisation, run, sampling) and, for a sweep's trial, which
study trial it is (its evaluations are reported there and may stop it early); infrastructure
settings (URLs, credentials, paths) live in `shared.settings`, so a spec re-runs anywhere.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    ValidationError,
    field_validator,
    model_serializer,
    model_validator,
)

from shared import names
from shared.errors import SpecError

Cell = Literal["lstm", "rnn", "gru"]
Device = Literal["auto", "cpu", "cuda"]
Precision = Literal["auto", "fp32", "bf16"]
StudyStorage = Literal["file", "redis"]

BUILTIN_DATASET = "builtin:stdlib"


class _Group(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ModelSpec(_Group):
    """The network: input encoding, recurrent cell and sizes."""

    cell: Cell = Field("lstm", description="Recurrent cell: lstm, rnn (tanh Elman) or gru.")
    embedding_dim: int = Field(
        64, ge=0, le=4096, description="Size of the learned character embedding; 0 = one-hot input."
    )
    hidden_size: int = Field(256, ge=1, le=8192, description="Hidden units per recurrent layer.")
    num_layers: int = Field(2, ge=1, le=16, description="Number of stacked recurrent layers.")
    # Chosen to hold from 2- to 30-minute runs on a 2-core machine (docs/PERFORMANCE.md,
    # "Choosing the default spec"): with no dropout a 30-minute run overfits a 1 MB corpus.
    dropout: float = Field(
        0.3, ge=0.0, lt=1.0, description="Dropout between recurrent layers and before the head."
    )


class DataSpec(_Group):
    """The corpus and how it is cut into training, validation and test text."""

    dataset: str = Field(
        BUILTIN_DATASET,
        min_length=1,
        description="Text file path, 'builtin:stdlib' (no download) or 'synthetic:copy?lag=N'.",
    )
    uri: str | None = Field(
        None, description="Where workers fetch the corpus (set by the client on submission)."
    )
    sha256: str | None = Field(
        None, pattern=r"^[0-9a-f]{64}$", description="Content hash the worker verifies."
    )
    seq_len: int = Field(128, ge=1, le=65536, description="Characters per training sequence.")
    val_fraction: float = Field(
        0.05,
        gt=0.0,
        lt=0.5,
        description="Share of the corpus (by position) held out for validation.",
    )
    test_fraction: float = Field(
        0.05, gt=0.0, lt=0.5, description="Share of the corpus (at the end) held out for testing."
    )
    lowercase: bool = Field(
        False, description="Lower-case the text before building the vocabulary."
    )


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|sec|m|min|h|hr)?\s*$")
_UNIT_SECONDS = {None: 1.0, "s": 1.0, "sec": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0, "hr": 3600.0}


def parse_duration(value: Any) -> float | None:
    """Seconds from a number or a string like '90s', '10m', '1.5h'; None stays None."""
    if isinstance(value, bool):
        raise ValueError("expected seconds or a duration like '90s', '10m', '1.5h'")
    if value is None or isinstance(value, int | float):
        return None if value is None else float(value)
    if isinstance(value, str):
        match = _DURATION.match(value)
        if match:
            return float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
    raise ValueError("expected seconds or a duration like '90s', '10m', '1.5h'")


UNCAPPED_STEPS = 10**9  # max_steps when a time budget alone ends training


class OptimSpec(_Group):
    """Optimisation: AdamW with warm-up, a cosine or constant schedule and gradient clipping."""

    lr: float = Field(3e-3, gt=0.0, description="Peak learning rate of AdamW.")
    batch_size: int = Field(64, ge=1, le=65536, description="Sequences per optimizer step.")
    max_steps: int = Field(
        2000,
        ge=1,
        description="Optimizer steps to train for (with a time_budget and no max_steps: no cap).",
    )
    time_budget: float | None = Field(
        None,
        gt=0.0,
        description="Wall-clock training budget ('10m'); stops early and shapes the schedule.",
    )
    grad_clip: float = Field(1.0, ge=0.0, description="Max global gradient norm; 0 = no clipping.")
    weight_decay: float = Field(0.1, ge=0.0, le=1.0, description="AdamW decoupled weight decay.")
    warmup_steps: int = Field(50, ge=0, description="Steps of linear learning-rate warm-up.")
    schedule: Literal["cosine", "constant"] = Field(
        "cosine", description="Learning-rate decay after warm-up."
    )
    min_lr_ratio: float = Field(
        0.1, ge=0.0, le=1.0, description="Final learning rate as a fraction of lr (cosine)."
    )
    patience: int | None = Field(
        None,
        ge=1,
        description="Stop after this many evaluations in a row without a new best validation "
        "loss (by min_delta); none = never stop early.",
    )
    min_delta: float = Field(
        0.0,
        ge=0.0,
        description="How much lower than the best a validation loss must be to reset patience.",
    )

    @field_validator("time_budget", mode="before")
    @classmethod
    def _duration(cls, value: Any) -> float | None:
        return parse_duration(value)

    @model_validator(mode="before")
    @classmethod
    def _budget_alone_ends_training(cls, values: Any) -> Any:
        """A time budget without max_steps trains for the whole budget, not 2000 steps."""
        budget_only = isinstance(values, dict) and values.get("max_steps") is None
        if budget_only and values.get("time_budget") is not None:
            return {**values, "max_steps": UNCAPPED_STEPS}
        return values


class RunSpec(_Group):
    """Bookkeeping: seed, intervals and how the run is named in MLflow."""

    seed: int = Field(1337, ge=0, description="Seed for weights, batches and dropout.")
    eval_every: int = Field(250, ge=1, description="Steps between validation evaluations.")
    eval_batches: int = Field(
        8, ge=1, description="Batches of held-out text per evaluation (always the same ones)."
    )
    log_every: int = Field(10, ge=1, description="Steps between train-loss metrics.")
    sample_every: int = Field(500, ge=1, description="Steps between generated samples.")
    checkpoint_every: int = Field(500, ge=1, description="Steps between checkpoints.")
    experiment: str = Field(
        names.DEFAULT_EXPERIMENT,
        min_length=1,
        max_length=200,
        description="MLflow experiment to log the run in.",
    )
    name: str | None = Field(None, max_length=200, description="MLflow run name.")
    tags: dict[str, str] = Field(default_factory=dict, description="Extra MLflow tags.")


class SampleSpec(_Group):
    """Text generation: the same prompts, seed and temperature at every sample step."""

    prompts: tuple[Annotated[str, Field(min_length=1)], ...] = Field(
        (), description="Prompts to continue; empty = the first 32 characters of validation text."
    )
    length: int = Field(
        1000,
        ge=1,
        le=100_000,
        description="Characters generated per prompt (at 1000 a sample's judge bits/char "
        "varies by about 0.2 between sampling seeds, 0.3 at 300).",
    )
    temperature: float = Field(0.8, gt=0.0, le=10.0, description="Softmax temperature.")
    top_k: int | None = Field(None, ge=1, description="Sample only among the k likeliest chars.")
    seed: int = Field(0, ge=0, description="Seed of the sampling generator.")


class TrialRef(_Group):
    """Which study trial a job is: it travels in the job's spec, so the worker can report to
    the study and ask whether to prune without asking anyone. It names the kind of storage
    only; where that is (a folder, a Redis URL) comes from the settings of the process that
    opens it (`shared.study`), so the reference, like the spec, re-runs anywhere."""

    sweep: str = Field(min_length=1, description="The sweep id, also the Optuna study's name.")
    number: int = Field(ge=0, description="The trial's number in its study (Optuna's).")
    storage: StudyStorage = Field(
        description="Where the study lives: 'file' (a journal under SEQQ_HOME, --local) or "
        "'redis' (a journal on the broker's Redis)."
    )


class TrainSpec(_Group):
    """Everything that decides a training job's result."""

    model: ModelSpec = Field(default_factory=ModelSpec)
    data: DataSpec = Field(default_factory=DataSpec)
    optim: OptimSpec = Field(default_factory=OptimSpec)
    run: RunSpec = Field(default_factory=RunSpec)
    sample: SampleSpec = Field(default_factory=SampleSpec)
    device: Device = Field("auto", description="auto (CUDA when present), cpu or cuda.")
    precision: Precision = Field(
        "auto", description="auto (bf16 where the device runs it fast), fp32 or bf16."
    )
    trial: TrialRef | None = Field(
        None, description="The sweep trial this job is (set by `seqq sweep`); none = a lone job."
    )

    @model_validator(mode="after")
    def _splits_leave_training_text(self) -> TrainSpec:
        if self.data.val_fraction + self.data.test_fraction >= 0.5:
            raise ValueError("data.val_fraction + data.test_fraction must be below 0.5")
        return self

    @model_serializer(mode="wrap")
    def _lone_job_has_no_trial_key(self, handler: SerializerFunctionWrapHandler) -> Any:
        """A lone job's spec serialises exactly as before sweeps existed (no `trial: null`),
        so its JSON, its spec.json and a worker that predates sweeps all read it unchanged."""
        data = handler(self)
        if self.trial is None and isinstance(data, dict):
            data.pop("trial", None)
        return data

    def flat(self) -> dict[str, str]:
        """The spec as MLflow params: dotted keys, string values (JSON for lists and maps).

        A trial's reference is not a param: its run carries it as tags (sweep id, number)."""
        out: dict[str, str] = {}
        for key, value in self.model_dump(mode="json", exclude={"trial"}).items():
            items = value.items() if isinstance(value, dict) else [(None, value)]
            for inner_key, inner in items:
                dotted = key if inner_key is None else f"{key}.{inner_key}"
                out[dotted] = inner if isinstance(inner, str) else json.dumps(inner, sort_keys=True)
        return out

    def to_json(self) -> str:
        """The wire form: compact JSON with every field spelled out."""
        return self.model_dump_json()


def validation_problems(error: ValidationError, prefix: str = "") -> list[str]:
    """Each problem of a failed validation as `dotted.field: message`, fields under `prefix`."""
    parts = []
    for item in error.errors():
        field = ".".join(str(part) for part in item["loc"])
        field = ".".join(part for part in (prefix, field) if part) or "spec"
        message = item["msg"].removeprefix("Value error, ")
        parts.append(f"{field}: {message}")
    return parts


def format_validation_error(error: ValidationError) -> str:
    """All problems of a failed validation on one line, each naming its dotted field."""
    return "invalid spec: " + "; ".join(validation_problems(error))


def load_spec_file(path: Path) -> dict[str, Any]:
    """The raw mapping in a YAML or JSON spec file; a DataError-free SpecError on any problem."""
    import yaml  # deferred: only commands that read a spec file pay for it

    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SpecError(f"spec file {path}: not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError(f"spec file {path}: cannot read ({exc.__class__.__name__})") from None
    try:
        raw = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else exc.__class__.__name__
        raise SpecError(
            f"spec file {path}: not valid {path.suffix[1:] or 'YAML'}: {first}"
        ) from None
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise SpecError(f"spec file {path}: top level must be a mapping of spec groups")
    return raw


def get_dotted(spec: BaseModel, dotted: str) -> Any:
    """The value of a dotted field (`model.dropout`) of a spec, as JSON would carry it."""
    value: Any = spec.model_dump(mode="json")
    for part in dotted.split("."):
        value = value[part]
    return value


def set_dotted(target: dict[str, Any], dotted: str, value: Any) -> None:
    """Set `a.b` in a nested dict, creating groups on the way (for flag overrides)."""
    *groups, leaf = dotted.split(".")
    node = target
    for group in groups:
        child = node.get(group)
        if not isinstance(child, dict):
            child = {}
            node[group] = child
        node = child
    node[leaf] = value


def build_spec(
    raw: dict[str, Any] | None = None, overrides: dict[str, Any] | None = None
) -> TrainSpec:
    """A validated spec from a raw mapping plus dotted overrides (flags win over the file)."""
    merged: dict[str, Any] = json.loads(json.dumps(raw or {}, default=str))
    for dotted, value in (overrides or {}).items():
        if value is not None:
            set_dotted(merged, dotted, value)
    try:
        return TrainSpec.model_validate(merged)
    except ValidationError as exc:
        raise SpecError(format_validation_error(exc)) from None
