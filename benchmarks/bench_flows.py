"""Flows benchmark: plinth vs Metaflow vs Prefect on the same five flows, same machine, same run.

    python benchmarks/bench_flows.py [--quick] [--only SIDE[,SIDE]] [--rows 1,3] [--write|--no-write] [--keep]

Each side runs in its own interpreter: plinth under this one (`_flows_plinth.py`), Metaflow under
benchmarks/.venv-metaflow (its CLI on `_flows_metaflow.py`) and Prefect under
benchmarks/.venv-prefect (`_flows_prefect.py`); both venvs are created on first use. Every
number is either the wall time of a fresh process running one flow end to end (cold; timed
here, interpreter start, imports and shutdown included) or, for plinth and Prefect, the
in-process time of a later run in the same process (warm). The table is printed and, for a full
run of all sides and rows, written to benchmarks/RESULTS.md under "## flows" (how each row is
measured is described there).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import signal
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import harness
from harness import HERE, log

SECTION = "flows"
SIDES = ("metaflow", "prefect", "plinth")
SCRIPTS = {side: HERE / f"_flows_{side}.py" for side in SIDES}
VENVS: dict[str, tuple[Path, list[str], str]] = {
    "metaflow": (HERE / ".venv-metaflow", ["metaflow", "numpy"], "import metaflow, numpy"),
    # 3.8.8 is the newest Prefect that installs here, and it needs this fastapi.
    "prefect": (
        HERE / ".venv-prefect",
        ["prefect==3.8.8", "fastapi==0.154.0", "numpy"],
        "import prefect, numpy",
    ),
}
METAFLOW_WORKERS = 2  # --max-workers: faster here than the default 16 (20 s vs 30 s on 100-way)
METAFLOW_CAP_S = 600  # the 1,000-way Metaflow run is cut after this long
PROCESS_CAP_S = 600  # any other process
PROBE = 12_345  # the array element both hand-off flows return

FULL = {"linear": 10, "fan_small": 100, "fan_big": 1000, "mb": 100, "reps": 3, "warm": 3}
QUICK = {"linear": 10, "fan_small": 20, "fan_big": 100, "mb": 10, "reps": 1, "warm": 1}
ROWS = {1: "linear", 2: "fan_small", 3: "fan_big", 4: "handoff", 5: "resume"}


# --------------------------------------------------------------------------- processes


@dataclass
class Proc:
    """One finished (or cut) child process."""

    wall: float
    rc: int
    cut: bool
    data: dict[str, Any] | None  # the side's JSON line (plinth, Prefect)
    result: Any  # BENCH_RESULT_FILE (Metaflow)
    err_path: Path


@dataclass
class Side:
    """Where and how one side runs."""

    name: str
    python: str
    work: Path
    env: dict[str, str] = field(default_factory=dict)
    count: int = 0

    @property
    def marker(self) -> Path:
        return self.work / "fail-marker"

    @property
    def step_log(self) -> Path:
        return self.work / "steps.log"

    @property
    def result_file(self) -> Path:
        return self.work / "result.json"

    def read_steps(self) -> list[str]:
        """The `chain` steps that ran since the last call (and clear the log)."""
        if not self.step_log.exists():
            return []
        names = self.step_log.read_text().split()
        self.step_log.unlink()
        return names

    def spawn(self, args: list[str], timeout: float = PROCESS_CAP_S, flow: str = "") -> Proc:
        """Run the side's script (or Metaflow's CLI on it) in a fresh process; time it."""
        self.count += 1
        logs = self.work / "logs"
        logs.mkdir(exist_ok=True)
        out_path = logs / f"{self.count:03d}-{flow or args[0]}.out"
        err_path = logs / f"{self.count:03d}-{flow or args[0]}.err"
        env = dict(self.env)
        if flow:
            env["BENCH_MF_FLOW"] = flow
        if self.result_file.exists():
            self.result_file.unlink()
        cmd = [self.python, str(SCRIPTS[self.name]), *args]
        cut = False
        with open(out_path, "w") as out, open(err_path, "w") as err:
            t0 = time.perf_counter()
            proc = subprocess.Popen(
                cmd, stdout=out, stderr=err, env=env, cwd=self.work, start_new_session=True
            )
            try:
                rc = proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                cut = True
                _killgroup(proc.pid, signal.SIGKILL)
                rc = proc.wait()
            wall = time.perf_counter() - t0
        _reap_group(proc.pid)
        lines = [ln for ln in out_path.read_text().splitlines() if ln.startswith("{")]
        data = json.loads(lines[-1]) if lines else None
        result = json.loads(self.result_file.read_text()) if self.result_file.exists() else None
        return Proc(wall, rc, cut, data, result, err_path)


def _killgroup(pgid: int, sig: int) -> bool:
    try:
        os.killpg(pgid, sig)
        return True
    except (ProcessLookupError, PermissionError):
        return False


def _reap_group(pgid: int) -> None:
    """Stop anything the child left running in its process group (e.g. a server it started)."""
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        if not _killgroup(pgid, 0):
            return
        time.sleep(0.1)
    log(f"process group {pgid} still alive 5 s after its leader exited; stopping it")
    _killgroup(pgid, signal.SIGTERM)
    time.sleep(1)
    _killgroup(pgid, signal.SIGKILL)


def make_side(name: str, python: str, base: Path) -> Side:
    work = base / name
    work.mkdir(parents=True)
    env = harness.clean_env("PREFECT_", "METAFLOW_", "BENCH_")
    env.update(
        BENCH_FAIL_MARKER=str(work / "fail-marker"),
        BENCH_STEP_LOG=str(work / "steps.log"),
        BENCH_RESULT_FILE=str(work / "result.json"),
    )
    if name == "plinth":
        env["PLINTH_HOME"] = str(work / "home")
    elif name == "prefect":
        # Default local setup: an ephemeral API server (SQLite) started by the flow's process.
        env.update(PREFECT_HOME=str(work / "prefect"), PREFECT_SERVER_ANALYTICS_ENABLED="false")
        env["DO_NOT_TRACK"] = "1"
    else:
        env.update(
            METAFLOW_DATASTORE_SYSROOT_LOCAL=str(work),
            METAFLOW_DEFAULT_DATASTORE="local",
            METAFLOW_DEFAULT_METADATA="local",
            METAFLOW_USER="bench",
        )
    return Side(name, python, work, env)


# --------------------------------------------------------------------------- measuring


def expected(row: str, n: int, seed: int) -> Any:
    if row == "linear":
        return seed + n
    if row == "fan":
        return sum(range(seed, seed + n))
    if row in ("handoff", "handoff_tiny"):
        import numpy as np

        return float(np.random.default_rng(seed).random(PROBE + 1)[PROBE])
    return seed + 5  # resume


class Bench:
    """Runs the rows on the chosen sides and collects raw numbers, warnings and checks."""

    def __init__(self, sides: dict[str, Side], sizes: dict[str, int]) -> None:
        self.sides = sides
        self.sizes = sizes
        self.seed = 0
        self.data: dict[tuple[str, str], dict[str, Any]] = {}  # (side, row) -> numbers
        self.warnings: list[str] = []
        self.failed: list[str] = []
        self.checks = 0
        self.loads: dict[str, str] = {}  # row -> 1-minute load average when it started

    def _seed(self) -> int:
        self.seed += 1000  # every measured run gets inputs no earlier run had (no dedup, no cache)
        return self.seed

    def _check(self, side: str, what: str, got: Any, want: Any) -> None:
        self.checks += 1
        if got != want:
            self.warnings.append(f"WARNING: {side} {what}: got {got!r}, expected {want!r}.")

    def _ok(self, side: str, what: str, p: Proc) -> bool:
        if p.rc == 0 and not p.cut and (side == "metaflow" or p.data is not None):
            return True
        tail = p.err_path.read_text()[-1500:] if p.err_path.exists() else ""
        log(f"{side} {what}: FAILED (exit {p.rc}{', cut' if p.cut else ''}); log {p.err_path}\n{tail}")
        self.failed.append(f"{side} {what}")
        return False

    def _record(self, side: str, row: str, key: str, value: Any) -> None:
        self.data.setdefault((side, row), {}).setdefault(key, []).append(value)

    # ---- one flow run in a fresh process

    def run_args(self, side: str, flow: str, n: int, seed: int, runs: int = 1) -> tuple[list[str], str]:
        if side == "metaflow":
            args = [
                "--no-pylint",
                "--quiet",
                "run",
                "--max-workers",
                str(METAFLOW_WORKERS),
                "--seed",
                str(seed),
            ]
            if flow == "fan":
                args += ["--max-num-splits", str(max(n, 100))]
            if flow not in ("linear", "resume"):
                args += ["--n", str(n)]
            return args, flow
        return [flow, "--n", str(n), "--seed", str(seed), "--runs", str(runs)], ""

    def cold(self, side: str, row: str, flow: str, n: int, timeout: float = PROCESS_CAP_S) -> Proc | None:
        seed = self._seed()
        args, mf = self.run_args(side, flow, n, seed)
        p = self.sides[side].spawn(args, timeout=timeout, flow=mf)
        if p.cut and row == "fan_big":  # the cap on Metaflow's 1,000-way run: reported, not a failure
            self._record(side, row, f"{flow}_cut", p.wall)
            return p
        if not self._ok(side, f"{row} cold", p):
            return None
        got = p.result if side == "metaflow" else p.data["results"][0]  # type: ignore[index]
        self._check(side, f"{row} result", got, expected(flow, n, seed))
        self._record(side, row, f"{flow}_cold", p.wall)
        if p.data:
            self._record(side, row, f"{flow}_cold_inproc", p.data["times"][0])
        return p

    def warm(self, side: str, row: str, flow: str, n: int, runs: int) -> None:
        seed = self._seed()
        args, _ = self.run_args(side, flow, n, seed, runs=1 + runs)
        p = self.sides[side].spawn(args)
        if not self._ok(side, f"{row} warm", p):
            return
        assert p.data is not None
        for k, got in enumerate(p.data["results"]):
            self._check(side, f"{row} warm result", got, expected(flow, n, seed + k))
        self.data.setdefault((side, row), {})[f"{flow}_first_inproc"] = p.data["times"][0]
        for t in p.data["times"][1:]:
            self._record(side, row, f"{flow}_warm", t)

    # ---- resume

    def resume_cold(self, side: str) -> None:
        s = self.sides[side]
        seed = self._seed()
        s.marker.touch()
        s.read_steps()
        if side == "metaflow":
            rid = s.work / "run-id"
            rid.unlink(missing_ok=True)
            args, mf = self.run_args(side, "resume", 0, seed)
            first = s.spawn([*args, "--run-id-file", str(rid)], flow=mf)
            failed_ok = first.rc != 0 and rid.exists()
        else:
            first = s.spawn(["resume", "--action", "fail", "--seed", str(seed)])
            failed_ok = first.rc == 0 and first.data is not None and first.data["results"] == ["FAILED"]
        s.marker.unlink()
        ran = s.read_steps()
        if not failed_ok:
            log(f"{side} resume: the first run did not fail as planned; log {first.err_path}")
            self.failed.append(f"{side} resume (first run)")
            return
        self._check(side, "failing run's steps", ran, ["s1", "s2", "s3", "s4"])
        self._record(side, "resume", "fail_run", first.wall)
        if side == "metaflow":
            origin = (s.work / "run-id").read_text().strip()
            args = ["--no-pylint", "--quiet", "resume", "--origin-run-id", origin]
            p = s.spawn([*args, "--max-workers", str(METAFLOW_WORKERS)], flow="resume")
        elif side == "prefect":  # no resume: run again; the cached tasks are skipped
            p = s.spawn(["resume", "--action", "resume", "--seed", str(seed)])
        else:
            assert first.data is not None
            p = s.spawn(["resume", "--action", "resume", "--run-id", first.data["run_id"]])
        if not self._ok(side, "resume cold", p):
            return
        got = p.result if side == "metaflow" else p.data["results"][0]  # type: ignore[index]
        self._check(side, "resume result", got, expected("resume", 0, seed))
        self._check(side, "steps re-run on resume", s.read_steps(), ["s4", "s5"])
        self._record(side, "resume", "resume_cold", p.wall)
        if p.data:
            self._record(side, "resume", "resume_cold_inproc", p.data["times"][0])

    def resume_warm(self, side: str, runs: int) -> None:
        seed = self._seed()
        p = self.sides[side].spawn(
            ["resume", "--action", "resume-loop", "--seed", str(seed), "--runs", str(1 + runs)]
        )
        if not self._ok(side, "resume warm", p):
            return
        assert p.data is not None
        for k, got in enumerate(p.data["results"]):
            self._check(side, "resume warm result", got, expected("resume", 0, seed + k))
        for names in p.data["executed"]:
            self._check(side, "steps re-run on warm resume", names, ["s4", "s5"])
        for t in p.data["times"][1:]:
            self._record(side, "resume", "resume_warm", t)

    # ---- rows

    def row(self, row: str) -> None:
        z = self.sizes
        names = [s for s in SIDES if s in self.sides]
        log(f"row {row}")
        self.loads[row] = harness.load_text()
        if row in ("linear", "fan_small", "fan_big"):
            flow = "linear" if row == "linear" else "fan"
            n = z[row]
            for rep in range(z["reps"]):
                for side in names:
                    if side == "metaflow" and row == "fan_big" and rep > 0:
                        continue  # minutes per run: once
                    if side == "metaflow" and row == "fan_small" and rep > 1:
                        continue
                    cap = METAFLOW_CAP_S if side == "metaflow" and row == "fan_big" else PROCESS_CAP_S
                    log(f"  {side} cold {flow} n={n} (rep {rep + 1})")
                    self.cold(side, row, flow, n, timeout=cap)
            for side in names:
                if side != "metaflow":
                    log(f"  {side} warm {flow} n={n}")
                    self.warm(side, row, flow, n, z["warm"] if row != "fan_big" else max(1, z["warm"] - 1))
        elif row == "handoff":
            for rep in range(z["reps"]):
                for side in names:
                    log(f"  {side} cold hand-off {z['mb']} MB / tiny (rep {rep + 1})")
                    big = self.cold(side, row, "handoff", z["mb"])
                    tiny = self.cold(side, row, "handoff_tiny", z["mb"])
                    if big and tiny and not big.cut and not tiny.cut:
                        self._record(side, row, "diff_cold", big.wall - tiny.wall)
            for side in names:
                if side != "metaflow":
                    log(f"  {side} warm hand-off")
                    self.warm(side, row, "handoff", z["mb"], z["warm"])
                    self.warm(side, row, "handoff_tiny", z["mb"], z["warm"])
        else:
            for rep in range(z["reps"]):
                for side in names:
                    log(f"  {side} cold fail + resume (rep {rep + 1})")
                    self.resume_cold(side)
            for side in names:
                if side != "metaflow":
                    log(f"  {side} warm fail + resume")
                    self.resume_warm(side, z["warm"])

    def extras(self) -> dict[str, Any]:
        """Numbers for the notes: Prefect's process-pool runner and persisted hand-off, and the floor."""
        out: dict[str, Any] = {}
        z = self.sizes
        if "prefect" in self.sides:
            s = self.sides["prefect"]
            n = z["fan_small"]
            log(f"  prefect fan n={n} with ProcessPoolTaskRunner (note)")
            seed = self._seed()
            p = s.spawn(["fan", "--n", str(n), "--seed", str(seed), "--runs", "2", "--runner", "process"])
            if self._ok("prefect", "fan (process runner)", p) and p.data:
                out["prefect_process_fan"] = (n, p.wall, p.data["times"])
            log("  prefect hand-off with persist_result=True (note)")
            times = {}
            for flow in ("handoff", "handoff_tiny"):
                seed = self._seed()
                args = [
                    flow,
                    "--n",
                    str(z["mb"]),
                    "--seed",
                    str(seed),
                    "--runs",
                    str(1 + z["warm"]),
                    "--persist",
                ]
                p = s.spawn(args)
                if self._ok("prefect", f"{flow} (persisted)", p) and p.data:
                    times[flow] = statistics.median(p.data["times"][1:])
            if len(times) == 2:
                out["prefect_persist_handoff"] = (times["handoff"], times["handoff_tiny"])
        out["floor"] = _pool_floor(z["fan_big"])
        work = next(iter(self.sides.values())).work
        out["handoff_floor"] = _handoff_floor(z["mb"], work / "floor.bin")
        return out


