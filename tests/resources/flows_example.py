"""Flows used by the tests (importable as a module and loadable by path)."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import plinth
from plinth import flow, step


@step
def load(seed: int) -> list[int]:
    print(f"loading seed {seed}")
    return [seed, seed + 1, seed + 2]


@step(cache=True)
def train(data: list[int], lr: float) -> dict[str, float]:
    plinth.active_run().log_metric("loss", lr * 2)
    return {"lr": lr, "score": sum(data) * lr}


@step
def pick_best(models: list[dict[str, float]]) -> dict[str, float]:
    return max(models, key=lambda m: m["score"])


@flow(name="example-train")
def pipeline(lr: float = 0.1, seed: int = 0) -> dict[str, float]:
    data = load(seed)
    models = train.map([data] * 4, lr=[0.01, 0.03, 0.1, lr])
    return pick_best(models)


@step
def nap(seconds: float) -> tuple[float, float]:
    start = time.time()
    time.sleep(seconds)
    return start, time.time()


@flow
def naps(seconds: float = 1.0) -> list[tuple[float, float]]:
    return [nap(seconds), nap(seconds)]


def _bump(marker: str) -> int:
    path = Path(marker)
    count = int(path.read_text()) + 1 if path.exists() else 1
    path.write_text(str(count))
    return count


@step(retries=2, retry_delay="0.05s")
def flaky(marker: str, fail_times: int) -> int:
    attempt = _bump(marker)
    if attempt <= fail_times:
        raise RuntimeError(f"attempt {attempt} failed on purpose")
    return attempt


@flow
def flaky_flow(marker: str, fail_times: int = 1) -> int:
    return flaky(marker, fail_times)


@step(retries=1, retry_delay="0.05s")
def dies_once(marker: str) -> int:
    if _bump(marker) == 1:
        os.kill(os.getpid(), signal.SIGKILL)
    return 42


@flow
def worker_dies(marker: str) -> int:
    return dies_once(marker)


@step(timeout="1s")
def sleepy() -> str:
    time.sleep(60)
    return "woke"


@flow
def too_slow() -> str:
    return sleepy()


@step(memory="150MB")
def hungry() -> int:
    block = bytearray(400 * 2**20)
    for i in range(0, len(block), 4096):
        block[i] = 1
    time.sleep(5)
    return len(block)


@flow
def too_hungry() -> int:
    return hungry()


@step(gpu=1)
def on_gpu(i: int) -> tuple[str, float, float]:
    start = time.time()
    time.sleep(0.3)
    return os.environ.get("CUDA_VISIBLE_DEVICES", ""), start, time.time()


@flow
def gpu_fanout(n: int = 4) -> list[tuple[str, float, float]]:
    return on_gpu.map(range(n))


@step(gpu=3)
def greedy() -> int:
    return 1


@flow
def too_many_gpus() -> int:
    return greedy()


@step
def stage(i: int, previous: int | None, marker: str, fail_at: int) -> int:
    if i == fail_at and not Path(marker).exists():
        raise ValueError(f"stage {i} is broken until {marker} exists")
    if Path(marker + ".sleep").exists() and i == 2:
        time.sleep(60)  # long enough to kill the driver meanwhile
    return i + (previous or 0)


@flow
def stages(marker: str, fail_at: int = 3, n: int = 5) -> int:
    previous = None
    for i in range(n):
        previous = stage(i, previous, marker, fail_at)
    return previous


@flow(schedule="*/5 * * * *")
def every_five_minutes() -> str:
    return "tick"


@flow
def body_raises() -> int:
    value = load(1)
    raise ZeroDivisionError(f"the body is broken after {value!r}")


@step
def log_extremes() -> str:
    print("\x1b[31mred\x1b[0m")
    run = plinth.active_run()
    for key, value in {
        "nan": float("nan"),
        "inf": float("inf"),
        "-inf": float("-inf"),
        "huge": 1.7e308,
    }.items():
        run.log_metric(key, value)
    run.log_metric("ok", 1.0)
    return "done"


@flow
def extremes() -> str:
    return log_extremes()


@step
def echo(text: str) -> str:
    return text


@flow
def echo_flow() -> str:
    return echo("esc\x1b lone\ud800")


@step
def open_named(name: str) -> str:
    raise FileNotFoundError(f"no file {name}")


@flow
def odd_failure() -> str:
    return open_named("caf\udce9")  # a name os.fsdecode gives for undecodable bytes
