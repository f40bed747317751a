"""Flows for the Ray tests: steps that say where they ran and can wait for a node to be removed."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import plinth
from plinth import flow, step


def _node() -> str:
    import ray

    return str(ray.get_runtime_context().get_node_id())


@step(retries=1, retry_delay="0.05s")
def stay(i: int, folder: str, timeout_s: float) -> str:
    """Record this attempt's node in FOLDER/i.N, wait for FOLDER/release; return the node it finished on."""
    node = _node()
    attempt = len(list(Path(folder).glob(f"{i}.*")))
    (Path(folder) / f"{i}.{attempt}").write_text(node)
    plinth.active_run().log_metric("attempt", attempt)
    deadline = time.monotonic() + timeout_s
    while not (Path(folder) / "release").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    return node


@flow
def spread(folder: str, n: int = 3, timeout_s: float = 300.0) -> list[str]:
    return stay.map(range(n), folder=folder, timeout_s=timeout_s)


@step
def square(x: int) -> int:
    plinth.active_run().log_metric("square", x * x)
    return x * x


@step
def total(values: list[int]) -> int:
    with tempfile.TemporaryDirectory() as folder:
        report = Path(folder) / "total.txt"
        report.write_text(str(sum(values)))
        plinth.active_run().log_artifact(str(report))
    return sum(values)


@flow(executor="ray")
def fan_out(n: int = 50) -> int:
    return total(square.map(range(n)))