def _noop(i: int) -> int:
    return i


def _pool_floor(n: int) -> float:
    """A bare ProcessPoolExecutor (os.cpu_count() workers, start included) mapping n trivial calls."""
    from concurrent.futures import ProcessPoolExecutor

    t0 = time.perf_counter()
    with ProcessPoolExecutor() as pool:
        total = sum(pool.map(_noop, range(n)))
    assert total == sum(range(n))
    return time.perf_counter() - t0


def _handoff_floor(mb: int, path: Path) -> dict[str, float]:
    """The least a store-and-reload hand-off costs: pickle, sha256, write, read, sha256, unpickle."""
    import hashlib
    import pickle

    import numpy as np

    a = np.random.default_rng(0).random(mb * 125_000)
    parts: dict[str, float] = {}
    t = time.perf_counter()

    def lap(name: str) -> None:
        nonlocal t
        now = time.perf_counter()
        parts[name] = now - t
        t = now

    data = pickle.dumps(a, protocol=5)
    lap("pickle")
    hashlib.sha256(data).hexdigest()
    lap("sha256")
    path.write_bytes(data)
    lap("write")
    back = path.read_bytes()
    lap("read")
    hashlib.sha256(back).hexdigest()
    lap("sha256 again")
    pickle.loads(back)
    lap("unpickle")
    path.unlink()
    return parts


