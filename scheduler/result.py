"""A trained run as a comparison shows it: its figures, curves and samples read back from MLflow,
and each figure's spread over a model's seeds.

MLflow is the system of record, so a run reads the same whether it trained here, on a worker, or
long ago; `summarise` is what `seqq compare --json` carries per model and what the report draws.
"""

from __future__ import annotations

import json
import math
import statistics
from collections import Counter
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field, fields
from typing import TYPE_CHECKING, Any

from shared import names

if TYPE_CHECKING:
    from mlflow import MlflowClient

LN2 = math.log(2.0)


def _figure() -> Any:
    """A number a run reports, which a comparison over seeds summarises (mean and spread)."""
    return field(default=None, metadata={"figure": True})


@dataclass
class ModelResult:
    """One child run, as the comparison table and report show it."""

    model: str
    job_id: str
    status: str
    seed: int | None = None
    num_params: int | None = _figure()
    steps: int | None = _figure()
    train_time_s: float | None = _figure()
    chars_per_s: float | None = _figure()
    best_val_loss: float | None = _figure()
    best_val_bpc: float | None = _figure()
    best_step: int | None = _figure()  # where the best validation loss was: the best checkpoint
    test_loss: float | None = _figure()  # of the final weights
    test_bpc: float | None = _figure()
    test_loss_best: float | None = _figure()  # of the best checkpoint's weights
    test_bpc_best: float | None = _figure()
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


# The figures a run reports, in the order of its fields: a new figure is one more `_figure()`
# field (and a row in report.MEASURES to show it); the summaries over seeds follow by themselves.
FIGURES = tuple(f.name for f in fields(ModelResult) if f.metadata.get("figure"))
# The text-quality figures, each sample measure then the held-out text's (names.TEXT_METRICS): a
# run keeps them in `text_quality` by MLflow metric name, so a new one is a name there, not a
# field; they are shown and summarised over seeds as FIGURES are.
TEXT_FIGURES = tuple(m for pair in names.TEXT_METRICS.items() for m in pair)


@dataclass(frozen=True)
class Spread:
    """One figure over a model's runs: the mean, the sample standard deviation (None for one
    value), the extremes and how many runs had it (a failed run has no test loss)."""

    mean: float
    std: float | None
    min: float
    max: float
    n: int

    @classmethod
    def of(cls, values: list[float]) -> Spread:
        std = statistics.stdev(values) if len(values) > 1 else None
        return cls(statistics.fmean(values), std, min(values), max(values), len(values))


def figure_values(runs: list[ModelResult], figure: str) -> list[float]:
    """The runs' finite values of one figure, a FIGURES field or a TEXT_FIGURES metric (runs
    without it are left out)."""
    if figure in TEXT_FIGURES:
        values: Iterable[float | None] = (r.text_quality.get(figure) for r in runs)
    else:
        values = (getattr(r, figure) for r in runs)
    return [float(v) for v in values if v is not None and math.isfinite(v)]


def _spread(runs: list[ModelResult], figure: str) -> dict[str, Any] | None:
    values = figure_values(runs, figure)
    return asdict(Spread.of(values)) if values else None


def summarise(runs: list[ModelResult]) -> dict[str, Any]:
    """The JSON summary of one model's runs: their seeds, how they ended, each figure's spread;
    the text-quality figures under `text_quality` as in a run's own JSON, each metric that a run
    logged."""
    out: dict[str, Any] = {
        "runs": len(runs),
        "seeds": [r.seed for r in runs],
        "statuses": dict(Counter(r.status for r in runs)),
    }
    for figure in FIGURES:
        out[figure] = _spread(runs, figure)
    quality = {metric: _spread(runs, metric) for metric in TEXT_FIGURES}
    out["text_quality"] = {metric: s for metric, s in quality.items() if s is not None}
    return out


def model_labels(results: list[ModelResult]) -> list[str]:
    """Run headings: the model, with the run id's start when two runs share a model."""
    counts = Counter(r.model for r in results)
    return [r.model if counts[r.model] == 1 else f"{r.model} {r.job_id[:8]}" for r in results]


def read_result(client: MlflowClient, run_id: str, tmp_dir: str) -> ModelResult:
    """A child's numbers, curves and samples, from MLflow."""
    run = client.get_run(run_id)
    tags, metrics = run.data.tags, run.data.metrics
    model = tags.get(names.TAG_MODEL) or run.data.params.get("model.cell", "?")
    seed = tags.get(names.TAG_SEED) or run.data.params.get("run.seed")
    result = ModelResult(
        model=model,
        job_id=run_id,
        status=run.info.status,
        seed=int(seed) if seed is not None else None,
        error=tags.get(names.TAG_ERROR),
    )
    result.num_params = int(tags[names.TAG_NUM_PARAMS]) if names.TAG_NUM_PARAMS in tags else None
    result.steps = int(tags[names.TAG_STEPS]) if names.TAG_STEPS in tags else None
    result.train_time_s = metrics.get(names.METRIC_TRAIN_TIME)
    result.chars_per_s = metrics.get(names.METRIC_CHARS_PER_SEC)
    result.test_loss = metrics.get(names.METRIC_TEST_LOSS)
    result.test_bpc = metrics.get(names.METRIC_TEST_BPC)
    result.test_loss_best = metrics.get(names.METRIC_TEST_LOSS_BEST)
    result.test_bpc_best = metrics.get(names.METRIC_TEST_BPC_BEST)
    result.text_quality = {m: metrics[m] for m in TEXT_FIGURES if m in metrics}
    length = run.data.params.get("sample.length")
    result.sample_length = int(length) if length else None
    val = sorted(client.get_metric_history(run_id, names.METRIC_VAL_LOSS), key=lambda m: m.step)
    times = {m.step: m.value for m in client.get_metric_history(run_id, names.METRIC_VAL_ELAPSED)}
    result.curve_steps = [m.step for m in val]
    result.curve_val_loss = [m.value for m in val]
    result.curve_time_s = [times.get(m.step, math.nan) for m in val]
    if val:
        best = min(val, key=lambda m: m.value)  # the first of equals, as the worker keeps it
        result.best_val_loss, result.best_step = best.value, best.step
        result.best_val_bpc = best.value / LN2
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
