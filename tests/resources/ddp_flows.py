"""A small DistributedDataParallel training step, its flow, and the same training in one process.

Each step trains a linear model with SGD on a fixed synthetic dataset; every rank takes its
share of each global batch, so with DDP's gradient averaging the result equals one process
training on the whole batch. `kill_at` makes the last rank SIGKILL itself once (a marker file
remembers it did), after the checkpoint before that step is stored.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

import plinth
from plinth import flow, step

DIM = 8
GLOBAL_BATCH = 16
LR = 0.1


def data(steps: int) -> tuple[Any, Any]:
    import torch

    gen = torch.Generator().manual_seed(7)
    x = torch.randn(steps * GLOBAL_BATCH, DIM, generator=gen)
    w = torch.arange(1, DIM + 1, dtype=torch.float32)
    y = (x @ w).unsqueeze(1) + 0.1 * torch.randn(steps * GLOBAL_BATCH, 1, generator=gen)
    return x, y


def model() -> Any:
    import torch

    torch.manual_seed(0)
    return torch.nn.Linear(DIM, 1)


def flat(module: Any) -> Any:
    import torch

    return torch.cat([p.detach().reshape(-1) for p in module.parameters()])


def train_alone(steps: int) -> list[float]:
    """The reference: one process, the whole global batch at each step."""
    import torch

    net = model()
    opt = torch.optim.SGD(net.parameters(), lr=LR)
    x, y = data(steps)
    for i in range(steps):
        batch = slice(i * GLOBAL_BATCH, (i + 1) * GLOBAL_BATCH)
        loss = torch.nn.functional.mse_loss(net(x[batch]), y[batch])
        opt.zero_grad()
        loss.backward()
        opt.step()
    return [float(v) for v in flat(net)]


def train_ddp(steps: int, ckpt_every: int = 0, kill_at: int = -1, marker: str = "") -> dict[str, Any]:
    """The DDP training loop a user would write, resuming from `plinth.step_checkpoint()`."""
    import torch
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel

    torch.set_num_threads(1)
    rank, world = dist.get_rank(), dist.get_world_size()
    net = model()
    ddp = DistributedDataParallel(net)
    opt = torch.optim.SGD(ddp.parameters(), lr=LR)
    start = 0
    ckpt = plinth.step_checkpoint()
    if ckpt is not None:
        state = ckpt.load()
        net.load_state_dict(state["model"])
        opt.load_state_dict(state["optim"])
        start = ckpt.step + 1
    run = plinth.active_run()
    assert run is not None
    x, y = data(steps)
    for i in range(start, steps):
        batch = slice(i * GLOBAL_BATCH, (i + 1) * GLOBAL_BATCH)
        loss = torch.nn.functional.mse_loss(ddp(x[batch][rank::world]), y[batch][rank::world])
        opt.zero_grad()
        loss.backward()
        opt.step()
        run.log_metric("loss", float(loss), step=i)
        if ckpt_every and (i + 1) % ckpt_every == 0:
            state = {"model": net.state_dict(), "optim": opt.state_dict()}
            pending = run.log_checkpoint(state, step=i, metrics={"loss": float(loss)}, keep_last=2)
            if pending is not None:  # rank 0: wait, so the kill below comes after it is stored
                pending.wait()
            dist.barrier()
        if i == kill_at and rank == world - 1 and not Path(marker).exists():
            Path(marker).touch()
            os.kill(os.getpid(), signal.SIGKILL)
    mine = flat(net)
    every = [torch.zeros_like(mine) for _ in range(world)]
    dist.all_gather(every, mine)
    return {
        "weights": [[float(v) for v in w] for w in every],
        "start": start,
        "world": world,
        "rank": rank,
        "env": {k: os.environ[k] for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR")},
    }


@flow
def ddp(
    workers: int = 2,
    steps: int = 12,
    ckpt_every: int = 0,
    kill_at: int = -1,
    marker: str = "",
    cpu: float = 0.5,
) -> dict[str, Any]:
    train = step(
        workers=workers, cpu=cpu, distributed="torch", checkpoint=True, retry_delay="0.1s", name="train"
    )(train_ddp)
    return train(steps, ckpt_every, kill_at, marker)


@flow
def ddp_once(steps: int, marker: str) -> dict[str, Any]:
    """Two ranks, no retries: the killed rank fails the flow, and `plinth.resume_flow` goes on."""
    train = step(workers=2, cpu=0.5, distributed="torch", name="train")
    return train(train_ddp)(steps, 4, 6, marker)
