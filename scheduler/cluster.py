"""What the cluster looks like right now, read from Redis itself.

Live workers come from the registry each worker keeps (`worker.registry` writes it); waiting
jobs come from the queue lists in Redis, so they are counted even when no worker is connected
(Flower's broker view only sees queues some worker consumes).
"""

from __future__ import annotations

import base64
import json
import time
from typing import Any

from shared import names


def live_workers(conn: Any) -> list[dict[str, Any]]:
    """Every registered worker: name, host, GPU, queues, job slots, current job, jobs done,
    uptime."""
    now = time.time()
    out = []
    for key in conn.scan_iter(match=names.worker_key("*"), count=100):
        raw = {k.decode(): v.decode() for k, v in conn.hgetall(key).items()}
        if not raw:
            continue
        started = float(raw.get("started") or now)
        out.append(
            {
                "name": raw.get("name", key.decode()),
                "host": raw.get("host", ""),
                "gpu": raw.get("gpu") or None,
                "queues": [q for q in raw.get("queues", "").split(",") if q],
                "slots": int(raw.get("slots") or 1),
                "job": raw.get("job") or None,
                "jobs_done": int(raw.get("jobs_done") or 0),
                "uptime_s": round(now - started, 1),
            }
        )
    return sorted(out, key=lambda w: str(w["name"]))


def _job_id(message: bytes) -> str | None:
    """The task id of a raw kombu message in a Redis queue list."""
    try:
        envelope = json.loads(message)
        return str(envelope["headers"]["id"])
    except (ValueError, KeyError, TypeError):
        try:
            return str(json.loads(base64.b64decode(json.loads(message)["body"]))["id"])
        except Exception:
            return None


def waiting_jobs(conn: Any, limit: int = 100) -> dict[str, dict[str, Any]]:
    """For each seqq queue: how many jobs wait, and the ids of the next `limit` in line."""
    out: dict[str, dict[str, Any]] = {}
    for queue in names.QUEUES:
        depth = int(conn.llen(queue))
        # kombu pushes on the left and pops on the right: the next job is the last element.
        nxt = [j for j in (_job_id(m) for m in reversed(conn.lrange(queue, -limit, -1))) if j]
        out[queue] = {"waiting": depth, "next": nxt}
    return out
