"""Model comparison: the same spec trained once per cell, grouped under one parent MLflow run.

Everything but `model.cell` is identical across the children (data, seed, sizes, budget), so
differences in loss, speed and samples are the models'. Results are read back from MLflow, the
system of record, whether the children trained here, on workers, or long ago (`--runs`).
"""

from __future__ import annotations

import json
import math
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from scheduler import jobs, tracking
from shared import names
from shared.errors import SpecError
from shared.settings import Settings
from shared.spec import TrainSpec
from shared.state import JobState
from shared.synthetic import PREFIX, parse_synthetic

if TYPE_CHECKING:
    from mlflow import MlflowClient

LN2 = math.log(2.0)
CELLS = ("lstm", "rnn", "gru")


def parse_models(text: str) -> list[str]:
    models = [m.strip().lower() for m in text.split(",") if m.strip()]
    bad = [m for m in models if m not in CELLS]
    if bad or not models:
        raise SpecError(
            f"--models: expected a comma-separated list of {', '.join(CELLS)}; got {text!r}"
        )
    if len(set(models)) != len(models):
        raise SpecError(f"--models: {text!r} names a model twice")
    return models


def per_model_specs(spec: TrainSpec, models: list[str]) -> dict[str, TrainSpec]:
    """One spec per cell, identical in every other field."""
    return {
        m: spec.model_copy(update={"model": spec.model.model_copy(update={"cell": m})})
        for m in models
    }


@dataclass
class ModelResult:
    """One child run, as the comparison table and report show it."""

    model: str
    job_id: str
    status: str
    num_params: int | None = None
    steps: int | None = None
    train_time_s: float | None = None
    chars_per_s: float | None = None
    best_val_loss: float | None = None
    best_val_bpc: float | None = None
    test_loss: float | None = None
    test_bpc: float | None = None
    sample: str = ""
    sample_length: int | None = None  # characters generated per prompt (spec sample.length)
    # The last sample step's text-quality metrics and the held-out text's, by metric name.
    text_quality: dict[str, float] = field(default_factory=dict)
    error: str | None = None
    curve_steps: list[int] = field(default_factory=list)
    curve_time_s: list[float] = field(default_factory=list)
    curve_val_loss: list[float] = field(default_factory=list)
    samples_by_step: dict[int, str] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        """The JSON form without the curves."""
        data = asdict(self)
        for key in ("curve_steps", "curve_time_s", "curve_val_loss", "samples_by_step"):
            data.pop(key)
        return data


def read_result(client: MlflowClient, run_id: str, tmp_dir: str) -> ModelResult:
    """A child's numbers, curves and samples, from MLflow."""
    run = client.get_run(run_id)
    tags, metrics = run.data.tags, run.data.metrics
    model = tags.get(names.TAG_MODEL) or run.data.params.get("model.cell", "?")
    result = ModelResult(
        model=model, job_id=run_id, status=run.info.status, error=tags.get(names.TAG_ERROR)
    )
    result.num_params = int(tags[names.TAG_NUM_PARAMS]) if names.TAG_NUM_PARAMS in tags else None
    result.steps = int(tags[names.TAG_STEPS]) if names.TAG_STEPS in tags else None
    result.train_time_s = metrics.get(names.METRIC_TRAIN_TIME)
    result.chars_per_s = metrics.get(names.METRIC_CHARS_PER_SEC)
    result.test_loss = metrics.get(names.METRIC_TEST_LOSS)
    result.test_bpc = metrics.get(names.METRIC_TEST_BPC)
    text_metrics = [m for pair in names.TEXT_METRICS.items() for m in pair]
    result.text_quality = {m: metrics[m] for m in text_metrics if m in metrics}
    length = run.data.params.get("sample.length")
    result.sample_length = int(length) if length else None
    val = sorted(client.get_metric_history(run_id, names.METRIC_VAL_LOSS), key=lambda m: m.step)
    times = {m.step: m.value for m in client.get_metric_history(run_id, names.METRIC_VAL_ELAPSED)}
    result.curve_steps = [m.step for m in val]
    result.curve_val_loss = [m.value for m in val]
    result.curve_time_s = [times.get(m.step, math.nan) for m in val]
    if val:
        result.best_val_loss = min(result.curve_val_loss)
        result.best_val_bpc = result.best_val_loss / LN2
    result.samples_by_step = _samples(client, run_id, tmp_dir)
    if result.samples_by_step:
        result.sample = result.samples_by_step[max(result.samples_by_step)]
    return result


def _samples(client: MlflowClient, run_id: str, tmp_dir: str) -> dict[int, str]:
    """The first prompt's sample at each sample step."""
    out: dict[int, str] = {}
    try:
        path = client.download_artifacts(run_id, names.ARTIFACT_SAMPLE_TABLE, tmp_dir)
    except Exception:
        return out
    with open(path, encoding="utf-8") as handle:
        table = json.load(handle)
    columns = table.get("columns", [])
    for row in table.get("data", []):
        record = dict(zip(columns, row, strict=False))
        step = int(record.get("step", 0))
        text, prompt = str(record.get("sample", "")), str(record.get("prompt", ""))
        out.setdefault(step, text.removeprefix(prompt))
    return out


