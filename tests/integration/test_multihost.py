"""Workers on other "machines": network namespaces that reach Redis and MLflow only over links.

The test builds two namespaces, each joined to the root namespace by its own veth pair. Redis
and an `mlflow server` listen only on the root side of the first link; each namespace routes
to that one address and nowhere else (no default route, no forwarding). A worker runs inside
each namespace with its own home, so the only way a job's corpus can reach it is through the
artifact store. Jobs submitted from the root namespace must finish on them. Traffic goes only
to the addresses of these test links. No namespaces, no test: it fails with the reason.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from shared import names
from shared.state import TERMINAL
from tests.helpers import (
    TINY,
    Service,
    Worker,
    free_port,
    mlflow_server_argv,
    mlflow_server_env,
    seqq_json,
    wait_until,
)

PASSWORD = "not-a-secret-but-never-printed"
SUBNET = "10.231"  # our own links only: 10.231.<n>.1 (root side) <-> 10.231.<n>.2 (namespace)


def sh(*argv: str) -> None:
    done = subprocess.run(argv, capture_output=True, text=True)
    if done.returncode != 0:
        pytest.fail(f"cannot build the test network: {' '.join(argv)}: {done.stderr.strip()}")


@pytest.fixture
def hosts() -> Iterator[list[str]]:
    """Two namespaces linked to the root namespace; their names."""
    tag = f"{os.getpid() % 10000}"
    made: list[str] = []
    try:
        for n in (1, 2):
            ns, root_if, ns_if = f"seqq{tag}h{n}", f"sq{tag}r{n}", f"sq{tag}n{n}"
            sh("ip", "netns", "add", ns)
            made.append(ns)
            sh("ip", "link", "add", root_if, "type", "veth", "peer", "name", ns_if)
            sh("ip", "link", "set", ns_if, "netns", ns)
            sh("ip", "addr", "add", f"{SUBNET}.{n}.1/30", "dev", root_if)
            sh("ip", "link", "set", root_if, "up")
            sh("ip", "netns", "exec", ns, "ip", "addr", "add", f"{SUBNET}.{n}.2/30", "dev", ns_if)
            sh("ip", "netns", "exec", ns, "ip", "link", "set", ns_if, "up")
            sh("ip", "netns", "exec", ns, "ip", "link", "set", "lo", "up")
            if n != 1:  # the services live on link 1's root address: route to it, and only it
                sh(
                    "ip",
                    "netns",
                    "exec",
                    ns,
                    "ip",
                    "route",
                    "add",
                    f"{SUBNET}.1.1/32",
                    "via",
                    f"{SUBNET}.{n}.1",
                )
        yield made
    finally:
        for ns in made:
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)
        for n in (1, 2):
            subprocess.run(["ip", "link", "del", f"sq{tag}r{n}"], capture_output=True)


def test_jobs_submitted_here_finish_on_workers_in_other_network_namespaces(
    hosts: list[str], env: dict[str, str], tmp_path: Path
) -> None:
    service_ip = f"{SUBNET}.1.1"
    redis_port, mlflow_port = free_port(), free_port()
    redis = Service(
        [
            "redis-server",
            "--bind",
            service_ip,
            "--port",
            str(redis_port),
            "--save",
            "",
            "--appendonly",
            "no",
            # Reachable beyond loopback, so protected: the password travels in the URL.
            "--requirepass",
            PASSWORD,
        ],
        tmp_path / "redis.log",
    )
    server = Service(
        [
            *mlflow_server_argv(tmp_path, mlflow_port, host=service_ip),
            "--allowed-hosts",
            f"{service_ip},{service_ip}:{mlflow_port}",
        ],
        tmp_path / "mlflow.log",
        env=mlflow_server_env(),
    )
    workers: list[Worker] = []
    try:
        wait_until(lambda: _listening(service_ip, redis_port), 60, "redis on the link")
        wait_until(lambda: _listening(service_ip, mlflow_port), 120, "mlflow on the link")
        env = {
            **env,
            "SEQQ_BROKER_URL": f"redis://:{PASSWORD}@{service_ip}:{redis_port}/0",
            "SEQQ_MLFLOW_URI": f"http://{service_ip}:{mlflow_port}",
        }
        for ns in hosts:
            worker_env = {**env, "SEQQ_HOME": str(tmp_path / f"{ns}-home")}
            proc = Worker(
                worker_env,
                tmp_path / f"{ns}.log",
                ["--name", f"{ns}@test"],
                prefix=["ip", "netns", "exec", ns],
            )
            workers.append(proc)
        for proc in workers:
            proc.wait_ready(timeout=120)
        jobs = [
            seqq_json(["submit", *TINY, "--max-steps", "150", "--seed", str(seed)], env)["job_id"]
            for seed in (1, 2)
        ]

        from mlflow import MlflowClient

        client = MlflowClient(env["SEQQ_MLFLOW_URI"])
        wait_until(
            lambda: all(client.get_run(j).info.status in TERMINAL for j in jobs),
            300,
            "both jobs to end",
            interval=1.0,
        )
        assert [client.get_run(j).info.status for j in jobs] == ["FINISHED", "FINISHED"]
        # Each namespace's worker trained one job (prefetch 1: a busy worker takes no second).
        for proc in workers:
            assert proc.log().count("succeeded") == 1, proc.log()[-3000:]
            assert PASSWORD not in proc.log()
        for ns in hosts:
            cached = list((tmp_path / f"{ns}-home" / "cache" / "datasets").iterdir())
            assert [p.name for p in cached] == [
                client.get_run(jobs[0]).data.tags[names.TAG_DATASET_SHA256]
            ]
    finally:
        for proc in workers:
            proc.stop()
        server.stop()
        redis.stop()


def _listening(ip: str, port: int) -> bool:
    import socket

    try:
        with socket.create_connection((ip, port), timeout=0.5):
            return True
    except OSError:
        return False
