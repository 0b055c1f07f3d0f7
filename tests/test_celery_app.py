"""The Celery app factory: the wire settings every client and worker share."""

from __future__ import annotations

import ssl

from shared import names
from shared.celery_app import make_app
from shared.settings import Settings, mask_url


def test_the_app_speaks_json_only_with_late_acks_and_prefetch_one() -> None:
    conf = make_app(Settings(broker_url="redis://127.0.0.1:6379/0")).conf
    assert conf.accept_content == ["json"] and conf.result_accept_content == ["json"]
    assert conf.task_serializer == "json" and conf.result_serializer == "json"
    assert conf.task_acks_late and conf.task_reject_on_worker_lost
    assert conf.worker_prefetch_multiplier == 1
    assert conf.broker_transport_options["visibility_timeout"] >= 24 * 3600
    assert {q.name for q in conf.task_queues} == set(names.QUEUES)


def test_rediss_urls_verify_certificates_by_default() -> None:
    conf = make_app(Settings(broker_url="rediss://:pw@redis.example:6380/0")).conf
    assert conf.broker_use_ssl == {"ssl_cert_reqs": ssl.CERT_REQUIRED}
    assert conf.redis_backend_use_ssl == {"ssl_cert_reqs": ssl.CERT_REQUIRED}


def test_passwords_are_masked_in_urls() -> None:
    assert mask_url("redis://:hunter2@host:6379/0") == "redis://:***@host:6379/0"
    assert mask_url("rediss://user:hunter2@host/1") == "rediss://user:***@host/1"
    assert mask_url("redis://host:6379/0") == "redis://host:6379/0"
