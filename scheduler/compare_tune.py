"""Tuned at equal compute (`seqq compare --tune`): each model's tuned spec beside its default.

One sweep file (a base spec, a space, sweep settings) is searched once per cell, each search a
sweep nested under the comparison's parent run, each with the same total training time
(`--budget`): every trial trains for `budget / trials` seconds whatever the cell's speed, so a
fast cell gets more steps, never more time. Then every model trains over the seeds twice at that
same time per run, as children of the same parent: its default spec (the base, nothing sampled)
and its tuned spec (the base with its best trial's values). The table shows what tuning bought
each cell beside what the cell gives untuned, and which values the sweep chose.

Everything is checked before the parent run exists: the budget, the space against each cell,
the corpus, the services. The caller runs the sweeps (here one after another, or on the queue
and followed) and trains the final runs, as `compare.compare_models` leaves its children to it.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from scheduler import sweep as sweeps
from scheduler.compare import (
    Comparison,
    TrainChildren,
    add_urls,
    child_label,
    parent_ending,
    preflight,
    reference_levels,
    seed_list,
    start_parent,
)
from scheduler.result import read_result
from shared import names
from shared.errors import SpecError
from shared.settings import Settings
from shared.space import SweepFile, parse_sweep, trial_spec
from shared.spec import UNCAPPED_STEPS, TrainSpec, get_dotted, parse_duration, set_dotted
from shared.state import JobState
from shared.study import sweep_record, trial_count

# Under this a trial is mostly start-up and its first evaluation: its loss says little about
# the values it drew, and a sweep of such trials chooses by noise.
MIN_TRIAL_S = 5.0
# The fields `--tune` sets itself, and why none of them may be searched or given as a flag.
FIXED = {
    "model.cell": "--models sets each sweep's cell",
    "optim.time_budget": "--budget sets each run's training time",
    "optim.max_steps": "--budget alone ends each run",
}
VARIANTS = ("default", "tuned")

RunSweeps = Callable[[dict[str, SweepFile], str], dict[str, str]]
"""Runs each model's sweep (keyed by model) nested under the comparison's parent run (its id;
`sweep_tags` and `sweep_name` say how its parent run is tagged and named) until it has ended;
returns model -> sweep id. The caller chooses where (here, or on the queue) and how it is shown."""


def parse_budget(text: str) -> float:
    """`--budget`: each model's total sweep training time, a duration like `20m` or `1h`."""
    try:
        seconds = parse_duration(text)
    except ValueError:
        seconds = None
    if seconds is None or seconds <= 0:
        raise SpecError(f"--budget: expected a duration like '90s', '20m', '1h'; got {text!r}")
    return seconds


@dataclass(frozen=True)
class TunePlan:
    """A checked tuned comparison: each model's sweep, the budgets and the seeds."""

    models: list[str]
    sweeps: dict[str, SweepFile]  # by model: the base with its cell and the trial budget
    budget_s: float  # each model's total sweep training time
    trial_budget_s: float  # each trial's, and each final run's, training time
    trials: int  # per sweep
    seeds: list[int]

    @property
    def searched(self) -> list[str]:
        return list(self.sweeps[self.models[0]].space)

    def default_spec(self, model: str, seed: int) -> TrainSpec:
        """The untuned run: the sweep's base (its cell, the trial budget) at `seed`."""
        base = self.sweeps[model].base
        return base.model_copy(update={"run": base.run.model_copy(update={"seed": seed})})

    def tuned_spec(self, model: str, values: dict[str, Any], seed: int) -> TrainSpec:
        """The tuned run: the default spec with the sweep's chosen values, a lone job."""
        return trial_spec(self.default_spec(model, seed), values)

    def settings_params(self) -> dict[str, str]:
        """The parent run's params that say how the models were tuned."""
        record = sweep_record(self.sweeps[self.models[0]])
        return {
            "tune.budget_s": f"{self.budget_s:g}",
            "tune.trial_budget_s": f"{self.trial_budget_s:g}",
            "tune.trials": str(self.trials),
            "tune.space": json.dumps(record["space"], sort_keys=True),
            "tune.sweep": json.dumps(record["sweep"], sort_keys=True),
        }


