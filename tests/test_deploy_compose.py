"""docker-compose.yml, checked offline: it parses and matches the Compose Specification, the
safe defaults hold (ports bound to SEQQ_BIND, the Redis password required), and its services
run the agreed `seqq` commands with the images the Dockerfile builds; the real `docker compose
config` where one is installed.

Together with test_deploy_k8s.py and test_deploy_images.py: the deployment files, checked
offline (no Docker engine, no cluster, no running systemd), so a typo shows here rather than
on `docker compose up` or `kubectl apply` on a GPU host.
"""

from __future__ import annotations

import importlib
import importlib.util
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deployment import (
    BIND,
    COMPOSE_FILE,
    COMPOSE_SCHEMA,
    DOCKERFILE,
    IMAGES,
    K8S,
    SEQQ_COMMANDS,
    STOP_GRACE_S,
    argv,
    container,
    k8s_argv,
    seconds,
)
from tests.helpers import REPO, base_env, seqq


def test_every_deploy_yaml_file_parses_and_every_manifest_names_its_kind() -> None:
    files = [COMPOSE_FILE, *sorted((REPO / "deploy").rglob("*.y*ml"))]
    assert len(files) > 5
    for path in files:
        docs = [d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d]
        assert docs, f"{path} is empty"
        if path.parent == K8S and path.name != "kustomization.yaml":
            for doc in docs:
                assert {"apiVersion", "kind", "metadata"} <= doc.keys(), path


def test_compose_file_matches_the_compose_specification_schema() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "check_jsonschema", *COMPOSE_SCHEMA, str(COMPOSE_FILE)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_every_compose_service_has_an_image_or_a_build(services: dict[str, Any]) -> None:
    for name, service in services.items():
        assert "image" in service or "build" in service, name


def test_seqq_images_are_built_from_deploy_dockerfile_with_the_matching_target(
    services: dict[str, Any],
) -> None:
    for name, service in services.items():
        if service["image"] in IMAGES.values():
            build = service["build"]
            assert build["dockerfile"] == "deploy/Dockerfile", name
            assert IMAGES[build["target"]] == service["image"], name


def test_redis_postgres_and_mlflow_have_healthchecks(services: dict[str, Any]) -> None:
    expected = {"redis": ("redis-cli", "ping"), "postgres": ("pg_isready",), "mlflow": ("/health",)}
    for name, words in expected.items():
        check = " ".join(services[name]["healthcheck"]["test"])
        assert all(w in check for w in words), f"{name}: {check}"


def test_every_published_port_is_bound_to_seqq_bind_never_all_interfaces(
    services: dict[str, Any],
) -> None:
    published = 0
    for name, service in services.items():
        for port in service.get("ports", []):
            if isinstance(port, dict):
                assert port.get("host_ip") == BIND, f"{name}: {port}"
            else:
                assert port.startswith(f"{BIND}:"), f"{name}: {port}"
            published += 1
    assert published == 4  # redis, mlflow, flower, sweep-dashboard; postgres stays private
    assert "0.0.0.0:" not in COMPOSE_FILE.read_text(encoding="utf-8")


def test_redis_requires_the_password_that_every_broker_url_carries(
    services: dict[str, Any],
) -> None:
    defaults = set(re.findall(r"\$\{REDIS_PASSWORD:-([^}]*)\}", COMPOSE_FILE.read_text()))
    assert len(defaults) == 1, f"REDIS_PASSWORD has different defaults: {defaults}"
    password = "${REDIS_PASSWORD:-" + defaults.pop() + "}"
    command = services["redis"]["command"]
    assert command[command.index("--requirepass") + 1] == password
    for name, service in services.items():
        if service["image"] in IMAGES.values() and name != "mlflow":
            env = service["environment"]
            assert env["SEQQ_BROKER_URL"] == f"redis://:{password}@redis:6379/0", name
            assert env["SEQQ_MLFLOW_URI"] == "http://mlflow:5000", name


def test_every_seqq_process_has_telemetry_off(services: dict[str, Any]) -> None:
    for name, service in services.items():
        if service["image"] in IMAGES.values():
            env = service["environment"]
            assert env["MLFLOW_DISABLE_TELEMETRY"] == env["DO_NOT_TRACK"] == "true", name


def test_mlflow_stores_runs_in_postgres_and_serves_artifacts_from_a_volume(
    services: dict[str, Any],
) -> None:
    mlflow = services["mlflow"]
    run = argv(mlflow)
    assert run[:2] == ["mlflow", "server"]
    assert run[run.index("--artifacts-destination") + 1] == "/mlartifacts"
    assert run[run.index("--host") + 1] == "0.0.0.0"
    assert "--serve-artifacts" in run
    assert "mlflow:5000" in run[run.index("--allowed-hosts") + 1]  # how the workers call it
    assert any(v.endswith(":/mlartifacts") for v in mlflow["volumes"])
    backend = mlflow["environment"]["MLFLOW_BACKEND_STORE_URI"]
    assert backend.startswith("postgresql://") and "@postgres:5432/" in backend
    assert "psycopg2-binary" in DOCKERFILE.read_text()  # the driver that URI needs


