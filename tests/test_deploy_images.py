"""deploy/Dockerfile and the systemd unit, checked offline: a slim CPU image and a CUDA GPU
image pinned to the Makefile's torch, run as a non-root user; one pinned worker per GPU under
systemd that stops gracefully (and `systemd-analyze verify` accepts, where installed).

Together with test_deploy_compose.py and test_deploy_k8s.py: the deployment files, checked
offline (no Docker engine, no cluster, no running systemd), so a typo shows here rather than
on `docker compose up` or `kubectl apply` on a GPU host.
"""

from __future__ import annotations

import configparser
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.deployment import IMAGES, STOP_GRACE_S, UNIT, dockerfile_stages
from tests.helpers import REPO


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
