"""Which GPUs this machine has, found without touching CUDA (a forked child needs it clean).

`nvidia-smi` lists physical devices; an inherited `CUDA_VISIBLE_DEVICES` narrows and renumbers
them, exactly as CUDA would, so `--gpus 0` inside a mask of "2,3" means physical device 2.
"""

from __future__ import annotations

import os
import shutil
import subprocess

from shared.errors import SpecError


def visible_gpus() -> list[str]:
    """Device ids (as CUDA_VISIBLE_DEVICES values) in CUDA's logical order."""
    mask = os.environ.get("CUDA_VISIBLE_DEVICES")
    if mask is not None:
        return [d.strip() for d in mask.split(",") if d.strip() and d.strip() != "-1"]
    if shutil.which("nvidia-smi") is None:
        return []
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=index", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=20,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return [line.strip() for line in out.splitlines() if line.strip()]


def select_gpus(request: str, visible: list[str]) -> list[str]:
    """Device ids for `--gpus all` or `--gpus 0,1` (logical indices into `visible`)."""
    if not visible:
        raise SpecError(
            "--gpus: no GPU visible (nvidia-smi found none, or CUDA_VISIBLE_DEVICES is empty)"
        )
    if request == "all":
        return list(visible)
    chosen = []
    for part in request.split(","):
        if not part.strip().isdigit() or int(part) >= len(visible):
            raise SpecError(f"--gpus: {part!r} is not one of 0..{len(visible) - 1} (or 'all')")
        chosen.append(visible[int(part)])
    if len(set(chosen)) != len(chosen):
        raise SpecError(f"--gpus: {request!r} names a GPU twice")
    return chosen
