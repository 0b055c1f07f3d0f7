"""Helpers for tests that drive real processes: the CLI, workers, services."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from shared.dataset import builtin_corpus_path

REPO = Path(__file__).resolve().parent.parent
# The built-in corpus (~1 MB of this Python's standard-library sources) as a plain file: tests
# that need a text file on disk use it, so a bare clone needs nothing outside the repository.
CORPUS = builtin_corpus_path(Path(tempfile.gettempdir()) / "seqq-tests")
SEQQ = str(Path(sys.executable).parent / "seqq")

# A model small enough to train in seconds on 2 cores, big enough to learn something.
TINY = [
    "--data",
    str(CORPUS),
    "--hidden-size",
    "32",
    "--num-layers",
    "1",
    "--embedding-dim",
    "16",
    "--seq-len",
    "32",
    "--batch-size",
    "16",
    "--max-steps",
    "80",
    "--eval-every",
    "20",
    "--sample-every",
    "40",
    "--checkpoint-every",
    "40",
    "--lr",
    "0.01",
]


def mlflow_server_env() -> dict[str, str]:
    """The environment of an `mlflow server` a test starts: no telemetry, and no job runner
    (MLflow 3 forks about seven huey consumers for GenAI jobs seqq never uses)."""
    return {
        **os.environ,
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "DO_NOT_TRACK": "true",
        "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
    }


def mlflow_server_argv(tmp: Path, port: int, host: str = "127.0.0.1") -> list[str]:
    """A real `mlflow server` on SQLite under `tmp`, serving its own artifacts."""
    return [
        str(Path(sys.executable).parent / "mlflow"),
        "server",
        "--host",
        host,
        "--port",
        str(port),
        "--workers",
        "1",
        "--backend-store-uri",
        f"sqlite:///{tmp / 'server.db'}",
        "--serve-artifacts",
        "--artifacts-destination",
        str(tmp / "server-artifacts"),
    ]


def start_mlflow_server(tmp: Path, timeout: float = 120) -> tuple[Service, int]:
    """Start a real `mlflow server` on a free loopback port; wait until it accepts connections."""
    port = free_port()
    server = Service(mlflow_server_argv(tmp, port), tmp / "mlflow.log", env=mlflow_server_env())
    wait_for_port(port, timeout=timeout)
    return server, port


def base_env(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SEQQ_", "MLFLOW_"))}
    env.update(
        SEQQ_HOME=str(home),
        MLFLOW_DISABLE_TELEMETRY="true",
        DO_NOT_TRACK="true",
        PYTHONUNBUFFERED="1",
        COLUMNS="200",
    )
    env.update(extra)
    return env


def seqq(
    args: list[str], env: dict[str, str], timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    """Run the real `seqq` console script."""
    return subprocess.run([SEQQ, *args], env=env, capture_output=True, text=True, timeout=timeout)


def seqq_json(args: list[str], env: dict[str, str], timeout: float = 300) -> Any:
    done = seqq([*args, "--json"], env, timeout)
    assert done.returncode == 0, f"seqq {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}"
    try:
        return json.loads(done.stdout)
    except json.JSONDecodeError:
        shown = " ".join(args)
        raise AssertionError(f"seqq {shown}: not JSON:\n{done.stdout}\n{done.stderr}") from None


def wait_until(
    predicate: Callable[[], Any], timeout: float, what: str, interval: float = 0.2
) -> Any:
    """Poll until `predicate()` is truthy (returning it) or fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


class Worker:
    """A real `seqq worker` process, its output captured to a log file."""

    def __init__(
        self,
        env: dict[str, str],
        log_path: Path,
        args: list[str] | None = None,
        prefix: list[str] | None = None,
        command: list[str] | None = None,
    ) -> None:
        self.log_path = log_path
        self._log = log_path.open("wb")
        self.argv = [*(prefix or []), *(command or [SEQQ, "worker"]), *(args or [])]
        self.proc = subprocess.Popen(
            self.argv,
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_ready(self, timeout: float = 60) -> None:
        def ready() -> bool:
            if self.proc.poll() is not None:
                raise AssertionError(f"worker exited early:\n{self.log()}")
            return " ready." in self.log()

        wait_until(ready, timeout, "the worker to be ready")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> None:
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, sig)
                self.proc.wait(timeout=timeout)
            except (subprocess.TimeoutExpired, ProcessLookupError):
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
        self._log.close()


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def pool_children(pid: int) -> list[int]:
    """Pids of the direct children of `pid` (a Celery worker's pool processes)."""
    children = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            children.append(int(stat.parent.name))
    return children


class Service:
    """A server process the test owns (redis-server, mlflow server), stopped at the end."""

    def __init__(self, argv: list[str], log_path: Path, env: dict[str, str] | None = None) -> None:
        self.argv = argv
        self.env = env
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None
        self.start()

    def start(self) -> None:
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            self.argv, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        log.close()

    def stop(self, timeout: float = 20) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)


def wait_for_port(port: int, timeout: float = 60) -> None:
    import socket

    def accepting() -> bool:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return True
        except OSError:
            return False

    wait_until(accepting, timeout, f"port {port} to accept connections")
