"""Redis over TLS (`rediss://`) with a password: a job goes through, nothing leaks the secret.

The test makes its own certificate authority and a server certificate with `openssl`, starts a
`redis-server` that listens only on a TLS port and wants a password, and points the client and a
real worker at it through the URL alone (`?ssl_ca_certs=` names the private CA). A client that
does not trust that CA is refused with a one-line error: the certificate is really verified.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from shared import names
from tests.helpers import TINY, Service, free_port, seqq, seqq_json, wait_for_port
from tests.integration.conftest import start_worker

PASSWORD = "tls-secret-7Qx2"


def _openssl(*args: str, cwd: Path) -> None:
    done = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


@pytest.fixture
def certs(tmp_path: Path) -> Path:
    """A throwaway CA and a server certificate for localhost/127.0.0.1 signed by it."""
    d = tmp_path / "tls"
    d.mkdir()
    _openssl(
        "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
        "-keyout", "ca.key", "-out", "ca.crt", "-subj", "/CN=seqq test CA",
        cwd=d,
    )  # fmt: skip
    _openssl(
        "req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out", "server.csr",
        "-subj", "/CN=localhost",
        cwd=d,
    )  # fmt: skip
    (d / "san.ext").write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    _openssl(
        "x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
        "-CAcreateserial", "-days", "2", "-out", "server.crt", "-extfile", "san.ext",
        cwd=d,
    )  # fmt: skip
    return d


def test_a_job_runs_over_rediss_with_a_password_that_never_shows(
    env: dict[str, str], tmp_path: Path, certs: Path
) -> None:
    port = free_port()
    redis = Service(
        [
            "redis-server",
            "--port", "0",
            "--tls-port", str(port),
            "--bind", "127.0.0.1",
            "--tls-cert-file", str(certs / "server.crt"),
            "--tls-key-file", str(certs / "server.key"),
            "--tls-ca-cert-file", str(certs / "ca.crt"),
            "--tls-auth-clients", "no",
            "--requirepass", PASSWORD,
            "--save", "",
            "--appendonly", "no",
        ],
        tmp_path / "redis.log",
    )  # fmt: skip
    base = f"rediss://:{PASSWORD}@localhost:{port}/0"
    env = {**env, "SEQQ_BROKER_URL": f"{base}?ssl_ca_certs={certs / 'ca.crt'}"}
    try:
        wait_for_port(port)
        # Without the private CA the certificate cannot be verified: refused, in one line.
        untrusting = seqq(["queue"], {**env, "SEQQ_BROKER_URL": base})
        assert untrusting.returncode != 0
        assert "Traceback" not in untrusting.stderr
        assert "cannot reach Redis" in untrusting.stderr
        assert PASSWORD not in untrusting.stdout + untrusting.stderr

        worker = start_worker(env, tmp_path)
        try:
            shown = seqq(["workers"], env)
            assert shown.returncode == 0, shown.stderr
            assert "worker@test" in shown.stdout
            submitted = seqq_json(["submit", *TINY, "--wait"], env)
            job_id = submitted["job_id"]
            assert submitted["status"] == "FINISHED", worker.log()[-3000:]
            status = seqq(["status", job_id], env)
            assert status.returncode == 0, status.stderr
        finally:
            worker.stop()
        assert "succeeded" in worker.log()
        for text in (worker.log(), status.stdout, status.stderr, str(submitted)):
            assert PASSWORD not in text

        from mlflow import MlflowClient

        run = MlflowClient(env["SEQQ_MLFLOW_URI"]).get_run(job_id)
        assert run.info.status == "FINISHED"
        assert int(run.data.tags[names.TAG_STEPS]) == 80
        recorded = " ".join([*run.data.params.values(), *run.data.tags.values()])
        assert PASSWORD not in recorded
    finally:
        redis.stop()
