"""The reaper: re-queue jobs whose worker vanished, so no run stays RUNNING forever.

A RUNNING job always has a lease in Redis, renewed by its worker's heartbeat. When a whole
worker dies (SIGKILL, power loss) its unacknowledged message stays hidden in Redis until the
visibility timeout (days, so long jobs are never delivered twice), and the lease expires. The
reaper sees a RUNNING run without a lease on two passes at least a lease TTL apart, marks the
run SCHEDULED again, and re-sends the job; the next worker resumes from its last checkpoint.
"""

from __future__ import annotations

import json
import logging
import tempfile
import time
from pathlib import Path
from typing import Any

from scheduler.broker import send_job
from shared import names
from shared.settings import Settings
from shared.spec import TrainSpec
from shared.state import JobState

log = logging.getLogger(__name__)


def running_jobs(client: Any, where: str = "") -> list[Any]:
    """The RUNNING job runs of every experiment, optionally narrowed by a further filter."""
    return unfinished_jobs(client, (JobState.RUNNING,), where)


def unfinished_jobs(client: Any, statuses: tuple[JobState, ...], where: str = "") -> list[Any]:
    """The job runs in any of `statuses`, across experiments, optionally narrowed further."""
    experiments = [
        e.experiment_id for e in client.search_experiments() if e.name != names.DATASET_EXPERIMENT
    ]
    if not experiments:
        return []
    found: list[Any] = []
    for status in statuses:  # one search each: MLflow's filter has no IN for the status
        found += client.search_runs(
            experiments,
            filter_string=f"tags.`{names.TAG_KIND}` = 'job' and attributes.status = '{status}'"
            + (f" and {where}" if where else ""),
            max_results=5000,
        )
    return found


def reap_once(client: Any, conn: Any, app: Any, settings: Settings) -> list[str]:
    """One pass; the ids of the jobs it re-queued."""
    now = time.time()
    requeued: list[str] = []
    seen: set[str] = set()
    for run in running_jobs(client):
        job_id = run.info.run_id
        queue = run.data.tags.get(names.TAG_QUEUE, "")
        if queue not in names.QUEUES:  # `seqq run` jobs hold no lease (no broker): not ours
            continue
        seen.add(job_id)
        if conn.exists(names.lease_key(job_id)):
            conn.hdel(names.SUSPECTS_KEY, job_id)
            continue
        first_seen = conn.hget(names.SUSPECTS_KEY, job_id)
        if first_seen is None:
            conn.hset(names.SUSPECTS_KEY, job_id, str(now))
            continue
        if now - float(first_seen) < settings.lease_ttl:
            continue
        requeue(client, app, run, queue)
        conn.hdel(names.SUSPECTS_KEY, job_id)
        requeued.append(job_id)
    for stale in conn.hkeys(names.SUSPECTS_KEY):
        if stale.decode() not in seen:
            conn.hdel(names.SUSPECTS_KEY, stale)
    return requeued


def requeue(client: Any, app: Any, run: Any, queue: str) -> None:
    """Send the job again (same id, same spec, same queue); its run waits as SCHEDULED."""
    job_id = run.info.run_id
    with tempfile.TemporaryDirectory(prefix="seqq-reap-") as tmp:
        path = client.download_artifacts(job_id, names.ARTIFACT_SPEC, tmp)
        spec = TrainSpec.model_validate(json.loads(Path(path).read_text(encoding="utf-8")))
    count = int(run.data.tags.get(names.TAG_REQUEUES, "0")) + 1
    client.set_tag(job_id, names.TAG_REQUEUES, str(count))
    client.update_run(job_id, status=JobState.SCHEDULED)
    send_job(app, job_id, spec, queue)
    log.warning("job %s lost its worker; re-queued on %s (requeue %d)", job_id, queue, count)