def plan_tune(
    raw: dict[str, Any], overrides: dict[str, Any], models: list[str], budget: str, seeds: int
) -> TunePlan:
    """A checked plan from the `--tune` file's mapping, the spec flags given (dotted, flags over
    the file; those in FIXED are replaced, the caller refuses them), the cells, `--budget` and
    `--seeds`; a SpecError naming the problems."""
    budget_s = parse_budget(budget)
    space = raw.get("space")
    searched = [d for d in FIXED if isinstance(space, dict) and d in space]
    if searched:
        problems = [f"space.{d}: {FIXED[d]}; it cannot be searched" for d in searched]
        raise SpecError("invalid --tune: " + "; ".join(problems))
    plans, refusals = {}, {}
    for model in models:
        mapping = json.loads(json.dumps(raw, default=str))  # a deep copy the flags may write into
        for dotted, value in {**overrides, "model.cell": model}.items():
            set_dotted(mapping, dotted, value)
        # The default spec is one of the trials, so the tuned spec is never chosen over it
        # without beating it at the same trial budget (unless the file says try_base: false).
        if isinstance(mapping.get("sweep"), dict | None):
            mapping["sweep"] = {"try_base": True, **(mapping.get("sweep") or {})}
        set_dotted(mapping, "optim.time_budget", budget_s)  # replaced by the trial budget below
        set_dotted(mapping, "optim.max_steps", UNCAPPED_STEPS)
        try:
            plans[model] = parse_sweep(mapping)
        except SpecError as exc:
            refusals[model] = str(exc)
    if refusals:  # said once when every cell refuses the same way, else cell by cell
        said = set(refusals.values())
        message = said.pop() if len(said) == 1 and len(refusals) == len(models) else None
        raise SpecError(
            message or "; ".join(f"for model.cell {m}: {text}" for m, text in refusals.items())
        )
    trials = trial_count(plans[models[0]])
    trial_budget_s = budget_s / trials
    if trial_budget_s < MIN_TRIAL_S:
        raise SpecError(
            f"--budget: {budget_s:g}s over {trials} trials leaves {trial_budget_s:.3g}s per "
            f"trial, under the {MIN_TRIAL_S:g}s a trial needs; give at least "
            f"{trials * MIN_TRIAL_S:g}s or fewer trials (sweep.trials)"
        )
    for model, plan in plans.items():
        optim = plan.base.optim.model_copy(update={"time_budget": trial_budget_s})
        plans[model] = plan.model_copy(
            update={"base": plan.base.model_copy(update={"optim": optim})}
        )
    first = plans[models[0]].base
    return TunePlan(models, plans, budget_s, trial_budget_s, trials, seed_list(first, seeds))


def sweep_tags(parent_run_id: str, model: str) -> dict[str, str]:
    """The tags of a model's sweep parent run: nested under the comparison, named by its cell."""
    return {"mlflow.parentRunId": parent_run_id, names.TAG_MODEL: model}


def sweep_name(plan: TunePlan, model: str) -> str:
    base = plan.sweeps[model].base
    return f"{base.run.name or 'compare'}-tune-{model}"


def variant_label(model: str, variant: str) -> str:
    """A table column: the model and whether its spec is the default or the tuned one."""
    return f"{model} {variant}"


def default_won(record: dict[str, Any]) -> bool:
    """Whether a model's sweep chose its default spec (its base trial was its best): its tuned
    spec is then its default, and the default's runs are its tuned runs too."""
    best = record.get("best")
    base = next((row for row in record.get("trials", []) if row.get("base")), None)
    return bool(best and base and best["number"] == base["number"])


def kept_models(records: dict[str, dict[str, Any]]) -> frozenset[str]:
    """The models (keys of their sweep records) whose sweep chose their default spec."""
    return frozenset(model for model, record in records.items() if default_won(record))


