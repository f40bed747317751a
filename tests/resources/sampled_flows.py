"""Flows whose steps run long enough to be sampled for system metrics."""

from __future__ import annotations

import time

from plinth import flow, step


@step(cpu=2)
def busy(seconds: float) -> int:
    end, n = time.monotonic() + seconds, 0
    while time.monotonic() < end:
        n += 1
    return n


@step(gpu=1)
def on_gpu(seconds: float) -> float:
    time.sleep(seconds)
    return seconds


@flow(name="sampled")
def sampled(seconds: float = 0.5) -> list[int]:
    return [busy(seconds), on_gpu(seconds)]


@flow(name="other-flow")
def other(seconds: float = 0.5) -> int:
    return busy(seconds)
