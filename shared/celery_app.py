"""The Celery app factory shared by the client (which sends by name) and the worker.

The configuration answers the known traps of long jobs on Redis: JSON only (never pickle),
late acks with `reject_on_worker_lost` so a dead worker's job is not lost, prefetch of one so
a waiting job never sits behind a long one, and a visibility timeout longer than any job so
Redis does not hand a running job to a second worker.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from shared import names
from shared.settings import Settings, get_settings

if TYPE_CHECKING:
    from celery import Celery


def make_app(settings: Settings | None = None) -> Celery:
    """A Celery app bound to the configured broker, with seqq's wire settings."""
    from celery import Celery
    from kombu import Queue

    settings = settings or get_settings()
    app = Celery("seqq", broker=settings.broker_url, backend=settings.backend_url)
    app.conf.update(
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        result_accept_content=["json"],
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        task_acks_on_failure_or_timeout=True,
        worker_prefetch_multiplier=1,
        task_track_started=True,
        result_extended=True,
        result_expires=30 * 24 * 3600,
        task_default_queue=names.QUEUE_CPU,
        task_queues=[Queue(q, routing_key=q) for q in names.QUEUES],
        task_create_missing_queues=True,
        broker_connection_retry_on_startup=True,
        broker_connection_timeout=settings.job_timeout,
        broker_transport_options={
            "visibility_timeout": settings.visibility_timeout,
            # Drain queues in the order a worker lists them: high, normal, low.
            "queue_order_strategy": "priority",
            "socket_connect_timeout": settings.job_timeout,
        },
        result_backend_transport_options={"socket_connect_timeout": settings.job_timeout},
        redis_socket_connect_timeout=settings.job_timeout,
        redis_backend_health_check_interval=30,
        worker_send_task_events=True,
        task_send_sent_event=True,
        worker_hijack_root_logger=False,
    )
    # rediss:// (TLS) through the URL alone: verify certificates unless the URL says otherwise.
    for url, key in (
        (settings.broker_url, "broker_use_ssl"),
        (settings.backend_url, "redis_backend_use_ssl"),
    ):
        if url.startswith("rediss://") and "ssl_cert_reqs" not in url:
            import ssl

            app.conf[key] = {"ssl_cert_reqs": ssl.CERT_REQUIRED}
    return app
