"""Client operations on jobs: submit, run here, status, list, cancel.

Each function does all its checks before its first side effect, so bad input leaves nothing
behind: no dataset upload, no MLflow run, no message in the queue.
"""

from __future__ import annotations

import os
import socket
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from scheduler import broker, tracking
from shared import names
from shared.connection import redis_client
from shared.dataset import LocalDataset, check_prompts, resolve_dataset
from shared.errors import JobNotFoundError, ServiceUnavailableError, SpecError
from shared.settings import Settings
from shared.spec import TrainSpec
from shared.state import TERMINAL, JobState

if TYPE_CHECKING:
    from mlflow import MlflowClient

    from worker.job import JobOutcome
    from worker.train import Reporter


STATUS_LABEL = {JobState.SCHEDULED: "QUEUED"}


@dataclass(frozen=True)
class Submission:
    """What `seqq submit` prints: where the job went and where to watch it."""

    job_id: str
    experiment_id: str
    queue: str
    url: str


def check_inputs(spec: TrainSpec, settings: Settings) -> LocalDataset:
    """Every client-side check of a spec's data, with no side effect."""
    dataset = resolve_dataset(spec.data, settings.cache_dir)
    check_prompts(spec.sample.prompts, dataset)
    return dataset


def check_route(queue: str | None, priority: str) -> None:
    """`--queue` and `--priority` as `submit` and `sweep` take them, refused in one line."""
    if priority not in names.PRIORITIES:
        raise SpecError(
            f"--priority: expected one of {', '.join(names.PRIORITIES)}, got {priority!r}"
        )
    if queue is not None and queue not in names.QUEUES:
        raise SpecError(f"--queue: expected one of {', '.join(names.QUEUES)}, got {queue!r}")


def _register(
    client: tracking.Writer,
    spec: TrainSpec,
    dataset: LocalDataset,
    settings: Settings,
    queue: str,
    parent_run_id: str | None = None,
    run_name: str | None = None,
    extra_tags: dict[str, str] | None = None,
) -> tuple[TrainSpec, str]:
    """Upload the corpus (once per hash) and create the run; the resolved spec and run id."""
    uri = tracking.publish_dataset(client, dataset, settings)
    data = spec.data.model_copy(update={"uri": uri, "sha256": dataset.sha256})
    resolved = spec.model_copy(update={"data": data})
    run_id = tracking.create_job_run(
        client, resolved, dataset, settings, queue, parent_run_id, run_name, extra_tags
    )
    return resolved, run_id


def submit(
    spec: TrainSpec,
    settings: Settings,
    parent_run_id: str | None = None,
    run_name: str | None = None,
    queue: str | None = None,
    priority: str = "normal",
) -> Submission:
    """Validate, upload the corpus, create the run and enqueue the job.

    The queue is `queue` when given, else chosen from the spec's device and `priority`.
    """
    dataset = check_inputs(spec, settings)
    check_route(queue, priority)
    conn = redis_client(settings)
    client = tracking.writer(settings)
    queue = queue or broker.route(spec, conn, priority)
    app = broker.celery_app(settings)
    resolved, run_id = _register(client, spec, dataset, settings, queue, parent_run_id, run_name)
    try:
        broker.send_job(app, run_id, resolved, queue)
    except Exception as exc:
        client.delete_run(run_id)
        raise ServiceUnavailableError(
            f"could not enqueue the job ({exc.__class__.__name__}); nothing was submitted"
        ) from None
    experiment_id = client.get_run(run_id).info.experiment_id
    return Submission(
        run_id, experiment_id, queue, tracking.curves_url(settings, experiment_id, [run_id])
    )


def run_here(
    spec: TrainSpec,
    settings: Settings,
    reporter: Reporter,
    parent_run_id: str | None = None,
    run_name: str | None = None,
) -> tuple[JobOutcome, str]:
    """Train in this process through the same job function a worker runs (no broker)."""
    dataset = check_inputs(spec, settings)
    client = tracking.tracking_client(settings)
    for orphan in close_orphaned_local_runs(client):
        # stderr directly: a logging handler may be reconfigured by MLflow's store migrations.
        print(
            f"closed run {orphan} as FAILED: the `seqq run` that trained it died", file=sys.stderr
        )
    # The owner is on the run from its creation: a `seqq run` killed at any moment after it
    # (still SCHEDULED, or RUNNING) leaves a run the next `seqq run` here can close.
    owner = {
        names.TAG_LOCAL_OWNER: process_identity(os.getpid()),
        names.TAG_WORKER_HOST: socket.gethostname(),
    }
    resolved, run_id = _register(
        client, spec, dataset, settings, names.QUEUE_LOCAL, parent_run_id, run_name, owner
    )
    from worker.job import run_job  # the only place the client side imports torch

    outcome = run_job(run_id, resolved, reporter, settings)
    experiment_id = client.get_run(run_id).info.experiment_id
    return outcome, tracking.curves_url(settings, experiment_id, [run_id])


