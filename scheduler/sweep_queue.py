"""Sweeps on the queue: trials are ordinary jobs, and no process a user keeps open drives them.

`submit` checks everything, uploads the corpus once, creates the parent run and the study (an
Optuna journal on the broker's Redis, `shared.study`), records how to dispatch its trials
(queue, trials in flight, the corpus) in the study itself, and advances the sweep once, so its
first trials are on the queue before the command returns.

`advance` is the one step that moves a sweep on, and it is idempotent: under a Redis lock per
sweep it reconciles the study with MLflow (a trial whose run ended is told the study what the run
says), re-does whatever a crash cut short (a trial asked but without a run, a run created but
never sent), then asks the study for new trials while fewer than `parallel` are in flight and
fewer than N were asked, and ends the sweep (the parent's table, best trial, status, optional
registration) once N trials have ended. Three callers run it:

* the worker, right after a trial's job ended (the next trial is on the queue before the worker
  asks for its next job, so a pruned trial's worker goes straight on);
* `seqq scheduler`, every reap interval, for every sweep not yet ended (what a crashed worker
  did not do, and what a sweep needs after `seqq scheduler` itself was restarted);
* `seqq sweep` once, at submission.

`seqq cancel SWEEP` asks the in-flight trials to stop and flags the sweep: `advance` asks no more
trials and ends it KILLED once the last one has ended.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from scheduler import broker, jobs, tracking
from scheduler import sweep as sweeps
from shared import names
from shared.connection import redis_client
from shared.dataset import LocalDataset
from shared.errors import ServiceUnavailableError, SpecError, SweepNotFoundError
from shared.settings import Settings
from shared.space import SweepFile, trial_spec
from shared.spec import TrainSpec, TrialRef
from shared.state import TERMINAL, JobState, TrialState
from shared.study import (
    OpenStudy,
    create_study,
    open_study,
    trial_count,
    trial_id,
    trial_state,
)

if TYPE_CHECKING:
    import redis
    from celery import Celery
    from optuna.trial import FrozenTrial

log = logging.getLogger(__name__)

LOCK_TTL_S = 120  # a crashed holder's lock lapses after this; an advance takes well under it


def default_parallel(conn: redis.Redis, queue: str) -> int:
    """Trials in flight when neither the flag nor the file says: the live workers' job slots on
    the target queue (at least one, so a sweep submitted before its workers still starts)."""
    from scheduler.cluster import live_workers

    return max(1, sum(w.get("slots") or 1 for w in live_workers(conn) if queue in w["queues"]))


def submit(
    sweep: SweepFile,
    settings: Settings,
    parallel: int | None = None,
    queue: str | None = None,
    priority: str = "normal",
    register: str | None = None,
    extra_tags: dict[str, str] | None = None,
    run_name: str | None = None,
) -> str:
    """Create the sweep and put its first trials on the queue; the sweep id.

    Every check comes first (corpus, prompts, queue, services); a failure after the parent run
    exists deletes it again, so a refused sweep leaves nothing behind. `extra_tags` and
    `run_name` go on the parent run (a tuned comparison nests it under its own).
    """
    dataset = jobs.check_inputs(sweep.base, settings)
    jobs.check_route(queue, priority)
    conn = redis_client(settings)
    tracking.check_tracking(settings)
    client = tracking.tracking_client(settings)
    queue = queue or broker.route(sweep.base, conn, priority)
    in_flight = parallel or sweep.sweep.parallel or default_parallel(conn, queue)
    uri = tracking.publish_dataset(client, dataset, settings)
    data = sweep.base.data.model_copy(update={"uri": uri, "sha256": dataset.sha256})
    resolved = sweep.model_copy(update={"base": sweep.base.model_copy(update={"data": data})})
    tags = {**(extra_tags or {}), names.TAG_QUEUE: queue}
    sweep_id = sweeps.create_parent(client, resolved, "redis", settings, tags, run_name)
    try:
        opened = create_study(resolved, sweep_id, "redis", settings)
        opened.study.set_user_attr(
            names.STUDY_ATTR_DISPATCH,
            {
                "queue": queue,
                "parallel": in_flight,
                "register": register,
                "dataset": {
                    "path": str(dataset.path),
                    "name": dataset.name,
                    "sha256": dataset.sha256,
                    "n_chars": dataset.n_chars,
                },
            },
        )
        conn.sadd(names.SWEEPS_ACTIVE_KEY, sweep_id)
        advance(sweep_id, settings, client, conn, broker.celery_app(settings))
    except Exception as exc:
        _discard(client, conn, sweep_id)
        if isinstance(exc, SpecError):
            raise
        raise ServiceUnavailableError(
            f"could not start the sweep ({exc.__class__.__name__}: {exc}); nothing was submitted"
        ) from None
    return sweep_id


def _discard(client: Any, conn: redis.Redis, sweep_id: str) -> None:
    """Undo a sweep that could not start: its runs, its study journal, its place in the set."""
    for run in sweeps.trial_runs(client, client.get_run(sweep_id)):
        client.delete_run(run.info.run_id)
    client.delete_run(sweep_id)
    conn.srem(names.SWEEPS_ACTIVE_KEY, sweep_id)
    for key in conn.scan_iter(match=f"{names.sweep_journal_prefix(sweep_id)}*", count=100):
        conn.delete(key)


def advance(
    sweep_id: str, settings: Settings, client: Any, conn: redis.Redis, app: Celery
) -> str | None:
    """Move one queue sweep on (see the module's docstring); its parent's status once ended,
    else None. Safe to call from anywhere, any number of times."""
    lock = conn.lock(names.sweep_lock_key(sweep_id), timeout=LOCK_TTL_S, blocking_timeout=30)
    if not lock.acquire():
        log.warning("sweep %s: another process holds its lock; not advanced now", sweep_id)
        return None
    try:
        return _advance(sweep_id, settings, client, conn, app)
    finally:
        try:
            lock.release()
        except Exception:  # lapsed: the next advance reconciles whatever this one did
            log.warning("sweep %s: its lock lapsed during an advance", sweep_id)


def _advance(
    sweep_id: str, settings: Settings, client: Any, conn: redis.Redis, app: Celery
) -> str | None:
    parent = client.get_run(sweep_id)
    if parent.info.status in TERMINAL:
        conn.srem(names.SWEEPS_ACTIVE_KEY, sweep_id)
        return str(parent.info.status)
    opened = open_study(sweep_id, "redis", settings)
    dispatch = opened.study.user_attrs[names.STUDY_ATTR_DISPATCH]
    cancelled = bool(conn.exists(names.cancel_key(sweep_id)))
    in_flight = 0
    # A WAITING trial (the base, with try_base) is not asked yet: the next `ask` takes it.
    trials = [t for t in opened.study.get_trials(deepcopy=False) if t.state.name != "WAITING"]
    for trial in trials:
        if trial_state(trial) == TrialState.RUNNING and _keep_going(
            opened, trial, dispatch, settings, client, app, cancelled
        ):
            in_flight += 1
    asked, wanted = len(trials), trial_count(opened.sweep)
    while not cancelled and in_flight < int(dispatch["parallel"]) and asked < wanted:
        number, spec = sweeps.ask(opened, sweep_id, "redis")
        asked += 1
        if spec is not None:
            trial = opened.storage.get_trial(trial_id(opened, number))
            _dispatch(opened, trial, dispatch, settings, client, app)
            in_flight += 1
    if in_flight or (asked < wanted and not cancelled):
        return None
    return _end(sweep_id, opened, dispatch, client, conn, cancelled)


def _keep_going(
    opened: OpenStudy,
    trial: FrozenTrial,
    dispatch: dict[str, Any],
    settings: Settings,
    client: Any,
    app: Celery,
    cancelled: bool,
) -> bool:
    """Reconcile one trial the study holds RUNNING; whether it is still in flight."""
    run_id = trial.user_attrs.get(names.TRIAL_ATTR_RUN_ID) or _orphan_run(opened, trial, client)
    if run_id is None:  # asked, but the advance that asked it stopped before its run existed
        if cancelled:
            sweeps.fail_trial(opened, trial.number, "the sweep was cancelled before it started")
            return False
        _dispatch(opened, trial, dispatch, settings, client, app)
        return True
    run = client.get_run(run_id)
    if run.info.status in TERMINAL:
        sweeps.settle(opened, trial.number, client, "its job ended without telling the study")
        return False
    if not trial.user_attrs.get(names.TRIAL_ATTR_SENT):  # created, never handed to the broker
        _send(opened, trial, run_id, _spec(opened, trial), dispatch["queue"], app)
    return True


def _orphan_run(opened: OpenStudy, trial: FrozenTrial, client: Any) -> str | None:
    """The run an interrupted advance created for `trial` before it could record it."""
    sweep_id = opened.study.study_name
    parent = client.get_run(sweep_id)
    where = (
        f"tags.`{names.TAG_SWEEP_ID}` = '{sweep_id}' "
        f"and tags.`{names.TAG_TRIAL_NUMBER}` = '{trial.number}'"
    )
    found = client.search_runs([parent.info.experiment_id], where, max_results=1)
    if not found:
        return None
    run_id = str(found[0].info.run_id)
    opened.storage.set_trial_user_attr(
        trial_id(opened, trial.number), names.TRIAL_ATTR_RUN_ID, run_id
    )
    return run_id


def _dispatch(
    opened: OpenStudy,
    trial: FrozenTrial,
    dispatch: dict[str, Any],
    settings: Settings,
    client: Any,
    app: Celery,
) -> None:
    """Create the trial's child run (SCHEDULED, its sampled values as params) and send it."""
    sweep_id = opened.study.study_name
    spec = _spec(opened, trial)
    corpus = dispatch["dataset"]
    dataset = LocalDataset(
        path=Path(corpus["path"]),
        name=corpus["name"],
        sha256=corpus["sha256"],
        n_chars=int(corpus["n_chars"]),
        chars=frozenset(),
    )
    run_id = tracking.create_job_run(
        client, spec, dataset, settings, dispatch["queue"], sweep_id, f"trial-{trial.number}"
    )
    opened.storage.set_trial_user_attr(
        trial_id(opened, trial.number), names.TRIAL_ATTR_RUN_ID, run_id
    )
    _send(opened, trial, run_id, spec, dispatch["queue"], app)


def _spec(opened: OpenStudy, trial: FrozenTrial) -> TrainSpec:
    """The spec a queue sweep's trial trains: the base with its values and its reference."""
    ref = TrialRef(sweep=opened.study.study_name, number=trial.number, storage="redis")
    return trial_spec(opened.sweep.base, trial.params, ref)


def _send(
    opened: OpenStudy,
    trial: FrozenTrial,
    run_id: str,
    spec: TrainSpec,
    queue: str,
    app: Celery,
) -> None:
    """Hand a trial's job to the broker, then record that it was (a crash in between sends it
    twice, and the job's lease makes the second delivery stand down)."""
    broker.send_job(app, run_id, spec, queue)
    opened.storage.set_trial_user_attr(trial_id(opened, trial.number), names.TRIAL_ATTR_SENT, True)


def _end(
    sweep_id: str,
    opened: OpenStudy,
    dispatch: dict[str, Any],
    client: Any,
    conn: redis.Redis,
    cancelled: bool,
) -> str:
    """Every trial has ended: the parent's record, the registration, the parent's status."""
    sweeps.summarize(client, sweep_id, opened)
    states = [trial_state(t) for t in opened.study.get_trials(deepcopy=False)]
    status = JobState.FINISHED if TrialState.COMPLETE in states else JobState.FAILED
    if cancelled:
        status = JobState.KILLED
        client.set_tag(sweep_id, names.TAG_ERROR, "cancelled (seqq cancel)")
    name = dispatch.get("register")
    if name and status == JobState.FINISHED:
        from scheduler import registry

        record = sweeps.describe(client.get_run(sweep_id), opened, [])
        try:
            registry.register_best(client, name, sweep_id, record["best"])
        except Exception as exc:  # the sweep's result stands; say why it is not registered
            log.exception("sweep %s: registering its best trial as %s failed", sweep_id, name)
            client.set_tag(sweep_id, names.TAG_ERROR, f"could not register {name}: {exc}"[:5000])
    client.set_terminated(sweep_id, status)
    conn.srem(names.SWEEPS_ACTIVE_KEY, sweep_id)
    log.info("sweep %s ended %s", sweep_id, status)
    return str(status)


def advance_all(settings: Settings, client: Any, conn: redis.Redis, app: Celery) -> list[str]:
    """Advance every queue sweep not yet ended; the ids of those that ended now."""
    ended = []
    for raw in conn.smembers(names.SWEEPS_ACTIVE_KEY):
        sweep_id = raw.decode() if isinstance(raw, bytes) else str(raw)
        try:
            if advance(sweep_id, settings, client, conn, app) is not None:
                ended.append(sweep_id)
        except SweepNotFoundError:
            conn.srem(names.SWEEPS_ACTIVE_KEY, sweep_id)  # its study is gone: nothing to drive
        except Exception:
            log.exception("sweep %s: advance failed; retried at the next pass", sweep_id)
    return ended


def cancel(sweep_id: str, settings: Settings) -> str:
    """`seqq cancel SWEEP`: start no more trials and stop those in flight."""
    conn = redis_client(settings)
    client = tracking.tracking_client(settings)
    parent = client.get_run(sweep_id)
    if parent.info.status in TERMINAL:
        return f"sweep {sweep_id} already ended {parent.info.status}"
    if parent.data.tags.get(names.TAG_SWEEP_STORAGE) != "redis":
        raise SpecError(
            f"sweep {sweep_id} runs in the `seqq sweep --local` that started it: stop it there "
            "with Ctrl-C"
        )
    broker.request_cancel(conn, sweep_id)
    stopped = []
    for run in sweeps.trial_runs(client, parent):
        if run.info.status not in TERMINAL:
            jobs.cancel(run.info.run_id, settings)
            stopped.append(run.info.run_id)
    advance(sweep_id, settings, client, conn, broker.celery_app(settings))
    return (
        f"sweep {sweep_id} cancelled: no more trials start; {len(stopped)} in flight asked to stop"
    )
