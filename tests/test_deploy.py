"""The deployment files, checked offline: no Docker engine, no cluster, no running systemd.

A typo in these files would otherwise first show on `docker compose up` or `kubectl apply` on
a GPU host. This checks what can be checked here: the YAML parses and matches the Compose and
Kubernetes schemas, the safe defaults hold (ports bound to SEQQ_BIND, passwords required, no
real secret committed, non-root images), and compose, the manifests, the Dockerfile and the
systemd unit agree with each other and with the code (same images, same `seqq` commands, the
`gpu` queue name, the torch pin).
"""

from __future__ import annotations

import configparser
import importlib
import importlib.util
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from shared import names
from shared.celery_app import make_app
from tests.helpers import REPO, base_env, seqq

COMPOSE_FILE = REPO / "docker-compose.yml"
DOCKERFILE = REPO / "deploy" / "Dockerfile"
K8S = REPO / "deploy" / "k8s"
UNIT = REPO / "deploy" / "systemd" / "seqq-worker@.service"
BIND = "${SEQQ_BIND:-127.0.0.1}"
# The `seqq` subcommands the deployments run. `scheduler` is the control plane's, added with
# it; `worker` is checked against the real CLI below.
SEQQ_COMMANDS = ("worker", "scheduler")
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


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, Any]:
    return compose["services"]


@pytest.fixture(scope="module")
def manifests() -> list[tuple[Path, dict[str, Any]]]:
    """Every Kubernetes object under deploy/k8s, with its file (kustomization.yaml aside)."""
    docs = []
    for path in sorted(K8S.glob("*.yaml")):
        if path.name != "kustomization.yaml":
            docs += [(path, d) for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d]
    return docs


@pytest.fixture(scope="module")
def deployments(manifests: list[tuple[Path, dict[str, Any]]]) -> dict[str, Any]:
    return {d["metadata"]["name"]: d for _, d in manifests if d["kind"] == "Deployment"}


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


# ---- files parse --------------------------------------------------------------------------


def test_every_deploy_yaml_file_parses_and_every_manifest_names_its_kind() -> None:
    files = [COMPOSE_FILE, *sorted((REPO / "deploy").rglob("*.y*ml"))]
    assert len(files) > 5
    for path in files:
        docs = [d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d]
        assert docs, f"{path} is empty"
        if path.parent == K8S and path.name != "kustomization.yaml":
            for doc in docs:
                assert {"apiVersion", "kind", "metadata"} <= doc.keys(), path


# ---- docker-compose.yml -------------------------------------------------------------------


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
    assert published == 3  # redis, mlflow, flower; postgres stays private
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


# ---- deploy/Dockerfile --------------------------------------------------------------------


def test_dockerfile_has_a_slim_cpu_target_and_a_cuda_gpu_target() -> None:
    args, stages = dockerfile_stages()

    def base(stage: str) -> str:
        image = stages[stage][0][1]
        return args.get(image[2:-1], image) if image.startswith("${") else image

    assert base("cpu") == "python:3.11-slim"
    assert base("gpu").startswith("nvidia/cuda:")
    cpu_install = " ".join(rest for op, rest in stages["cpu"] if op == "RUN")
    assert "download.pytorch.org/whl/cpu" in args["TORCH_CPU_INDEX"]
    assert "${TORCH_CPU_INDEX}" in cpu_install


def test_images_pin_the_torch_version_the_makefile_installs() -> None:
    args, _ = dockerfile_stages()
    pin = re.search(r"^TORCH_PIN \?= torch==(\S+)$", (REPO / "Makefile").read_text(), re.M)
    assert pin, "Makefile: TORCH_PIN not found"
    assert args["TORCH_VERSION"] == pin.group(1)


def test_images_run_seqq_as_a_non_root_user() -> None:
    _, stages = dockerfile_stages()
    for target in IMAGES:
        steps = stages[target]
        users = [rest for op, rest in steps if op == "USER"]
        assert users and users[-1] not in {"root", "0"}, target
        assert [rest for op, rest in steps if op == "ENTRYPOINT"][-1] == '["seqq"]', target


