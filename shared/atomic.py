"""Atomic file writes: a file is either absent or complete, never half written.

Caches (corpus files, encoded ids, downloaded datasets) and checkpoints are read by other
processes and after crashes; each is written beside its target and renamed into place, which
POSIX makes atomic. One function for all of them, whatever writes the bytes.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable
from pathlib import Path


def write_atomically(target: Path, write: Callable[[Path], object]) -> Path:
    """Call `write(tmp)` on a fresh file beside `target`, then rename it to `target`.

    The temporary name keeps the target's suffix (numpy's `save` appends `.npy` to any other)
    and is unique to this call, so concurrent writers never share one; a failed write leaves
    no temporary file behind. Returns `target`.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex[:12]}.tmp{target.suffix}")
    try:
        write(tmp)
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return target