# --------------------------------------------------------------------------- table


def _med(d: dict[str, Any] | None, key: str) -> float | None:
    if not d or not d.get(key):
        return None
    return statistics.median(d[key])


def _fmt(s: float | None) -> str:
    if s is None:
        return "-"
    if abs(s) >= 10:
        return f"{s:,.1f} s"
    if abs(s) >= 1:
        return f"{s:.2f} s"
    return f"{s * 1e3:.0f} ms" if abs(s) >= 0.01 else f"{s * 1e3:.1f} ms"


def _pair(cold: float | None, warm: float | None) -> str:
    return f"{_fmt(cold)} / {_fmt(warm)}"


@dataclass
class Cell:
    cold: float | None
    warm: float | None = None
    text: str = ""


def cells(bench: Bench, row: str) -> dict[str, Cell]:
    out = {}
    for side in SIDES:
        d = bench.data.get((side, row))
        if row in ("linear", "fan_small", "fan_big"):
            flow = "linear" if row == "linear" else "fan"
            c = Cell(_med(d, f"{flow}_cold"), _med(d, f"{flow}_warm"))
            if c.cold is None and d and d.get("fan_cut"):
                c.text = f"> {d['fan_cut'][0]:.0f} s (cut)"
        elif row == "handoff":
            warm = None
            if _med(d, "handoff_warm") is not None and _med(d, "handoff_tiny_warm") is not None:
                warm = _med(d, "handoff_warm") - _med(d, "handoff_tiny_warm")  # type: ignore[operator]
            c = Cell(_med(d, "diff_cold"), warm)
        else:
            c = Cell(_med(d, "resume_cold"), _med(d, "resume_warm"))
        if not c.text:
            c.text = _fmt(c.cold) if side == "metaflow" else _pair(c.cold, c.warm)
        out[side] = c
    return out


