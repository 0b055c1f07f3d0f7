"""Model comparison: the same spec trained once per cell and seed, under one parent MLflow run.

Everything but `model.cell` and `run.seed` is identical across the children (data, sizes,
budget), and every model trains with the same seeds, so differences in loss, speed and samples
are the models'; over several seeds each figure is a mean with its spread, so a difference can be
told from the luck of one seed. Results are read back from MLflow, the system of record, whether
the children trained here, on workers, or long ago (`--runs`).
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from scheduler import jobs, tracking
from scheduler.result import ModelResult, model_labels, read_result, summarise
from shared import names
from shared.errors import SpecError
from shared.settings import Settings
from shared.spec import TrainSpec
from shared.state import JobState
from shared.synthetic import PREFIX, parse_synthetic

if TYPE_CHECKING:
    from mlflow import MlflowClient

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


def _bad_seeds(given: object) -> SpecError:
    return SpecError(f"--seeds: expected a whole number of at least 1; got {given!r}")


def parse_seeds(text: str) -> int:
    """`--seeds N`: how many seeds every model trains with, a whole number of at least 1."""
    try:
        count = int(text.strip())
    except ValueError:
        raise _bad_seeds(text) from None
    if count < 1:
        raise _bad_seeds(text)
    return count


def seed_list(spec: TrainSpec, count: int) -> list[int]:
    """The spec's seed and the next `count - 1`: `--seed 7 --seeds 3` trains 7, 8 and 9."""
    if count < 1:
        raise _bad_seeds(count)
    return [spec.run.seed + i for i in range(count)]


def child_label(model: str, seed: int, several: bool) -> str:
    """How a child is shown and named: its model, and its seed when there are several."""
    return f"{model}-seed-{seed}" if several else model


def child_specs(spec: TrainSpec, models: list[str], seeds: list[int]) -> dict[str, TrainSpec]:
    """One spec per (model, seed), identical in every other field, keyed by `child_label`.

    Seed by seed, so children trained one after another alternate models and a comparison cut
    short still has each model at the same seeds."""
    return {
        child_label(m, seed, len(seeds) > 1): spec.model_copy(
            update={
                "model": spec.model.model_copy(update={"cell": m}),
                "run": spec.run.model_copy(update={"seed": seed}),
            }
        )
        for seed in seeds
        for m in models
    }


def start_parent(
    client: MlflowClient,
    spec: TrainSpec,
    models: list[str],
    seeds: list[int],
    settings: Settings,
    *,
    varied: Iterable[str] = (),
    tags: dict[str, str] | None = None,
    params: dict[str, str] | None = None,
    label: str = "",
) -> str:
    """The parent run that groups the children and holds the report.

    Its params are what the children share: the spec less the cell, the seed when there are
    several, and `varied` (a tuned comparison's searched fields); `tags`, `params` and `label`
    (in the run's name) say more about a kind of comparison."""
    from mlflow.entities import Param

    from scheduler.tracking import ensure_experiment

    experiment_id = ensure_experiment(client, spec.run.experiment, settings)
    name = f"{spec.run.name or 'compare'}{label}-{'-vs-'.join(models)}"
    seed_text = ",".join(str(s) for s in seeds)
    run = client.create_run(
        experiment_id,
        run_name=name,
        tags={
            names.TAG_KIND: names.KIND_COMPARE,
            names.TAG_COMPARE_MODELS: ",".join(models),
            names.TAG_COMPARE_SEEDS: seed_text,
            **(tags or {}),
            **spec.run.tags,
        },
    )
    # What the children share; the cell, and the seed when there are several, is theirs alone.
    own = {"model.cell", *varied} | ({"run.seed"} if len(seeds) > 1 else set())
    shared = {k: v for k, v in spec.flat().items() if k not in own}
    shared["compare.models"] = ",".join(models)
    shared["compare.seeds"] = seed_text
    shared.update(params or {})
    client.log_batch(run.info.run_id, params=[Param(k, v) for k, v in shared.items()])
    return str(run.info.run_id)


def child_run_name(spec: TrainSpec, label: str) -> str:
    return f"{spec.run.name or 'compare'}-{label}"


TrainChildren = Callable[[dict[str, TrainSpec], str], dict[str, str]]
"""Trains each child's spec (keyed by `child_label`) as a child of the parent run (its id);
returns label -> job id.

The caller chooses how (here, one after another, or on workers) and how the person watches."""


