"""What the deployment tests read: the compose file, the Kubernetes manifests, the Dockerfile's
stages and the systemd unit, and what each runs (`argv`), so each target's tests agree with the
others and with the code through one reading of each file.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any

import yaml

from tests.helpers import REPO

COMPOSE_FILE = REPO / "docker-compose.yml"
DOCKERFILE = REPO / "deploy" / "Dockerfile"
K8S = REPO / "deploy" / "k8s"
UNIT = REPO / "deploy" / "systemd" / "seqq-worker@.service"
BIND = "${SEQQ_BIND:-127.0.0.1}"
# The `seqq` subcommands the deployments run. `scheduler` is the control plane's, added with
# it; `sweep` (its `dashboard`) is the optional sweep dashboard's; `worker` is checked against
# the real CLI below.
SEQQ_COMMANDS = ("worker", "scheduler", "sweep")
IMAGES = {"cpu": "seqq:cpu", "gpu": "seqq:gpu"}
# Each compose service and the Kubernetes Deployment that runs the same process.
SAME_PROCESS = {
    "worker": "worker-gpu",
    "worker-cpu": "worker-cpu",
    "scheduler": "scheduler",
    "mlflow": "mlflow",
}
STOP_GRACE_S = 120  # time a worker gets after SIGTERM to checkpoint
# check-jsonschema ships the Compose Specification's own JSON schema (offline).
COMPOSE_SCHEMA = ("--builtin-schema", "vendor.compose-spec")


def load_compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))


def load_manifests() -> list[tuple[Path, dict[str, Any]]]:
    """Every Kubernetes object under deploy/k8s, with its file (kustomization.yaml aside)."""
    docs = []
    for path in sorted(K8S.glob("*.yaml")):
        if path.name != "kustomization.yaml":
            docs += [(path, d) for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d]
    return docs


def entrypoint(image: str) -> list[str]:
    """The entrypoint an image runs unless overridden: `seqq` for ours, the image otherwise."""
    return ["seqq"] if image in IMAGES.values() else [image]


def argv(service: dict[str, Any]) -> list[str]:
    """What a compose service runs: its entrypoint and command."""

    def words(value: str | list[str] | None) -> list[str]:
        return shlex.split(value) if isinstance(value, str) else list(value or [])

    run = words(service.get("entrypoint")) or entrypoint(service["image"])
    return run + words(service.get("command"))


def container(deployment: dict[str, Any]) -> dict[str, Any]:
    return deployment["spec"]["template"]["spec"]["containers"][0]


def k8s_argv(deployment: dict[str, Any]) -> list[str]:
    c = container(deployment)
    return (c.get("command") or entrypoint(c["image"])) + c.get("args", [])


def seconds(duration: str | int) -> int:
    """A compose duration ('120s', '2m', '1m30s') in seconds."""
    units = {"h": 3600, "m": 60, "s": 1}
    if isinstance(duration, int):
        return duration
    return sum(int(n) * units[u] for n, u in re.findall(r"(\d+)([hms])", duration))


def dockerfile_stages() -> tuple[dict[str, str], dict[str, list[tuple[str, str]]]]:
    """(global ARG defaults, {stage name: [(INSTRUCTION, arguments)]}) of deploy/Dockerfile."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text(encoding="utf-8"))
    args: dict[str, str] = {}
    stages: dict[str, list[tuple[str, str]]] = {}
    current: list[tuple[str, str]] | None = None
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        op, _, rest = line.partition(" ")
        op, rest = op.upper(), rest.strip()
        if op == "FROM":
            base, _, name = rest.partition(" AS ")
            current = stages.setdefault(name.strip(), [("FROM", base.strip())])
        elif current is not None:
            current.append((op, rest))
        elif op == "ARG" and "=" in rest:
            key, _, value = rest.partition("=")
            args[key] = value.strip('"')
    return args, stages