LIMITS = {"fan_big": 3.0, "handoff": 1.0}


def judge(row: str, c: dict[str, Cell]) -> str:
    p = c["plinth"]
    if p.cold is None:
        return "-"
    why = []
    limit = LIMITS.get(row)
    if limit is not None:
        why += [
            f"{kind} {_fmt(v)}"
            for kind, v in (("cold", p.cold), ("warm", p.warm))
            if v is not None and v >= limit
        ]
    m, f = c["metaflow"], c["prefect"]
    if m.cold is not None and m.cold <= p.cold:
        why.append("Metaflow faster")
    if f.cold is not None and f.cold <= p.cold:
        why.append("Prefect cold faster")
    if f.warm is not None and p.warm is not None and f.warm <= p.warm:
        why.append("Prefect warm faster" + (" (in memory, not stored)" if row == "handoff" else ""))
    return "yes" if not why else "NO (" + "; ".join(why) + ")"


HEADER = ["row", "Metaflow (cold)", "Prefect (cold / warm)", "plinth (cold / warm)", "target", "met?"]


def labels(z: dict[str, int]) -> dict[str, tuple[str, str]]:
    return {
        "linear": (f"1. linear flow, {z['linear']} trivial steps", "faster than both"),
        "fan_small": (f"2. fan-out {z['fan_small']:,} trivial steps + join", "faster than both"),
        "fan_big": (f"3. fan-out {z['fan_big']:,} trivial steps + join", "< 3 s; faster than both"),
        "handoff": (f"4. {z['mb']} MB array hand-off between 2 steps", "< 1 s; faster than both"),
        "resume": ("5. resume after step 4 of 5 failed", "faster than both"),
    }