def final_specs(
    plan: TunePlan, chosen: dict[str, dict[str, Any] | None], kept: frozenset[str] = frozenset()
) -> dict[str, TrainSpec]:
    """The final runs, seed by seed: each model's default spec and, when its sweep completed a
    trial other than the default (the models in `kept` chose their default), its tuned spec,
    keyed by child label (`lstm-tuned-seed-8`)."""
    several = len(plan.seeds) > 1
    specs: dict[str, TrainSpec] = {}
    for seed in plan.seeds:
        for model in plan.models:
            specs[child_label(f"{model}-default", seed, several)] = plan.default_spec(model, seed)
            values = chosen.get(model)
            if values is not None and model not in kept:
                tuned = plan.tuned_spec(model, values, seed)
                specs[child_label(f"{model}-tuned", seed, several)] = tuned
    return specs


@dataclass
class TunedComparison:
    """What `seqq compare --tune` shows: the final runs (a column per model and variant), each
    model's sweep record (`sweep.status`), and the plan they followed."""

    comparison: Comparison
    plan: TunePlan
    sweeps: dict[str, dict[str, Any]]  # by model

    @property
    def kept(self) -> frozenset[str]:
        """The models whose sweep chose their default spec."""
        return kept_models(self.sweeps)

    @property
    def finished(self) -> bool:
        ended = all(r["status"] == JobState.FINISHED for r in self.sweeps.values())
        return ended and self.comparison.finished

    def chosen(self, model: str) -> dict[str, Any] | None:
        best = self.sweeps[model].get("best")
        return dict(best["values"]) if best else None

    def tune_record(self) -> dict[str, Any]:
        """The tuning as JSON: the budgets, the space, and each model's sweep with its choice."""
        plan = self.plan
        models = {}
        for model in plan.models:
            record = self.sweeps[model]
            default = plan.default_spec(model, plan.seeds[0])
            models[model] = {
                "sweep_id": record["sweep_id"],
                "status": record["status"],
                "trials_wanted": record["trials_wanted"],
                "counts": record["counts"],
                "best": record["best"],
                "default_values": {d: get_dotted(default, d) for d in plan.searched},
                "tuned_values": self.chosen(model),
                "default_won": model in self.kept,
                "url": record.get("url"),
                "trials": record["trials"],
            }
        return {
            "budget_s": plan.budget_s,
            "trial_budget_s": plan.trial_budget_s,
            "trials": plan.trials,
            "space": sweep_record(plan.sweeps[plan.models[0]])["space"],
            "models": models,
        }

    def summary(self) -> dict[str, Any]:
        """`seqq compare --tune --json`: the comparison's JSON plus `tune` (`tune_record`)."""
        return {**self.comparison.summary(), "tune": self.tune_record()}

    def value_rows(self) -> list[list[str]]:
        """The chosen values, a row per searched field and a cell per model: `default -> tuned`;
        then each sweep's best validation loss and how its trials ended."""
        rows = []
        for dotted in self.plan.searched:
            cells = []
            for model in self.plan.models:
                default = get_dotted(self.plan.default_spec(model, self.plan.seeds[0]), dotted)
                chosen = self.chosen(model)
                tuned = _short(chosen[dotted]) if chosen else "-"
                cells.append(f"{_short(default)} -> {tuned}")
            rows.append([dotted, *cells])
        best = [self.sweeps[m]["best"] for m in self.plan.models]
        rows.append(["sweep best val loss", *(_short(b["value"]) if b else "-" for b in best)])
        rows.append(["sweep trials", *(_counts(self.sweeps[m]) for m in self.plan.models)])
        return rows

    def markdown(self) -> list[str]:
        """The report's section on the tuning, after the table."""
        plan = self.plan
        lines = [
            "## Tuning",
            "",
            f"Each model's sweep: {plan.trials} trials of {plan.trial_budget_s:g}s training "
            f"time each ({plan.budget_s:g}s in all); every run above trained "
            f"{plan.trial_budget_s:g}s too. Default -> chosen value:",
            "",
            "| field | " + " | ".join(plan.models) + " |",
            "|---|" + "---:|" * len(plan.models),
        ]
        lines += ["| " + " | ".join(row) + " |" for row in self.value_rows()]
        lines += ["", *(f"- {m} sweep: `{self.sweeps[m]['sweep_id']}`" for m in plan.models)]
        lines += [f"- {kept_note(m)}" for m in plan.models if m in self.kept]
        return lines


