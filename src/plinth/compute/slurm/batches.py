"""A batch folder: the script and the pack files of one sbatch call, written atomically.

A pack file holds what `worker.py` needs to run one job or array element: the driver's working
folder, the results folder, and its tasks (id, label, timeout, memory limit, encoded request).
The script runs the worker on the pack of its array element, in the driver's working folder
when the node has it. Files are made 0600: requests carry the tasks' environment.
"""

from __future__ import annotations

import os
import pickle
import shlex
import sys
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

SCRIPT = "job.sh"


def create(root: str, packs: Sequence[Mapping[str, Any]], cwd: str) -> tuple[str, str]:
    """Write a new batch folder under `root` with one pack file per element; (folder, script path)."""
    folder = os.path.join(root, uuid.uuid4().hex[:16])
    os.mkdir(folder, 0o700)
    for index, pack in enumerate(packs):
        write_atomic(
            os.path.join(folder, f"pack-{index}.pkl"),
            pickle.dumps(dict(pack), protocol=pickle.HIGHEST_PROTOCOL),
        )
    script = os.path.join(folder, SCRIPT)
    write_atomic(script, script_text(folder, cwd).encode())
    return folder, script


def script_text(folder: str, cwd: str) -> str:
    """The batch script: `cd` to the driver's folder where it exists, then exec the worker."""
    pack = shlex.quote(os.path.join(folder, "pack-")) + '"${SLURM_ARRAY_TASK_ID:-0}".pkl'
    here = shlex.quote(cwd)
    return (
        "#!/bin/sh\n"
        f"[ -d {here} ] && cd {here}\n"
        f"exec {shlex.quote(sys.executable)} -m plinth.compute.slurm.worker {pack}\n"
    )


def write_atomic(path: str, data: bytes) -> None:
    """Write `data` to `path` (mode 0600) through a temporary file, so readers never see part of it."""
    temp = f"{path}.{os.getpid()}.tmp"
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)
    os.replace(temp, path)
