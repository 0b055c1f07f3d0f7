"""Live worker registry in Redis: who is up, on which GPU, doing what.

Each worker's main process keeps a hash `seqq:worker:<name>` alive with a TTL refreshed by a
heartbeat thread; its pool processes record the current job and count finished ones. A worker
that dies simply expires. `seqq workers` lists these (scheduler.cluster reads them), and
`seqq submit` with `device: auto` routes to the gpu queue when any live worker drains it.
Celery's own `inspect` would need a broadcast round trip per call; this is one SCAN.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from typing import Any

from shared import names
from shared.connection import redis_client
from shared.settings import get_settings

log = logging.getLogger(__name__)
TTL_S = 30
_state: dict[str, Any] = {}


def _conn() -> Any:
    return redis_client(get_settings(), timeout=5, ping=False)


def announce(hostname: str, queues: list[str], slots: int = 1) -> None:
    """Register this worker (its queues and how many jobs it trains at once) and keep it
    registered until the process ends."""
    key = names.worker_key(hostname)
    fields = {
        "name": hostname,
        "host": socket.gethostname(),
        "pid": str(os.getpid()),
        "queues": ",".join(queues),
        "slots": str(slots),
        "gpu": os.environ.get("CUDA_VISIBLE_DEVICES", ""),
        "started": str(time.time()),
    }
    stop = threading.Event()
    _state.update(key=key, stop=stop)

    def beat() -> None:
        while True:
            try:
                conn = _conn()
                conn.hset(key, mapping=fields)
                conn.expire(key, TTL_S)
            except Exception as exc:
                log.warning("worker registry heartbeat failed: %s", exc)
            if stop.wait(TTL_S / 3):
                return

    threading.Thread(target=beat, name="seqq-registry", daemon=True).start()


def withdraw() -> None:
    if "stop" in _state:
        _state["stop"].set()
        try:
            _conn().delete(_state["key"])
        except Exception as exc:
            log.warning("could not withdraw worker registration: %s", exc)


def job_started(hostname: str, job_id: str) -> None:
    try:
        _conn().hset(
            names.worker_key(hostname), mapping={"job": job_id, "job_started": str(time.time())}
        )
    except Exception as exc:
        log.warning("worker registry update failed: %s", exc)


def job_ended(hostname: str) -> None:
    try:
        conn = _conn()
        key = names.worker_key(hostname)
        conn.hset(key, mapping={"job": "", "job_started": ""})
        conn.hincrby(key, "jobs_done", 1)
    except Exception as exc:
        log.warning("worker registry update failed: %s", exc)