def kept_note(model: str) -> str:
    return (
        f"{model}: its sweep's best trial was its default spec, so its tuned column is its "
        "default runs (not trained again)"
    )


def _short(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _counts(record: dict[str, Any]) -> str:
    return ", ".join(f"{n} {state}" for state, n in record["counts"].items() if n)


def compare_tuned(
    plan: TunePlan,
    settings: Settings,
    run_sweeps: RunSweeps,
    train: TrainChildren,
    *,
    on_workers: bool,
    report_dir: Path | None = None,
) -> TunedComparison:
    """Tune every model, then train its default and tuned specs over the seeds, all under one
    parent run that gets the report, the chosen values (params `tune.<model>.<field>`) and
    `tune.json`. The parent ends FINISHED when every sweep and run did, FAILED otherwise, KILLED
    on Ctrl-C."""
    from mlflow.entities import Param

    from scheduler.report import write_report  # deferred: report imports compare

    base = plan.default_spec(plan.models[0], plan.seeds[0])
    client = preflight(base, settings, on_workers)
    parent = start_parent(
        client,
        base,
        plan.models,
        plan.seeds,
        settings,
        varied=plan.searched,
        tags={names.TAG_COMPARE_TUNE: f"{plan.budget_s:g}"},
        params=plan.settings_params(),
        label="-tuned",
    )
    with parent_ending(client, parent) as ending:
        sweep_ids = run_sweeps(plan.sweeps, parent)
        records = {m: sweeps.status(sweep_ids[m], settings) for m in plan.models}
        chosen = {m: (r["best"] or {}).get("values") for m, r in records.items()}
        picked = [
            Param(f"tune.{m}.{dotted}", _short(value))
            for m, values in chosen.items()
            for dotted, value in (values or {}).items()
        ]
        client.log_batch(parent, params=picked)
        # A sweep won by its default chose no other spec: its runs stand for both variants.
        specs = final_specs(plan, chosen, kept_models(records))
        job_ids = train(specs, parent)
        result = _read(client, plan, specs, job_ids, parent, records)
        client.log_dict(parent, result.tune_record(), names.ARTIFACT_TUNE)
        title = (
            f"seqq compare --tune: {' vs '.join(plan.models)} on {base.data.dataset}, "
            f"{plan.budget_s:g}s of tuning each"
        )
        with tempfile.TemporaryDirectory() as tmp:
            out = report_dir or Path(tmp) / "report"
            for path in write_report(result.comparison, out, title, result.markdown()):
                client.log_artifact(parent, str(path), names.ARTIFACT_REPORT)
        ending.finished = result.finished
    add_urls(client, result.comparison, parent, settings)
    return result


def _read(
    client: Any,
    plan: TunePlan,
    specs: dict[str, TrainSpec],
    job_ids: dict[str, str],
    parent: str,
    records: dict[str, dict[str, Any]],
) -> TunedComparison:
    """The final runs from MLflow, each headed by its model and variant, model by model; a
    model in `kept` shows its default runs under both."""
    several = len(plan.seeds) > 1
    kept = kept_models(records)
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for model in plan.models:
            for variant in VARIANTS:
                for seed in plan.seeds:
                    label = child_label(f"{model}-{variant}", seed, several)
                    if model in kept:
                        label = child_label(f"{model}-default", seed, several)
                    elif label not in specs:
                        continue  # no tuned spec: its sweep completed no trial
                    result = read_result(client, job_ids[label], tmp)
                    result.model = variant_label(model, variant)
                    results.append(result)
    levels = reference_levels(plan.default_spec(plan.models[0], plan.seeds[0]))
    comparison = Comparison(results, parent, levels=levels, seeds=plan.seeds)
    return TunedComparison(comparison, plan, records)