def test_dockerfile_copies_only_files_the_repository_has() -> None:
    _, stages = dockerfile_stages()
    for steps in stages.values():
        for op, rest in steps:
            if op == "COPY" and "--from" not in rest:
                for source in rest.split()[:-1]:
                    assert (REPO / source).exists(), source


# ---- deploy/k8s ---------------------------------------------------------------------------


def test_kubernetes_manifests_match_the_kubernetes_schema(
    manifests: list[tuple[Path, dict[str, Any]]],
) -> None:
    import kubernetes_validate

    version = kubernetes_validate.latest_version()
    for path, doc in manifests:
        if doc["apiVersion"].startswith("keda.sh/"):
            continue  # a CRD: checked field by field below
        try:
            kubernetes_validate.validate(doc, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            pytest.fail(f"{path.name} {doc['kind']}: {exc.message} at {list(exc.path)}")


def test_every_manifest_lives_in_the_seqq_namespace(
    manifests: list[tuple[Path, dict[str, Any]]],
) -> None:
    for path, doc in manifests:
        if doc["kind"] != "Namespace":
            assert doc["metadata"]["namespace"] == "seqq", f"{path.name}: {doc['kind']}"


def test_kustomization_applies_every_manifest_but_the_secret_template() -> None:
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    listed = set(kustomization["resources"])
    on_disk = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"}
    assert listed == on_disk - {"secret.example.yaml"}


def test_secret_template_holds_no_real_secret(
    manifests: list[tuple[Path, dict[str, Any]]],
) -> None:
    secrets = [(path, doc) for path, doc in manifests if doc["kind"] == "Secret"]
    assert [path.name for path, _ in secrets] == ["secret.example.yaml"]
    (_, secret) = secrets[0]
    assert "data" not in secret
    for key, value in secret["stringData"].items():
        assert "CHANGE-ME" in value, key


def test_kubernetes_runs_the_same_images_and_commands_as_compose(
    services: dict[str, Any], deployments: dict[str, Any]
) -> None:
    for service, deployment in SAME_PROCESS.items():
        assert container(deployments[deployment])["image"] == services[service]["image"]
        assert k8s_argv(deployments[deployment])[:2] == argv(services[service])[:2]
    for name in ("worker-gpu", "worker-cpu", "scheduler"):
        compose_name = next(s for s, d in SAME_PROCESS.items() if d == name)
        assert k8s_argv(deployments[name]) == argv(services[compose_name]), name


def test_kubernetes_seqq_pods_build_the_broker_url_from_the_secret(
    manifests: list[tuple[Path, dict[str, Any]]], deployments: dict[str, Any]
) -> None:
    secret = next(d for _, d in manifests if d["kind"] == "Secret")
    config = next(d for _, d in manifests if d["kind"] == "ConfigMap")["data"]
    assert config["SEQQ_MLFLOW_URI"] == "http://mlflow:5000"
    assert config["MLFLOW_DISABLE_TELEMETRY"] == config["DO_NOT_TRACK"] == "true"
    for name, deployment in deployments.items():
        env = container(deployment).get("env", [])
        for var in env:
            ref = var.get("valueFrom", {}).get("secretKeyRef")
            if ref:
                assert ref["name"] == secret["metadata"]["name"], name
                assert ref["key"] in secret["stringData"], name
        if k8s_argv(deployment)[0] == "seqq":
            order = [var["name"] for var in env]
            url = next(v["value"] for v in env if v["name"] == "SEQQ_BROKER_URL")
            assert url == "redis://:$(REDIS_PASSWORD)@redis:6379/0", name
            assert order.index("REDIS_PASSWORD") < order.index("SEQQ_BROKER_URL"), name
            assert container(deployment)["envFrom"] == [{"configMapRef": {"name": "seqq-config"}}]
            assert deployment["spec"]["template"]["spec"]["securityContext"]["runAsNonRoot"]


def test_kubernetes_gpu_worker_requests_one_nvidia_gpu(deployments: dict[str, Any]) -> None:
    worker = container(deployments["worker-gpu"])
    assert worker["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert worker["image"] == IMAGES["gpu"]
    assert "nvidia.com/gpu" not in str(container(deployments["worker-cpu"])["resources"])


def test_scheduler_runs_one_replica_and_never_two_during_a_rollout(
    deployments: dict[str, Any],
) -> None:
    spec = deployments["scheduler"]["spec"]
    assert spec["replicas"] == 1
    assert spec["strategy"]["type"] == "Recreate"


def test_keda_scales_the_gpu_worker_deployment_on_the_gpu_queue(
    manifests: list[tuple[Path, dict[str, Any]]], deployments: dict[str, Any]
) -> None:
    by_kind = {d["kind"]: d for _, d in manifests if d["apiVersion"] == "keda.sh/v1alpha1"}
    scaled, auth = by_kind["ScaledObject"], by_kind["TriggerAuthentication"]
    target = scaled["spec"]["scaleTargetRef"]
    assert target["name"] == "worker-gpu" and target["name"] in deployments
    triggers = scaled["spec"]["triggers"]
    # Every GPU queue a worker drains (high, normal, low) counts as waiting work.
    assert [t["metadata"]["listName"] for t in triggers] == names.drain_order(names.QUEUE_GPU)
    for trigger in triggers:
        assert trigger["type"] == "redis"
        assert trigger["metadata"]["address"] == "redis.seqq.svc.cluster.local:6379"
        assert trigger["metadata"]["databaseIndex"] == "0"  # the /0 of SEQQ_BROKER_URL
        assert trigger["authenticationRef"]["name"] == auth["metadata"]["name"]
    # Celery keeps a queue in a list named exactly after it only without a key prefix.
    assert "global_keyprefix" not in make_app().conf.broker_transport_options
    assert "replicas" not in deployments["worker-gpu"]["spec"]  # the HPA's to set
    (password,) = auth["spec"]["secretTargetRef"]
    assert (password["parameter"], password["name"], password["key"]) == (
        "password",
        "seqq-secrets",
        "redis-password",
    )


# ---- deploy/systemd -----------------------------------------------------------------------


def unit() -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]  # keys are case-sensitive
    parser.read_string(UNIT.read_text(encoding="utf-8"))
    return parser


def test_systemd_unit_runs_one_pinned_worker_per_gpu_and_stops_gracefully() -> None:
    service = unit()["Service"]
    assert service["ExecStart"] == "/opt/seqq/.venv/bin/seqq worker --gpus %i"
    assert service["EnvironmentFile"] == "/etc/seqq/env"
    assert service["Restart"] == "on-failure"
    assert service["KillSignal"] == "SIGTERM"
    assert int(service["TimeoutStopSec"]) >= STOP_GRACE_S
    # One pinning mechanism: seqq's own. The unit must not renumber the GPUs under it.
    assert "CUDA_VISIBLE_DEVICES" not in service.get("Environment", "")
    assert service["UnsetEnvironment"] == "CUDA_VISIBLE_DEVICES"
    assert unit()["Install"]["WantedBy"] == "multi-user.target"


def test_systemd_accepts_the_unit(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed (Debian package systemd)")
    # An instance of the template, pointing at an executable that exists here.
    text = UNIT.read_text(encoding="utf-8").replace("/opt/seqq/.venv/bin/seqq", "/bin/true")
    instance = tmp_path / "seqq-worker@0.service"
    instance.write_text(text, encoding="utf-8")
    done = subprocess.run(
        [analyze, "verify", "--man=no", "--generators=no", str(instance)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0 and not done.stderr.strip(), done.stderr


# ---- docker compose itself, where installed ------------------------------------------------


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