def start_parent(
    client: MlflowClient, spec: TrainSpec, models: list[str], settings: Settings
) -> str:
    """The parent run that groups the children and holds the report."""
    from mlflow.entities import Param

    from scheduler.tracking import ensure_experiment

    experiment_id = ensure_experiment(client, spec.run.experiment, settings)
    name = f"{spec.run.name or 'compare'}-{'-vs-'.join(models)}"
    run = client.create_run(
        experiment_id,
        run_name=name,
        tags={
            names.TAG_KIND: "compare",
            names.TAG_COMPARE_MODELS: ",".join(models),
            **spec.run.tags,
        },
    )
    params = {k: v for k, v in spec.flat().items() if k != "model.cell"}
    params["compare.models"] = ",".join(models)
    client.log_batch(run.info.run_id, params=[Param(k, v) for k, v in params.items()])
    return str(run.info.run_id)


def child_run_name(spec: TrainSpec, model: str) -> str:
    return f"{spec.run.name or 'compare'}-{model}"


TrainChildren = Callable[[dict[str, TrainSpec], str], dict[str, str]]
"""Trains each model's spec as a child of the parent run (its id); returns model -> job id.

The caller chooses how (here, one after another, or on workers) and how the person watches."""


@dataclass
class Comparison:
    """What `seqq compare` shows: the children's results and where their parent run is."""

    results: list[ModelResult]
    parent_run_id: str | None = None
    urls: dict[str, str] = field(default_factory=dict)  # MLflow UI addresses, in print order
    levels: dict[str, float] | None = None

    @property
    def finished(self) -> bool:
        return all(r.status == JobState.FINISHED for r in self.results)

    def summary(self) -> dict[str, Any]:
        """The JSON form `seqq compare --json` prints."""
        return {
            "parent_run_id": self.parent_run_id,
            "urls": self.urls,
            "levels": self.levels,
            "models": {r.model: r.summary() for r in self.results},
        }


def reference_levels(spec: TrainSpec) -> dict[str, float] | None:
    """The losses that mean "guessing" and "solved" on a synthetic task; None on real text."""
    if not spec.data.dataset.startswith(PREFIX):
        return None
    task = parse_synthetic(spec.data.dataset)
    return {"chance": task.chance_loss(), "perfect recall": task.perfect_loss()}


def compare_runs(run_ids: list[str], settings: Settings, report_dir: Path | None) -> Comparison:
    """Existing runs side by side, read back from MLflow (and reported, when asked)."""
    from scheduler.report import write_report  # deferred: report imports this module

    client = tracking.tracking_client(settings)
    for job_id in run_ids:
        jobs.status(job_id, settings)  # one-line error for an unknown id
    with tempfile.TemporaryDirectory() as tmp:
        results = [read_result(client, job_id, tmp) for job_id in run_ids]
    if report_dir:
        write_report(results, report_dir, "seqq compare: " + " vs ".join(r.model for r in results))
    experiment_id = client.get_run(run_ids[0]).info.experiment_id
    return Comparison(results, urls=tracking.comparison_urls(settings, experiment_id, run_ids))


def compare_models(
    spec: TrainSpec,
    models: list[str],
    settings: Settings,
    train: TrainChildren,
    *,
    on_workers: bool,
    report_dir: Path | None = None,
) -> Comparison:
    """Train `spec` once per model under one parent run, then report on the parent.

    Every check comes before the parent run exists. The parent ends FINISHED only when every
    child did, FAILED otherwise, KILLED on Ctrl-C; its report is logged either way it finishes.
    """
    from scheduler.report import write_report  # deferred: report imports this module

    jobs.check_inputs(spec, settings)
    tracking.check_tracking(settings)
    if on_workers:
        from shared.connection import redis_client

        redis_client(settings)
    levels = reference_levels(spec)
    client = tracking.tracking_client(settings)
    parent = start_parent(client, spec, models, settings)
    status = JobState.FAILED
    try:
        job_ids = train(per_model_specs(spec, models), parent)
        with tempfile.TemporaryDirectory() as tmp:
            results = [read_result(client, job_ids[m], tmp) for m in models]
            title = "seqq compare: " + " vs ".join(models) + f" on {spec.data.dataset}"
            for path in write_report(results, report_dir or Path(tmp) / "report", title, levels):
                client.log_artifact(parent, str(path), names.ARTIFACT_REPORT)
        comparison = Comparison(results, parent, levels=levels)
        status = JobState.FINISHED if comparison.finished else JobState.FAILED
    except KeyboardInterrupt:
        status = JobState.KILLED
        raise
    finally:
        client.set_terminated(parent, status)
    experiment_id = client.get_run(parent).info.experiment_id
    children = [r.job_id for r in results]
    comparison.urls = tracking.comparison_urls(settings, experiment_id, children, parent)
    return comparison
