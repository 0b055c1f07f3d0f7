"""A sweep driven from here (`seqq sweep --local`): the parent run, the study, the trials.

Every check comes before the first side effect, so a bad sweep file or a missing corpus
leaves nothing behind. Then the parent MLflow run is created (its id is the sweep id) and the
study named by it (`shared.study`), and trials are asked of the study one after another: each
trial's spec carries its `TrialRef`, trains as a child run through the same job function as
`seqq run`, and its job reports to the study and tells it how it ended (`worker.trial`). The
study's own records say how many trials have ended, so the loop stops at exactly N. At the end
the parent run gets the best trial and the trials table, and ends FINISHED (a trial
completed), FAILED (none did) or KILLED (Ctrl-C).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast, get_args

from scheduler import jobs, tracking
from shared import names
from shared.errors import SeqqError, SpecError, SweepNotFoundError
from shared.settings import Settings
from shared.space import SweepFile, distributions, parse_sweep, trial_spec
from shared.spec import StudyStorage, TrainSpec, TrialRef, load_spec_file
from shared.state import TRIAL_ENDED, JobState, TrialState
from shared.study import (
    OpenStudy,
    create_study,
    open_study,
    sweep_record,
    tell,
    trial_count,
    trial_id,
    trial_state,
)

if TYPE_CHECKING:
    from optuna.trial import FrozenTrial

TrainTrial = Callable[[TrainSpec, str, str], None]
"""Trains one trial's spec as a child of the parent run (its id) under a run name; raises
KeyboardInterrupt to stop the sweep. The caller chooses how it is shown."""


def load(path: Path, overrides: dict[str, Any] | None = None) -> SweepFile:
    """A checked sweep file, flags (`trials`, `sampler`, `pruner`) over its `sweep:` settings,
    checked together so that `--sampler grid` over a continuous range is refused too."""
    raw = load_spec_file(path)
    settings = raw.get("sweep")
    given = {key: value for key, value in (overrides or {}).items() if value is not None}
    if given:
        raw["sweep"] = {**settings, **given} if isinstance(settings, dict) else given
    return parse_sweep(raw)


def run_local(
    sweep: SweepFile,
    settings: Settings,
    train: TrainTrial,
    extra_tags: dict[str, str] | None = None,
    run_name: str | None = None,
) -> str:
    """Run the whole sweep here, one trial after another; the sweep id (its parent run's).

    `extra_tags` and `run_name` go on the parent run (a tuned comparison nests it under its own
    with `mlflow.parentRunId`)."""
    jobs.check_inputs(sweep.base, settings)  # every check before the parent run exists
    tracking.check_tracking(settings)
    client = tracking.tracking_client(settings)
    sweep_id = create_parent(client, sweep, "file", settings, extra_tags, run_name)
    try:
        opened = create_study(sweep, sweep_id, "file", settings)
    except BaseException:
        client.delete_run(sweep_id)
        raise
    status, reason = JobState.FAILED, "the sweep stopped on an error before the trial ended"
    try:
        _run_trials(opened, sweep_id, train, client)
        ended = [trial_state(t) for t in opened.study.get_trials(deepcopy=False)]
        status = JobState.FINISHED if TrialState.COMPLETE in ended else JobState.FAILED
    except KeyboardInterrupt:
        status, reason = JobState.KILLED, "the sweep was interrupted (Ctrl-C)"
        raise
    finally:
        try:
            for trial in opened.study.get_trials(deepcopy=False):  # one cut off mid-way
                settle(opened, trial.number, client, reason)
            summarize(client, sweep_id, opened)
        finally:
            client.set_terminated(sweep_id, status)
    return sweep_id


def create_parent(
    client: Any,
    sweep: SweepFile,
    storage: StudyStorage,
    settings: Settings,
    extra_tags: dict[str, str] | None = None,
    run_name: str | None = None,
) -> str:
    """The parent run: the base spec (less the searched fields) and the space as params; named
    `run_name`, else the base's run name, else `sweep`."""
    from mlflow.entities import Param, RunTag

    experiment_id = tracking.ensure_experiment(client, sweep.base.run.experiment, settings)
    tags = {
        names.TAG_KIND: names.KIND_SWEEP,
        names.TAG_SWEEP_STORAGE: storage,
        **(extra_tags or {}),
    }
    run = client.create_run(
        experiment_id,
        run_name=run_name or sweep.base.run.name or "sweep",
        tags={**tags, **sweep.base.run.tags},
    )
    run_id = str(run.info.run_id)
    params = {k: v for k, v in sweep.base.flat().items() if k not in sweep.space}
    params["sweep.space"] = json.dumps(sweep_record(sweep)["space"], sort_keys=True)
    for key, value in sweep.sweep.model_dump(mode="json").items():
        params[f"sweep.{key}"] = json.dumps(value) if not isinstance(value, str) else value
    client.log_batch(
        run_id,
        params=[Param(k, v) for k, v in params.items()],
        tags=[RunTag(names.TAG_SWEEP_ID, run_id)],
    )
    return run_id


def ask(opened: OpenStudy, sweep_id: str, storage: StudyStorage) -> tuple[int, TrainSpec | None]:
    """The next trial's number and spec; a sampled spec the spec refuses ends FAILED at once,
    with the reason, and comes back as None."""
    trial = opened.study.ask(distributions(opened.sweep.space))
    ref = TrialRef(sweep=sweep_id, number=trial.number, storage=storage)
    try:
        return trial.number, trial_spec(opened.sweep.base, trial.params, ref)
    except SpecError as exc:
        trial.set_user_attr(names.TRIAL_ATTR_ERROR, str(exc))
        tell(opened.study, trial.number, TrialState.FAILED)
        return trial.number, None


def _run_trials(opened: OpenStudy, sweep_id: str, train: TrainTrial, client: Any) -> None:
    """Ask, train and settle trials until the study holds the sweep's count of ended ones."""
    wanted = trial_count(opened.sweep)
    while ended_count(opened) < wanted:
        number, spec = ask(opened, sweep_id, "file")
        if spec is not None:
            try:
                train(spec, sweep_id, f"trial-{number}")
            except SeqqError as exc:  # refused before it trained (its data, its prompts)
                fail_trial(opened, number, str(exc))
        settle(opened, number, client, "its job ended without telling the study")


def ended_count(opened: OpenStudy) -> int:
    return sum(trial_state(t) in TRIAL_ENDED for t in opened.study.get_trials(deepcopy=False))


def fail_trial(opened: OpenStudy, number: int, reason: str) -> None:
    """End a still-running trial FAILED with its reason."""
    if trial_state(_frozen(opened, number)) == TrialState.RUNNING:
        opened.storage.set_trial_user_attr(trial_id(opened, number), names.TRIAL_ATTR_ERROR, reason)
        tell(opened.study, number, TrialState.FAILED)


def _frozen(opened: OpenStudy, number: int) -> FrozenTrial:
    return opened.storage.get_trial(trial_id(opened, number))


def settle(opened: OpenStudy, number: int, client: Any, reason: str) -> None:
    """Make a trial its job left RUNNING in the study agree with its run: the run's trial-state
    tag when the job got that far (its value read back from the run), else FAILED for `reason`.
    """
    trial = _frozen(opened, number)
    if trial_state(trial) != TrialState.RUNNING:
        return
    run_id = trial.user_attrs.get(names.TRIAL_ATTR_RUN_ID)
    try:
        tags = client.get_run(run_id).data.tags if run_id else {}
    except tracking.refusals(client):  # no such run: nothing recorded to agree with
        tags = {}
    state = TrialState(tags.get(names.TAG_TRIAL_STATE, TrialState.FAILED))
    if state == TrialState.COMPLETE:
        history = client.get_metric_history(run_id, names.METRIC_VAL_LOSS)
        tell(opened.study, number, state, min(m.value for m in history))
        return
    if state == TrialState.FAILED:
        fail_trial(opened, number, tags.get(names.TAG_ERROR) or reason)
        return
    tell(opened.study, number, state)


def describe(parent: Any, opened: OpenStudy, runs: list[Any]) -> dict[str, Any]:
    """A sweep as one JSON-able record: each trial from the study (state, values, losses)
    and its run (steps, pruned step), the best so far, and how the search is set."""
    by_number = {r.data.tags.get(names.TAG_TRIAL_NUMBER): r for r in runs}
    rows = [_row(t, by_number.get(str(t.number))) for t in opened.study.get_trials(deepcopy=False)]
    complete = [r for r in rows if r["state"] == TrialState.COMPLETE]
    best = min(complete, key=lambda r: r["value"]) if complete else None
    settings = opened.sweep.sweep
    return {
        "sweep_id": parent.info.run_id,
        "status": parent.info.status,
        "experiment_id": parent.info.experiment_id,
        "sampler": settings.sampler,
        "pruner": settings.pruner,
        "trials_wanted": trial_count(opened.sweep),
        "counts": {s.value: sum(r["state"] == s for r in rows) for s in TrialState},
        "best": {k: best[k] for k in ("number", "value", "values", "run_id")} if best else None,
        "trials": rows,
    }


def _row(trial: FrozenTrial, run: Any | None) -> dict[str, Any]:
    """One trial: the study's word on its state and values, its run's on steps trained."""
    losses = [v for v in trial.intermediate_values.values() if math.isfinite(v)]
    tags = run.data.tags if run is not None else {}
    state = trial_state(trial)
    return {
        "number": trial.number,
        "state": state.value,
        "values": dict(trial.params),
        "value": trial.value if state == TrialState.COMPLETE else None,
        "best_val_loss": min(losses) if losses else None,
        "steps": _int(tags.get(names.TAG_STEPS)),
        "pruned_step": _int(tags.get(names.TAG_TRIAL_PRUNED_STEP)),
        "run_id": trial.user_attrs.get(names.TRIAL_ATTR_RUN_ID),
        "error": trial.user_attrs.get(names.TRIAL_ATTR_ERROR),
        "base": bool(trial.user_attrs.get(names.TRIAL_ATTR_BASE)),
    }


def _int(value: str | None) -> int | None:
    return int(value) if value is not None and value.isdigit() else None


def trial_runs(client: Any, parent: Any) -> list[Any]:
    where = (
        f"tags.`{names.TAG_SWEEP_ID}` = '{parent.info.run_id}' and tags.`{names.TAG_KIND}` = 'job'"
    )
    return list(client.search_runs([parent.info.experiment_id], where, max_results=10000))


def _parent(client: Any, sweep_id: str) -> tuple[Any, StudyStorage]:
    """A sweep's parent run and where its study lives; SweepNotFoundError when it is none."""
    try:
        parent = client.get_run(sweep_id)
    except tracking.refusals(client):
        raise SweepNotFoundError(
            f"sweep {sweep_id}: no such sweep in this tracking store"
        ) from None
    tags = parent.data.tags
    if tags.get(names.TAG_KIND) != names.KIND_SWEEP:
        raise SweepNotFoundError(f"sweep {sweep_id}: this run is not a sweep's parent run")
    kind = tags.get(names.TAG_SWEEP_STORAGE)
    if kind not in get_args(StudyStorage):
        raise SweepNotFoundError(f"sweep {sweep_id}: its run does not say where its study is")
    return parent, cast(StudyStorage, kind)


def open_sweep(sweep_id: str, settings: Settings) -> OpenStudy:
    """A sweep's study, found through its parent run."""
    _, kind = _parent(tracking.reader(settings), sweep_id)
    return open_study(sweep_id, kind, settings)


def status(sweep_id: str, settings: Settings) -> dict[str, Any]:
    """`seqq sweep status`: the sweep's record, read from its study and its runs."""
    client = tracking.reader(settings)
    parent, kind = _parent(client, sweep_id)
    tags = parent.data.tags
    opened = open_study(sweep_id, kind, settings)
    record = describe(parent, opened, trial_runs(client, parent))
    dispatch = opened.study.user_attrs.get(names.STUDY_ATTR_DISPATCH)
    if dispatch is not None:  # a sweep on the queue
        record["dispatch"] = {k: dispatch.get(k) for k in ("queue", "parallel", "register")}
    if tags.get(names.TAG_ERROR):
        record["error"] = tags[names.TAG_ERROR]
    if tags.get(names.TAG_SWEEP_REGISTERED):
        record["registered_uri"] = tags[names.TAG_SWEEP_REGISTERED]
    run_ids = [row["run_id"] for row in record["trials"] if row["run_id"]]
    record["url"] = tracking.curves_url(settings, record["experiment_id"], run_ids)
    return record


def summarize(client: Any, sweep_id: str, opened: OpenStudy) -> None:
    """The parent run's record of the sweep: the trials table, the best trial and its values."""
    parent = client.get_run(sweep_id)
    record = describe(parent, opened, trial_runs(client, parent))
    searched = list(opened.sweep.space)
    table: dict[str, list[Any]] = {
        key: [row[key] for row in record["trials"]]
        for key in ("number", "state", "best_val_loss", "steps", "pruned_step", "run_id")
    }
    for dotted in searched:
        table[dotted] = [row["values"].get(dotted) for row in record["trials"]]
    client.log_table(sweep_id, data=table, artifact_file=names.ARTIFACT_TRIALS)
    log_plots(client, sweep_id, opened)
    best = record["best"]
    if best is None:
        return
    client.log_dict(sweep_id, best, names.ARTIFACT_BEST)
    client.set_tag(sweep_id, names.TAG_SWEEP_BEST_TRIAL, str(best["number"]))
    client.set_tag(sweep_id, names.TAG_SWEEP_BEST_RUN, best["run_id"] or "")
    client.log_metric(sweep_id, names.METRIC_BEST_VAL_LOSS, best["value"])


# Optuna's matplotlib plots on the parent run: (file name, function name in
# optuna.visualization.matplotlib). Each needs enough trials of its kind; one that cannot be
# drawn (a single completed trial has no parameter importance) is left out, with the reason.
PLOTS = (
    ("optimization_history.png", "plot_optimization_history"),
    ("intermediate_values.png", "plot_intermediate_values"),
    ("param_importances.png", "plot_param_importances"),
    ("parallel_coordinate.png", "plot_parallel_coordinate"),
)


def log_plots(client: Any, sweep_id: str, opened: OpenStudy) -> list[str]:
    """Draw Optuna's plots of the study (headless) and log them under `plots/` on the parent
    run; the names of those drawn."""
    import logging
    import tempfile
    import warnings

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import optuna
    from optuna.visualization import matplotlib as optuna_plots

    complete = [
        t for t in opened.study.get_trials(deepcopy=False) if trial_state(t) == TrialState.COMPLETE
    ]
    if not complete:
        return []
    drawn = []
    with tempfile.TemporaryDirectory(prefix="seqq-plots-") as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        # Few trials: "too small to compute importances", a flat axis "expanding" its limits.
        warnings.simplefilter("ignore", UserWarning)
        for filename, function in PLOTS:
            try:
                axes = getattr(optuna_plots, function)(opened.study)
            except Exception as exc:  # too few trials of the kind this plot needs
                logging.getLogger(__name__).info("sweep %s: no %s (%s)", sweep_id, filename, exc)
                continue
            first = axes.flat[0] if hasattr(axes, "flat") else axes
            figure = first.figure
            figure.set_size_inches(8, 5)
            figure.tight_layout()
            figure.savefig(Path(tmp) / filename, dpi=100)
            plt.close(figure)
            drawn.append(filename)
        for filename in drawn:
            client.log_artifact(sweep_id, str(Path(tmp) / filename), names.ARTIFACT_SWEEP_PLOTS)
    return drawn