def table(bench: Bench, rows: list[str]) -> tuple[list[list[str]], int, int]:
    body = []
    met_n = checked = 0
    names = labels(bench.sizes)
    for row in rows:
        c = cells(bench, row)
        met = judge(row, c)
        if met != "-":
            checked += 1
            met_n += met == "yes"
        label, target = names[row]
        body.append([label, c["metaflow"].text, c["prefect"].text, c["plinth"].text, target, met])
    return body, met_n, checked


def _all(d: dict[str, Any] | None, key: str) -> str:
    if not d or not d.get(key):
        return "-"
    return ", ".join(f"{v:.2f}" for v in d[key])


def _raw_notes(bench: Bench, rows: list[str]) -> list[str]:
    """Every side's raw times per row (s)."""
    out = []
    for row in rows:
        flow = {"linear": "linear", "resume": "resume", "handoff": "handoff"}.get(row, "fan")
        parts = []
        for side in SIDES:
            d = bench.data.get((side, row))
            if not d:
                continue
            txt = f"{side} cold {_all(d, f'{flow}_cold')}"
            if row == "handoff":
                txt += f" vs {_all(d, 'handoff_tiny_cold')}"
            elif d.get(f"{flow}_cold_inproc"):
                txt += f" (of which the run itself {_all(d, f'{flow}_cold_inproc')})"
            if d.get(f"{flow}_warm"):
                txt += f", warm {_all(d, f'{flow}_warm')}"
                txt += f" vs {_all(d, 'handoff_tiny_warm')}" if row == "handoff" else ""
            if row == "resume" and d.get("fail_run"):
                txt += f"; failing first runs {_all(d, 'fail_run')}"
            parts.append(txt)
        what = ", 2-step flow big vs tiny" if row == "handoff" else ""
        out.append(f"Row {list(ROWS.values()).index(row) + 1} raw{what} (s): " + "; ".join(parts) + ".")
    return out