def process_identity(pid: int) -> str:
    """`pid:start`, where start is the process's start time in clock ticks (Linux), so a
    recycled pid is never mistaken for the process that owned a run."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return f"{pid}:{stat.rsplit(')', 1)[1].split()[19]}"
    except (OSError, IndexError):
        return str(pid)


def _owner_alive(owner: str) -> bool:
    pid_text, _, start = owner.partition(":")
    try:
        pid = int(pid_text)
    except ValueError:
        return True  # not ours to judge
    if start and Path("/proc").is_dir():
        return process_identity(pid) == owner
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def close_orphaned_local_runs(client: MlflowClient) -> list[str]:
    """End the unfinished (RUNNING, or SCHEDULED before training began) runs of `seqq run`
    processes on this host that died without closing them (SIGKILL, a closed terminal, power
    loss): FAILED, with the reason. Queued jobs are the reaper's; these have no broker and no
    lease, so the next `seqq run` here tidies them."""
    from scheduler.reaper import unfinished_jobs

    here = (
        f"tags.`{names.TAG_QUEUE}` = '{names.QUEUE_LOCAL}' "
        f"and tags.`{names.TAG_WORKER_HOST}` = '{socket.gethostname()}'"
    )
    closed = []
    for run in unfinished_jobs(client, (JobState.RUNNING, JobState.SCHEDULED), here):
        owner = run.data.tags.get(names.TAG_LOCAL_OWNER)
        if owner is None or _owner_alive(owner):
            continue
        pid = owner.partition(":")[0]
        reason = f"the `seqq run` process (pid {pid}) that trained this job died before it ended"
        client.set_tag(run.info.run_id, names.TAG_ERROR, reason)
        client.set_terminated(run.info.run_id, JobState.FAILED)
        closed.append(run.info.run_id)
    return closed


def _get_run(client: tracking.Reader, job_id: str) -> Any:
    try:
        return client.get_run(job_id)
    except tracking.refusals(client):
        raise JobNotFoundError(f"job {job_id}: no such job in this tracking store") from None


def describe(run: Any, live: broker.LiveState | None) -> dict[str, Any]:
    """One job as a flat JSON-able record (MLflow for what is recorded, Celery for what is live)."""
    data = run.data
    status = STATUS_LABEL.get(run.info.status, run.info.status)
    info = (
        live.info
        if live and live.state == names.STATE_PROGRESS and status == JobState.RUNNING
        else {}
    )
    return {
        "kind": "job",
        "job_id": run.info.run_id,
        "status": status,
        "model": data.tags.get(names.TAG_MODEL) or data.params.get("model.cell"),
        "name": run.info.run_name,
        "experiment_id": run.info.experiment_id,
        "queue": data.tags.get(names.TAG_QUEUE),
        "step": info.get("step", _int(data.tags.get(names.TAG_STEPS))),
        "max_steps": info.get("max_steps", _int(data.params.get("optim.max_steps"))),
        "train_loss": info.get("train_loss", data.metrics.get(names.METRIC_TRAIN_LOSS)),
        "val_loss": info.get("val_loss") or data.metrics.get(names.METRIC_VAL_LOSS),
        "best_val_loss": data.metrics.get(names.METRIC_BEST_VAL_LOSS),
        "best_step": _int_metric(data.metrics.get(names.METRIC_BEST_STEP)),
        "test_loss": data.metrics.get(names.METRIC_TEST_LOSS),
        "test_loss_best": data.metrics.get(names.METRIC_TEST_LOSS_BEST),
        "stopped_early_at": _int(data.tags.get(names.TAG_STOPPED_EARLY_AT)),
        "tokens_per_sec": info.get("tokens_per_sec", data.metrics.get(names.METRIC_TOKENS_PER_SEC)),
        "device": data.tags.get(names.TAG_DEVICE),
        "worker": data.tags.get(names.TAG_WORKER_HOST),
        "error": data.tags.get(names.TAG_ERROR),
        "start_time": run.info.start_time,
        "end_time": run.info.end_time,
    }


def _int_metric(value: float | None) -> int | None:
    """A metric that counts (a step): MLflow stores every metric as a float."""
    return int(value) if value is not None else None


def _int(value: str | None) -> int | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def _live(settings: Settings, job_id: str) -> broker.LiveState | None:
    """Celery's view of a job, or None when Redis is down (MLflow still answers)."""
    try:
        redis_client(settings)
    except ServiceUnavailableError:
        return None
    return broker.live_state(broker.celery_app(settings), job_id)


def status(job_id: str, settings: Settings) -> dict[str, Any]:
    client = tracking.reader(settings)
    run = _get_run(client, job_id)
    # Only a running job has live progress (describe reads nothing else from Celery): asking
    # Celery about a queued job would cost a Redis and Celery start-up for nothing.
    live = _live(settings, job_id) if run.info.status == "RUNNING" else None
    return describe(run, live)


