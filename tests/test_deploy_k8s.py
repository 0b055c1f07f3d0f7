"""deploy/k8s, checked offline: the manifests match the Kubernetes schema, live in the seqq
namespace, hold no real secret, and run the same images and commands as compose; KEDA scales
the GPU workers on the queues they drain.

Together with test_deploy_compose.py and test_deploy_images.py: the deployment files, checked
offline (no Docker engine, no cluster, no running systemd), so a typo shows here rather than
on `docker compose up` or `kubectl apply` on a GPU host.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from shared import names
from shared.celery_app import make_app
from tests.deployment import IMAGES, K8S, SAME_PROCESS, argv, container, k8s_argv


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