def _fan_big_note(bench: Bench) -> list[str]:
    z = bench.sizes
    mf = bench.data.get(("metaflow", "fan_big"))
    if mf and mf.get("fan_cut"):
        small = bench.data.get(("metaflow", "fan_small"))
        est = ""
        if small and small.get("fan_cold"):
            per = statistics.median(small["fan_cold"]) / (z["fan_small"] + 3)
            est = (
                f" Extrapolated from the {z['fan_small']}-way run ({per * 1e3:.0f} ms per task): "
                f"~{per * (z['fan_big'] + 3):.0f} s (an estimate, not a measurement)."
            )
        return [f"Metaflow's {z['fan_big']:,}-way fan-out was cut at {METAFLOW_CAP_S} s.{est}"]
    if mf and mf.get("fan_cold"):
        return [
            f"Metaflow's {z['fan_big']:,}-way fan-out finished within its {METAFLOW_CAP_S} s cap "
            f"(run once: {_fmt(mf['fan_cold'][0])}, --max-num-splits {z['fan_big']})."
        ]
    return []


def _extras_notes(extras: dict[str, Any], z: dict[str, int], rows: list[str]) -> list[str]:
    out = []
    pp = extras.get("prefect_persist_handoff")
    if pp and "handoff" in rows:
        out.append(
            f"Prefect hand-off with persist_result=True, warm: {_fmt(pp[0])} vs {_fmt(pp[1])} tiny, "
            f"hand-off {_fmt(pp[0] - pp[1])}."
        )
    pf = extras.get("prefect_process_fan")
    if pf:
        n, wall, times = pf
        out.append(
            f"Prefect with ProcessPoolTaskRunner(max_workers={os.cpu_count()}) on the {n}-way fan-out: "
            f"first run {_fmt(times[0])}, second {_fmt(times[1])} in one process ({_fmt(wall)} for the "
            "process)."
        )
    hf = extras.get("handoff_floor")
    if hf and "handoff" in rows:
        out.append(
            f"Hand-off floor, one process, {z['mb']} MB array: {_fmt(sum(hf.values()))} ("
            + ", ".join(f"{k} {_fmt(v)}" for k, v in hf.items())
            + ")."
        )
    if extras.get("floor") is not None:
        out.append(
            f"Floor: a bare ProcessPoolExecutor ({os.cpu_count()} workers) maps {z['fan_big']:,} trivial "
            f"calls in {_fmt(extras['floor'])}."
        )
    return out