def list_jobs(
    settings: Settings, limit: int = 20, experiment: str | None = None
) -> list[dict[str, Any]]:
    client = tracking.reader(settings)
    if experiment:
        found = client.get_experiment_by_name(experiment)
        experiment_ids = [found.experiment_id] if found else []
    else:
        experiment_ids = [
            e.experiment_id
            for e in client.search_experiments()
            if e.name != names.DATASET_EXPERIMENT
        ]
    if not experiment_ids:
        return []
    runs = client.search_runs(
        experiment_ids,
        filter_string=f"tags.`{names.TAG_KIND}` = 'job'",
        order_by=["attributes.start_time DESC"],
        max_results=limit,
    )
    sweeps, compares = (
        client.search_runs(
            experiment_ids,
            filter_string=f"tags.`{names.TAG_KIND}` = '{kind}'",
            order_by=["attributes.start_time DESC"],
            max_results=limit,
        )
        for kind in (names.KIND_SWEEP, names.KIND_COMPARE)
    )
    needs_live = any(r.info.status == JobState.RUNNING for r in runs)
    app = None
    if needs_live:
        try:
            redis_client(settings)
            app = broker.celery_app(settings)
        except ServiceUnavailableError:
            app = None
    listed = [
        describe(
            r,
            broker.live_state(app, r.info.run_id)
            if app and r.info.status == JobState.RUNNING
            else None,
        )
        for r in runs
    ]
    listed += [describe_sweep(client, r) for r in sweeps]
    return listed + [describe_compare(client, r) for r in compares]


def _children(client: tracking.Reader, run: Any) -> list[Any]:
    return client.search_runs(
        [run.info.experiment_id],
        filter_string=f"tags.`mlflow.parentRunId` = '{run.info.run_id}'",
        max_results=10000,
    )


def describe_sweep(client: tracking.Reader, run: Any) -> dict[str, Any]:
    """One sweep as `seqq list` shows it, from its parent run and a count of its trials' runs
    (no study opened: listing stays light)."""
    data = run.data
    trials = _children(client, run)
    ended = sum(t.info.status in TERMINAL for t in trials)
    return {
        "kind": names.KIND_SWEEP,
        "sweep_id": run.info.run_id,
        "status": run.info.status,
        "name": run.info.run_name,
        "experiment_id": run.info.experiment_id,
        "queue": data.tags.get(names.TAG_QUEUE),
        "trials_wanted": _int(data.params.get("sweep.trials")),
        "trials_started": len(trials),
        "trials_ended": ended,
        "best_val_loss": data.metrics.get(names.METRIC_BEST_VAL_LOSS),
        "best_trial": _int(data.tags.get(names.TAG_SWEEP_BEST_TRIAL)),
        "error": data.tags.get(names.TAG_ERROR),
        "start_time": run.info.start_time,
        "end_time": run.info.end_time,
    }


def describe_compare(client: tracking.Reader, run: Any) -> dict[str, Any]:
    """One comparison as `seqq list` shows it, from its parent run and its children's runs (a
    tuned comparison's children are its sweeps' parents and its final runs)."""
    data = run.data
    children = _children(client, run)
    tune = data.tags.get(names.TAG_COMPARE_TUNE)
    return {
        "kind": names.KIND_COMPARE,
        "compare_id": run.info.run_id,
        "status": run.info.status,
        "name": run.info.run_name,
        "experiment_id": run.info.experiment_id,
        "models": [m for m in (data.tags.get(names.TAG_COMPARE_MODELS) or "").split(",") if m],
        "seeds": [_int(s) for s in (data.tags.get(names.TAG_COMPARE_SEEDS) or "").split(",") if s],
        "tune_budget_s": float(tune) if tune else None,
        "children_started": len(children),
        "children_ended": sum(c.info.status in TERMINAL for c in children),
        "start_time": run.info.start_time,
        "end_time": run.info.end_time,
    }


def cancel(job_id: str, settings: Settings) -> str:
    """Ask a job to stop; a queued job is ended KILLED at once. Returns what happened."""
    conn = redis_client(settings)
    client = tracking.tracking_client(settings)
    run = _get_run(client, job_id)
    if run.data.tags.get(names.TAG_KIND) == names.KIND_SWEEP:
        from scheduler import sweep_queue

        return sweep_queue.cancel(job_id, settings)
    if run.info.status in TERMINAL:
        return f"job {job_id} already ended {run.info.status}"
    broker.request_cancel(conn, job_id)
    if run.info.status == JobState.SCHEDULED:
        client.set_tag(job_id, names.TAG_ERROR, "cancelled before it started")
        client.set_terminated(job_id, JobState.KILLED)
        return f"job {job_id} cancelled before it started (KILLED)"
    return f"job {job_id} asked to stop; it ends KILLED at its next step"
