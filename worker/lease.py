"""A job's lease: one live trainer per job, proven by a heartbeat in Redis.

The lease is a redis-py `Lock` (a key with a TTL, renewed by `extend`) named after the job. A
worker takes it before it touches the run and renews it from a background thread while it
trains. A second delivery of the same job (Redis re-delivery, a duplicate send, the reaper)
finds the lease held and watches it: a live holder renews it within a third of the TTL, and the
newcomer stands down; a dead holder's lease simply expires, and the newcomer takes over and
resumes from the last checkpoint. After a Redis restart (keys gone) the holder re-takes its own
lease on the next beat, unless someone else already has it.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
import uuid

import redis
from redis.exceptions import LockError, LockNotOwnedError, RedisError

from shared import names

log = logging.getLogger(__name__)


class Lease:
    """The lease of one job, held by this process."""

    def __init__(self, conn: redis.Redis, job_id: str, ttl: float, holder: str) -> None:
        self.conn = conn
        self.job_id = job_id
        self.ttl = ttl
        self.token = f"{holder}:{uuid.uuid4().hex[:8]}"
        self.lock = conn.lock(names.lease_key(job_id), timeout=ttl, thread_local=False)
        self.lost = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _try_take(self) -> bool:
        return bool(self.lock.acquire(blocking=False, token=self.token))

    def acquire(self) -> bool:
        """Take the lease; if another holder has it, wait to see whether it is alive.

        Returns False (stand down) as soon as the holder renews it; True once a dead holder's
        lease expires and this process takes it.
        """
        if self._try_take():
            return True
        key = names.lease_key(self.job_id)
        last_ttl = self.conn.pttl(key)
        deadline = time.monotonic() + self.ttl + 1.0
        while time.monotonic() < deadline:
            time.sleep(min(0.25, self.ttl / 10))
            if self._try_take():
                return True
            ttl_now = self.conn.pttl(key)
            if ttl_now > last_ttl + 50:  # renewed: the holder is alive
                return False
            last_ttl = ttl_now
        return False

    def start_heartbeat(self) -> None:
        self._thread = threading.Thread(
            target=self._beat, name=f"seqq-lease-{self.job_id[:8]}", daemon=True
        )
        self._thread.start()

    def _beat(self) -> None:
        while not self._stop.wait(self.ttl / 3):
            try:
                self.lock.extend(self.ttl, replace_ttl=True)
            except LockNotOwnedError:
                # The key is gone (Redis restarted) or someone else holds it.
                try:
                    if not self._try_take():
                        log.warning("lease of job %s is held by another worker", self.job_id)
                        self.lost.set()
                        return
                except RedisError as exc:
                    log.warning("lease heartbeat failed (%s); retrying", exc)
            except (RedisError, LockError) as exc:
                log.warning("lease heartbeat failed (%s); retrying", exc)

    def release(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        with contextlib.suppress(LockError, RedisError):
            self.lock.release()