def test_mlflow_server_accepts_every_flag_and_variable_the_deployments_pass(
    services: dict[str, Any], deployments: dict[str, Any]
) -> None:
    from mlflow.cli import server

    flags = {opt for param in server.params for opt in param.opts}
    for run in (argv(services["mlflow"]), k8s_argv(deployments["mlflow"])):
        assert run[:2] == ["mlflow", "server"]
        assert {w for w in run if w.startswith("-")} <= flags
    # The backend store URI (it holds the database password) is passed as this variable.
    backend = next(p for p in server.params if "--backend-store-uri" in p.opts)
    assert backend.envvar == "MLFLOW_BACKEND_STORE_URI"
    k8s_env = {v["name"] for v in container(deployments["mlflow"])["env"]}
    assert backend.envvar in services["mlflow"]["environment"] and backend.envvar in k8s_env


def test_gpu_worker_reserves_nvidia_gpus_and_workers_can_be_scaled(
    services: dict[str, Any],
) -> None:
    devices = services["worker"]["deploy"]["resources"]["reservations"]["devices"]
    assert any(d["driver"] == "nvidia" and "gpu" in d["capabilities"] for d in devices)
    for name in ("worker", "worker-cpu"):
        assert "container_name" not in services[name], f"{name} could not be scaled"


def test_services_start_only_once_their_dependencies_are_healthy(
    services: dict[str, Any],
) -> None:
    for name in ("worker", "worker-cpu", "scheduler"):
        assert set(services[name]["depends_on"]) == {"redis", "mlflow"}, name
    assert set(services["mlflow"]["depends_on"]) == {"postgres"}
    assert set(services["flower"]["depends_on"]) == {"redis"}
    for name, service in services.items():
        for dependency, how in service.get("depends_on", {}).items():
            assert how == {"condition": "service_healthy"}, f"{name} -> {dependency}"
            assert "healthcheck" in services[dependency], dependency


def test_compose_runs_the_agreed_seqq_commands(services: dict[str, Any]) -> None:
    assert argv(services["worker"]) == ["seqq", "worker", "--gpus", "all"]
    assert argv(services["worker-cpu"]) == ["seqq", "worker", "--cpus", "2"]
    assert argv(services["scheduler"]) == ["seqq", "scheduler"]
    for name, service in services.items():
        run = argv(service)
        if run[0] == "seqq":
            assert run[1] in SEQQ_COMMANDS, f"{name}: seqq {run[1]}"


def test_seqq_cli_offers_the_worker_command_the_deployments_run() -> None:
    done = seqq(["--help"], base_env(Path("/nonexistent")))
    assert done.returncode == 0, done.stderr
    assert " worker " in done.stdout


def test_flower_loads_the_celery_app_the_workers_run(services: dict[str, Any]) -> None:
    from celery import Celery

    run = argv(services["flower"])
    assert run[0] == "celery" and "flower" in run and "--port=5555" in run
    module = importlib.import_module(run[run.index("-A") + 1])
    assert isinstance(module.app, Celery)
    assert importlib.util.find_spec("flower") is not None


def test_workers_get_time_to_checkpoint_when_stopped(
    services: dict[str, Any], deployments: dict[str, Any]
) -> None:
    for name in ("worker", "worker-cpu"):
        assert seconds(services[name]["stop_grace_period"]) >= STOP_GRACE_S, name
    for name in ("worker-gpu", "worker-cpu"):
        spec = deployments[name]["spec"]["template"]["spec"]
        assert spec["terminationGracePeriodSeconds"] >= STOP_GRACE_S, name


def compose_command() -> list[str] | None:
    """`docker-compose` (v1, Debian's package) or the `docker compose` plugin, if either runs."""
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    docker = shutil.which("docker")
    if docker:
        probe = subprocess.run([docker, "compose", "version"], capture_output=True, timeout=30)
        if probe.returncode == 0:
            return [docker, "compose"]
    return None


def test_docker_compose_config_accepts_the_file_and_binds_ports_to_localhost(
    tmp_path: Path,
) -> None:
    command = compose_command()
    if command is None:
        pytest.skip("neither docker-compose nor the docker compose plugin is installed")
    no_env = tmp_path / "empty.env"  # the defaults, whatever .env a developer has
    no_env.write_text("")
    env = base_env(tmp_path)
    for var in ("SEQQ_BIND", "REDIS_PASSWORD", "POSTGRES_PASSWORD", "MLFLOW_ALLOWED_HOSTS"):
        env.pop(var, None)
    done = subprocess.run(
        [*command, "--env-file", str(no_env), "-f", str(COMPOSE_FILE), "config"],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert done.returncode == 0, done.stderr
    resolved = yaml.safe_load(done.stdout)["services"]
    for name, service in resolved.items():
        for port in service.get("ports", []):
            host_ip = port["host_ip"] if isinstance(port, dict) else port.split(":")[0]
            assert host_ip == "127.0.0.1", f"{name}: {port}"


def test_the_sweep_dashboard_is_optional_and_serves_the_sweep_named_by_seqq_sweep(
    services: dict[str, Any],
) -> None:
    service = services["sweep-dashboard"]
    assert service["profiles"] == ["dashboard"]  # `docker compose up` alone does not start it
    run = argv(service)
    assert (
        run[:3] == ["seqq", "sweep", "dashboard"]
        and run[3] == "${SEQQ_SWEEP:-set-SEQQ_SWEEP-to-a-sweep-id}"
    )
    assert service["ports"] == ["${SEQQ_BIND:-127.0.0.1}:8080:8080"]
    done = seqq(["sweep", "dashboard", "--help"], base_env(Path("/nonexistent")))
    assert done.returncode == 0 and "--host" in done.stdout and "--port" in done.stdout
    assert importlib.util.find_spec("optuna_dashboard") is not None