def notes(bench: Bench, rows: list[str], extras: dict[str, Any], info: dict[str, str]) -> list[str]:
    """The measured numbers behind the table, and the result checks."""
    z = bench.sizes
    out = [
        f"Cold: median of {z['reps']} (Metaflow: 2 on the {z['fan_small']}-way fan-out, 1 on the "
        f"{z['fan_big']:,}-way); warm: median of runs 2..{1 + z['warm']} (1 on the {z['fan_big']:,}-way).",
        *_raw_notes(bench, rows),
        *_fan_big_note(bench),
        *_extras_notes(extras, z, rows),
    ]
    per_row = ", ".join(f"row {list(ROWS.values()).index(r) + 1} {v}" for r, v in bench.loads.items())
    out.append(f"1-minute load average at start / end: {info['load']}; at the start of each row: {per_row}.")
    out += bench.warnings
    if not bench.warnings:
        out.append(
            f"All {bench.checks} result checks passed (flow results, and the steps each resume re-ran)."
        )
    return out


# --------------------------------------------------------------------------- main


def source_state() -> tuple[str, str]:
    """(git commit of the checkout, plus a note of uncommitted src changes; digest of src/**/*.py)."""
    root = HERE.parent
    digest = hashlib.sha256()
    for path in sorted((root / "src").rglob("*.py")):
        digest.update(path.relative_to(root).as_posix().encode() + b"\0" + path.read_bytes())

    def git(*args: str) -> str:
        proc = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, check=False)
        return proc.stdout.strip() if proc.returncode == 0 else ""

    commit = git("rev-parse", "--short", "HEAD") or "?"
    if git("status", "--porcelain", "--", "src"):
        commit += " + uncommitted src changes"
    return commit, digest.hexdigest()[:12]


