"""The Celery app factory: the wire settings every client and worker share."""

from __future__ import annotations

import os
import ssl
import subprocess
import sys

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


def test_the_workers_preload_starts_no_thread_and_leaves_cuda_alone() -> None:
    """What the main process imports before forking pool processes: a thread would not survive
    the fork (a lock it held stays held), and CUDA cannot be used in a child forked after it."""
    probe = (
        "import threading, sys\n"
        "from types import SimpleNamespace\n"
        "from worker.tasks import _preload\n"
        "_preload(sender=SimpleNamespace(hostname='preload-probe@test'))\n"
        "import torch\n"
        "print(threading.active_count(), torch.cuda.is_initialized(),\n"
        "      'torch._dynamo' in sys.modules, 'mlflow' in sys.modules)\n"
    )
    env = {"SEQQ_BROKER_URL": "redis://127.0.0.1:1/0", "MLFLOW_DISABLE_TELEMETRY": "true"}
    done = subprocess.run(
        [sys.executable, "-c", probe],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["1", "False", "True", "True"]
