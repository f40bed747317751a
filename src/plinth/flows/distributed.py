"""What a rank of a distributed step sets up around the step function: its rank, torch.distributed."""

from __future__ import annotations

import contextlib
import datetime
import os
from collections.abc import Iterator

from plinth.compute.groups import free_port, rank_env
from plinth.core.errors import ConfigError

INIT_TIMEOUT = datetime.timedelta(minutes=10)
"""How long a rank waits for the others at the rendezvous (a rank that never comes fails the group)."""


def current_rank(workers: int) -> int:
    """This process's rank in its group (0 for a step of one process)."""
    if workers <= 1:
        return 0
    return int(os.environ.get("RANK", "0"))


@contextlib.contextmanager
def process_group(kind: str | None, workers: int, gpu: int) -> Iterator[None]:
    """Initialise `kind` ("torch") communication for the step's call, and tear it down after.

    A step of one process with distributed="torch" gets a group of one (its own rendezvous
    address), so the same code runs with workers=1 and workers=N.
    """
    if kind != "torch":
        yield
        return
    try:
        import torch
        import torch.distributed as dist
    except ImportError as exc:
        raise ConfigError(
            'This step asks for distributed="torch" but PyTorch is not installed where it runs; '
            "install torch in the step's environment or drop distributed=."
        ) from exc
    saved = _single_process_env() if workers <= 1 else {}
    backend = "nccl" if gpu > 0 and torch.cuda.is_available() and dist.is_nccl_available() else "gloo"
    if backend == "nccl":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")) % torch.cuda.device_count())
    dist.init_process_group(backend, init_method="env://", timeout=INIT_TIMEOUT)
    try:
        yield
        # Every rank returned: meet before tearing down, so a rank that is done early does not
        # close its connections under one still setting up (Gloo connects lazily). A rank that
        # raised skips this; the executor stops the group.
        dist.barrier()
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
        _restore(saved)


def _single_process_env() -> dict[str, str | None]:
    env = rank_env(
        0, 1, local_rank=0, local_world_size=1, node_rank=0, master_addr="127.0.0.1", master_port=free_port()
    )
    saved = {name: os.environ.get(name) for name in env}
    os.environ.update(env)
    return saved


def _restore(saved: dict[str, str | None]) -> None:
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value
