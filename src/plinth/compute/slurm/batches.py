"""A batch folder: the script and the pack files of one sbatch call, written atomically; and how
many tasks a pack holds.

A pack file holds what `worker.py` needs to run one job or array element: the driver's working
folder, the results folder, and its tasks (id, label, timeout, memory limit, encoded request).
The script runs the worker on the pack of its array element, in the driver's working folder
when the node has it (a group's script runs its ranks instead, see `groups.py`). Files are made
0600: requests carry the tasks' environment.
"""

from __future__ import annotations

import os
import pickle
import shlex
import sys
import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from plinth.compute.base import Resources, Task
from plinth.compute.slurm.cluster import NodeInfo

SCRIPT = "job.sh"


def create(
    root: str, packs: Sequence[Mapping[str, Any]], cwd: str, script: Callable[[str], str] | None = None
) -> tuple[str, str]:
    """Write a new batch folder under `root` with one pack file per element; (folder, script path).

    `script` gives the batch script's text for the folder (default `script_text`: run the worker).
    """
    folder = os.path.join(root, uuid.uuid4().hex[:16])
    os.mkdir(folder, 0o700)
    for index, pack in enumerate(packs):
        write_atomic(
            os.path.join(folder, f"pack-{index}.pkl"),
            pickle.dumps(dict(pack), protocol=pickle.HIGHEST_PROTOCOL),
        )
    path = os.path.join(folder, SCRIPT)
    text = script(folder) if script is not None else script_text(folder, cwd)
    write_atomic(path, text.encode())
    return folder, path


def script_text(folder: str, cwd: str) -> str:
    """The batch script: `cd` to the driver's folder where it exists, then exec the worker."""
    pack = shlex.quote(os.path.join(folder, "pack-")) + '"${SLURM_ARRAY_TASK_ID:-0}".pkl'
    here = shlex.quote(cwd)
    return (
        "#!/bin/sh\n"
        f"[ -d {here} ] && cd {here}\n"
        f"exec {shlex.quote(sys.executable)} -m plinth.compute.slurm.worker {pack}\n"
    )


def pack(
    items: Sequence[tuple[Task, bytes]], cwd: str, results: str, timeout_s: float | None, memory: int | None
) -> dict[str, Any]:
    """The pack file of `items` (tasks and their encoded requests) run in `cwd`, results to `results`."""
    tasks = [
        {"id": t.id, "label": t.label or t.id, "timeout_s": timeout_s, "memory": memory, "request": r}
        for t, r in items
    ]
    return {"cwd": cwd, "results": results, "tasks": tasks}


def pack_size(res: Resources, nodes: Sequence[NodeInfo], most: int, count: int) -> int:
    """Tasks per element for `count` tasks of `res`: at most `most`, and at least two elements
    for each slot of `res` on the usable `nodes`."""
    cpu = max(1.0, res.cpu)
    slots = sum(int(n.cpus // cpu) for n in nodes if n.usable)
    return max(1, min(most, count // (2 * max(1, slots))))


def write_atomic(path: str, data: bytes) -> None:
    """Write `data` to `path` (mode 0600) through a temporary file, so readers never see part of it."""
    temp = f"{path}.{os.getpid()}.tmp"
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)
    os.replace(temp, path)
