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
def stay(i: int, folder: str, seconds: float) -> str:
    """Record this attempt's node in FOLDER/i.N, then wait; returns the node it finished on."""
    node = _node()
    attempt = len(list(Path(folder).glob(f"{i}.*")))
    (Path(folder) / f"{i}.{attempt}").write_text(node)
    plinth.active_run().log_metric("attempt", attempt)
    time.sleep(seconds)
    return node


@flow
def spread(folder: str, n: int = 3, seconds: float = 3.0) -> list[str]:
    return stay.map(range(n), folder=folder, seconds=seconds)


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
