"""The DDP training loop both sides of benchmarks/bench_distributed.py run, and torchrun's entry point.

    torchrun --nproc-per-node 2 benchmarks/_ddp_train.py --steps N --launched T --out FILE
        [--kill-at K --marker FILE --ckpt-every C --ckpt-file FILE]

Each rank trains a 3-layer MLP (1024 wide) with SGD on its own seeded batches of 64 rows, one
thread per rank. Timestamps are wall-clock (time.time()) so they compare across processes:
`launched` is when the launcher was started, `first_step` when the first iteration of this
attempt began. With --kill-at, the last rank SIGKILLs itself once at that step (the marker file
remembers it and holds the time), after the checkpoint before it is stored.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import time
from pathlib import Path
from typing import Any

HIDDEN = 1024
LAYERS = 3
BATCH = 64


def _net() -> Any:
    import torch

    torch.manual_seed(0)
    layers: list[Any] = []
    for _ in range(LAYERS):
        layers += [torch.nn.Linear(HIDDEN, HIDDEN), torch.nn.ReLU()]
    return torch.nn.Sequential(*layers[:-1])


def _load(plinth_side: bool, ckpt_file: str) -> tuple[dict[str, Any] | None, int]:
    """The checkpoint to continue from (plinth's step checkpoint, or torchrun's file) and its step."""
    if plinth_side:
        import plinth

        ckpt = plinth.step_checkpoint()
        return (ckpt.load(), ckpt.step) if ckpt is not None else (None, -1)
    if ckpt_file and Path(ckpt_file).exists():
        import torch

        state = torch.load(ckpt_file, map_location="cpu")
        return state, int(state["step"])
    return None, -1


def _save(plinth_side: bool, ckpt_file: str, state: dict[str, Any], step: int, rank: int) -> None:
    if plinth_side:
        import plinth

        run = plinth.active_run()
        pending = run.log_checkpoint(state, step=step, keep_last=2) if run is not None else None
        if pending is not None:
            pending.wait()  # the kill below must come after it is stored, on both sides
        return
    if rank == 0:
        import torch

        tmp = f"{ckpt_file}.tmp"
        torch.save({**state, "step": step}, tmp)
        os.replace(tmp, ckpt_file)


def train(
    steps: int,
    *,
    launched: float,
    plinth_side: bool = False,
    kill_at: int = -1,
    marker: str = "",
    ckpt_every: int = 0,
    ckpt_file: str = "",
) -> dict[str, Any]:
    """Train for `steps` iterations (from the last checkpoint, if any); rank 0's timings."""
    entered = time.time()
    import torch
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel

    torch.set_num_threads(1)
    if not dist.is_initialized():
        dist.init_process_group("gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    net = _net()
    ddp = DistributedDataParallel(net)
    opt = torch.optim.SGD(ddp.parameters(), lr=0.01)
    load_started = time.time()
    state, last = _load(plinth_side, ckpt_file) if ckpt_every else (None, -1)
    if state is not None:
        net.load_state_dict(state["model"])
        opt.load_state_dict(state["optim"])
    load_s = time.time() - load_started if state is not None else 0.0
    gen = torch.Generator()
    first_step = time.time()
    durations = []
    for i in range(last + 1, steps):
        began = time.perf_counter()
        gen.manual_seed(i * world + rank)
        x = torch.randn(BATCH, HIDDEN, generator=gen)
        loss = ddp(x).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        durations.append(time.perf_counter() - began)
        if ckpt_every and (i + 1) % ckpt_every == 0:
            _save(plinth_side, ckpt_file, {"model": net.state_dict(), "optim": opt.state_dict()}, i, rank)
            dist.barrier()
        if i == kill_at and rank == world - 1 and not Path(marker).exists():
            Path(marker).write_text(str(time.time()))
            os.kill(os.getpid(), signal.SIGKILL)
    dist.barrier()
    return {
        "launched": launched,
        "entered": entered,
        "first_step": first_step,
        "load_s": load_s,
        "resumed_from": last,
        "step_s": statistics.median(durations[10:] or durations),
        "steps": len(durations),
        "world": world,
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, required=True)
    ap.add_argument("--launched", type=float, required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--kill-at", type=int, default=-1)
    ap.add_argument("--marker", default="")
    ap.add_argument("--ckpt-every", type=int, default=0)
    ap.add_argument("--ckpt-file", default="")
    a = ap.parse_args()
    result = train(
        a.steps,
        launched=a.launched,
        kill_at=a.kill_at,
        marker=a.marker,
        ckpt_every=a.ckpt_every,
        ckpt_file=a.ckpt_file,
    )
    if result["world"] and int(os.environ.get("RANK", "0")) == 0:
        Path(a.out).write_text(json.dumps(result))
    import torch.distributed as dist

    dist.destroy_process_group()


if __name__ == "__main__":
    main()