@dataclass
class Comparison:
    """What `seqq compare` shows: the children's results and where their parent run is."""

    results: list[ModelResult]  # every run, a model's seeds side by side
    parent_run_id: str | None = None
    urls: dict[str, str] = field(default_factory=dict)  # MLflow UI addresses, in print order
    levels: dict[str, float] | None = None
    seeds: list[int] | None = None  # every model's seeds; None: runs as they are (`--runs`)

    @property
    def finished(self) -> bool:
        return all(r.status == JobState.FINISHED for r in self.results)

    @property
    def several_seeds(self) -> bool:
        return self.seeds is not None and len(self.seeds) > 1

    def columns(self) -> dict[str, list[ModelResult]]:
        """What the table puts side by side: each model's runs over the seeds, or (`--runs`)
        each run alone, headed by its model."""
        if self.seeds is None:
            labels = model_labels(self.results)
            return {label: [r] for label, r in zip(labels, self.results, strict=True)}
        columns: dict[str, list[ModelResult]] = {}
        for r in self.results:
            columns.setdefault(r.model, []).append(r)
        return columns

    def summary(self) -> dict[str, Any]:
        """The JSON form `seqq compare --json` prints: every run's figures (`runs`) and each
        model's spread over its seeds (`summary`); with one run per model also `models`, each
        model's run as before seeds existed, so scripts written for one seed read it unchanged."""
        columns = self.columns()
        out: dict[str, Any] = {
            "parent_run_id": self.parent_run_id,
            "urls": self.urls,
            "levels": self.levels,
            "seeds": self.seeds,
        }
        if all(len(runs) == 1 for runs in columns.values()):
            out["models"] = {r.model: r.summary() for r in self.results}
        out["runs"] = [r.summary() for r in self.results]
        out["summary"] = {label: summarise(runs) for label, runs in columns.items()}
        return out


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
    comparison = Comparison(results)
    if report_dir:
        title = "seqq compare: " + " vs ".join(r.model for r in results)
        write_report(comparison, report_dir, title)
    experiment_id = client.get_run(run_ids[0]).info.experiment_id
    comparison.urls = tracking.comparison_urls(settings, experiment_id, run_ids)
    return comparison


def compare_models(
    spec: TrainSpec,
    models: list[str],
    settings: Settings,
    train: TrainChildren,
    *,
    on_workers: bool,
    seeds: int = 1,
    report_dir: Path | None = None,
) -> Comparison:
    """Train `spec` once per model and seed under one parent run, then report on the parent.

    The seeds are the spec's `run.seed` and the next `seeds - 1`, the same for every model.
    Every check comes before the parent run exists. The parent ends FINISHED only when every
    child did, FAILED otherwise, KILLED on Ctrl-C; its report is logged either way it finishes.
    """
    from scheduler.report import write_report  # deferred: report imports this module

    seed_values = seed_list(spec, seeds)
    client = preflight(spec, settings, on_workers)
    levels = reference_levels(spec)
    parent = start_parent(client, spec, models, seed_values, settings)
    with parent_ending(client, parent) as ending:
        job_ids = train(child_specs(spec, models, seed_values), parent)
        several = len(seed_values) > 1
        with tempfile.TemporaryDirectory() as tmp:
            results = [
                read_result(client, job_ids[child_label(m, seed, several)], tmp)
                for m in models
                for seed in seed_values
            ]
            comparison = Comparison(results, parent, levels=levels, seeds=seed_values)
            title = "seqq compare: " + " vs ".join(models) + f" on {spec.data.dataset}"
            for path in write_report(comparison, report_dir or Path(tmp) / "report", title):
                client.log_artifact(parent, str(path), names.ARTIFACT_REPORT)
        ending.finished = comparison.finished
    add_urls(client, comparison, parent, settings)
    return comparison


def preflight(spec: TrainSpec, settings: Settings, on_workers: bool) -> MlflowClient:
    """Every check a comparison makes before its parent run exists (inputs, tracking store,
    broker when on workers); the tracking client to create it with."""
    jobs.check_inputs(spec, settings)
    tracking.check_tracking(settings)
    if on_workers:
        from shared.connection import redis_client

        redis_client(settings)
    return tracking.tracking_client(settings)


@dataclass
class _Ending:
    finished: bool = False  # set by the block once every child it waited on ended FINISHED


@contextmanager
def parent_ending(client: MlflowClient, parent: str) -> Iterator[_Ending]:
    """End a comparison's parent run however its block ends: FINISHED when the block says every
    child finished, FAILED otherwise (an exception included), KILLED on Ctrl-C."""
    ending = _Ending()
    status = JobState.FAILED
    try:
        yield ending
        status = JobState.FINISHED if ending.finished else JobState.FAILED
    except KeyboardInterrupt:
        status = JobState.KILLED
        raise
    finally:
        client.set_terminated(parent, status)


def add_urls(client: MlflowClient, comparison: Comparison, parent: str, settings: Settings) -> None:
    """The comparison's MLflow addresses: its runs' curves and its parent's report."""
    experiment_id = client.get_run(parent).info.experiment_id
    children = [r.job_id for r in comparison.results]
    comparison.urls = tracking.comparison_urls(settings, experiment_id, children, parent)
