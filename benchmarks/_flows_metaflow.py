"""Metaflow side of `benchmarks/bench_flows.py`; runs under benchmarks/.venv-metaflow.

Usage (the parent runs Metaflow's own CLI on this file, so the timed process is plain Metaflow):

    BENCH_MF_FLOW=fan python _flows_metaflow.py --no-pylint --quiet run --max-workers 2 --n 100

BENCH_MF_FLOW picks the FlowSpec (linear, fan, handoff, handoff_tiny, resume); Metaflow's task
subprocesses inherit it and so load the same class. The `end` step writes the flow's result to
BENCH_RESULT_FILE as JSON. BENCH_FAIL_MARKER and BENCH_STEP_LOG work as on the other sides.
"""

from __future__ import annotations

import json
import os

from metaflow import FlowSpec, Parameter, step

PROBE = 12_345


def _result(value: object) -> None:
    path = os.environ.get("BENCH_RESULT_FILE")
    if path:
        with open(path, "w") as f:
            json.dump(value, f)


class LinearFlow(FlowSpec):
    """10 steps (Metaflow's mandatory start and end included), each adding 1 to the previous."""

    seed = Parameter("seed", default=0, type=int)

    @step
    def start(self):
        self.x = self.seed + 1
        self.next(self.l2)

    @step
    def l2(self):
        self.x += 1
        self.next(self.l3)

    @step
    def l3(self):
        self.x += 1
        self.next(self.l4)

    @step
    def l4(self):
        self.x += 1
        self.next(self.l5)

    @step
    def l5(self):
        self.x += 1
        self.next(self.l6)

    @step
    def l6(self):
        self.x += 1
        self.next(self.l7)

    @step
    def l7(self):
        self.x += 1
        self.next(self.l8)

    @step
    def l8(self):
        self.x += 1
        self.next(self.l9)

    @step
    def l9(self):
        self.x += 1
        self.next(self.end)

    @step
    def end(self):
        self.x += 1
        _result(self.x)


class FanFlow(FlowSpec):
    """start -> foreach noop (n tasks) -> join -> end."""

    n = Parameter("n", default=100, type=int)
    seed = Parameter("seed", default=0, type=int)

    @step
    def start(self):
        self.items = list(range(self.seed, self.seed + self.n))
        self.next(self.noop, foreach="items")

    @step
    def noop(self):
        self.value = self.input
        self.next(self.join)

    @step
    def join(self, inputs):
        self.total = sum(i.value for i in inputs)
        self.next(self.end)

    @step
    def end(self):
        _result(self.total)


class HandoffFlow(FlowSpec):
    """start makes an n-MB float64 array as an artifact; end reads it."""

    n = Parameter("n", default=100, type=int)
    seed = Parameter("seed", default=0, type=int)

    @step
    def start(self):
        import numpy as np

        self.a = np.random.default_rng(self.seed).random(self.n * 125_000)
        self.next(self.end)

    @step
    def end(self):
        _result(float(self.a[PROBE]))


class HandoffTinyFlow(FlowSpec):
    """The same array is made, but only one float of it is handed on."""

    n = Parameter("n", default=100, type=int)
    seed = Parameter("seed", default=0, type=int)

    @step
    def start(self):
        import numpy as np

        a = np.random.default_rng(self.seed).random(self.n * 125_000)
        self.v = float(a[PROBE])
        self.next(self.end)

    @step
    def end(self):
        _result(self.v)


def _stage(name: str, x: int) -> int:
    with open(os.environ["BENCH_STEP_LOG"], "a") as f:
        f.write(name + "\n")
    if name == "s4" and os.path.exists(os.environ["BENCH_FAIL_MARKER"]):
        raise RuntimeError("planned failure in step 4 of 5")
    return x + 1


class ResumeFlow(FlowSpec):
    """5 steps (start=s1 ... end=s5); s4 raises while the marker file exists."""

    seed = Parameter("seed", default=0, type=int)

    @step
    def start(self):
        self.x = _stage("s1", self.seed)
        self.next(self.s2)

    @step
    def s2(self):
        self.x = _stage("s2", self.x)
        self.next(self.s3)

    @step
    def s3(self):
        self.x = _stage("s3", self.x)
        self.next(self.s4)

    @step
    def s4(self):
        self.x = _stage("s4", self.x)
        self.next(self.end)

    @step
    def end(self):
        self.x = _stage("s5", self.x)
        _result(self.x)


FLOWS = {
    "linear": LinearFlow,
    "fan": FanFlow,
    "handoff": HandoffFlow,
    "handoff_tiny": HandoffTinyFlow,
    "resume": ResumeFlow,
}

if __name__ == "__main__":
    FLOWS[os.environ["BENCH_MF_FLOW"]]()
