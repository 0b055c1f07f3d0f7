"""The connection to the broker's Redis, for every process that uses it.

The client (submit, cancel, queue, workers), the control plane (the reaper) and workers (leases,
stop flags, the registry) all talk to the same Redis; one function gives them the same URL,
timeouts and, where asked, the same one-line error when it is away.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from shared.errors import ServiceUnavailableError
from shared.settings import Settings, mask_url

if TYPE_CHECKING:
    import redis


def redis_client(
    settings: Settings, timeout: float | None = None, ping: bool = True
) -> redis.Redis:
    """A connection to `settings.broker_url`; socket operations wait `timeout` seconds at most
    (default: the settings' job timeout).

    With `ping`, it has answered (a one-line `ServiceUnavailableError` otherwise), so a command
    fails at once with the reason instead of in Celery's retry loop. Workers' background
    threads pass `ping=False`: they handle an outage where it happens.
    """
    import redis as redis_lib

    wait = settings.job_timeout if timeout is None else timeout
    client = redis_lib.Redis.from_url(
        settings.broker_url, socket_connect_timeout=wait, socket_timeout=wait
    )
    if not ping:
        return client
    try:
        client.ping()
    except (redis_lib.exceptions.RedisError, OSError) as exc:
        raise ServiceUnavailableError(
            f"cannot reach Redis at {mask_url(settings.broker_url)} ({exc.__class__.__name__}); "
            "start it with `redis-server` or set SEQQ_BROKER_URL"
        ) from None
    return client