def _parse() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    harness.add_common_options(
        ap,
        "smaller sizes, 1 repetition (smoke run)",
        "a full run of all sides and rows",
        "keep the temp folder under benchmarks/.work",
    )
    ap.add_argument("--only", help="comma-separated sides: metaflow, prefect, plinth (default all)")
    ap.add_argument("--rows", help="comma-separated row numbers 1-5 (default all)")
    return ap.parse_args()


def main() -> int:
    args = _parse()
    sides = harness.parse_list(args.only, list(SIDES), "side")
    row_nums = harness.parse_list(args.rows, [str(k) for k in ROWS], "row")
    rows = [ROWS[int(k)] for k in row_nums]
    sizes = dict(QUICK if args.quick else FULL)

    info = harness.machine()
    load_start = harness.load_text()
    commit, src_before = source_state()
    pythons = {"plinth": sys.executable}
    for side in sides:
        if side != "plinth":
            pythons[side] = harness.ensure_venv(*VENVS[side])
    for side in SIDES:
        version, py = harness.dist_version(pythons[side], side) if side in pythons else ("-", "-")
        info[side], info[f"{side}_python"] = version, py

    with harness.work_folder("flows", args.keep) as base:
        bench = Bench({s: make_side(s, pythons[s], base) for s in sides}, sizes)
        for side in sides:  # untimed: creates the store, warms the disk cache
            log(f"{side}: warm-up run")
            args_, mf = bench.run_args(side, "linear", 2, 1)
            if not bench._ok(side, "warm-up", bench.sides[side].spawn(args_, flow=mf)):
                bench.sides.pop(side)
        for row in rows:
            bench.row(row)
        extras = bench.extras()
    info["load"] = f"{load_start} / {harness.load_text()}"
    src_after = source_state()[1]
    info["source"] = f"{commit}, src digest {src_before}"
    if src_after != src_before:
        bench.warnings.append(
            f"WARNING: plinth's source (src/**/*.py) changed during the run (digest {src_before} -> "
            f"{src_after}); the plinth numbers mix versions. Run again."
        )

    body, met_n, checked = table(bench, rows)
    note_lines = notes(bench, rows, extras, info)
    title = (
        f"flows: plinth {info['plinth']} vs Metaflow {info['metaflow']} vs Prefect {info['prefect']}"
        f"{' [quick]' if args.quick else ''}"
    )
    harness.print_table(body, title, HEADER, 160)
    print(f"plinth source: {info['source']}")
    harness.report(info, note_lines, met_n, checked)
    versions = (
        f"Python {info['python']} (plinth), {info['metaflow_python']} (Metaflow), "
        f"{info['prefect_python']} (Prefect); Metaflow {info['metaflow']}, Prefect {info['prefect']}, "
        f"plinth {info['plinth']} ({info['source']})"
    )

    write = args.write
    if write is None:
        full = len(sides) == len(SIDES) and len(rows) == len(ROWS)
        write = not args.quick and full and not bench.failed and src_after == src_before
    return harness.finish(
        write,
        lambda: harness.section(
            SECTION, "bench_flows.py", args.quick, info, versions, HEADER, body, note_lines
        ),
        SECTION,
        bench.failed,
    )


if __name__ == "__main__":
    sys.exit(main())
