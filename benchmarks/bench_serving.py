"""Model serving benchmark: plinth vs MLflow and BentoML, same machine, same model, same load.

    python benchmarks/bench_serving.py [--quick] [--only mlflow,bentoml,bentoml-batching,plinth,floor,batch]
                                 [--batch-rows N] [--write|--no-write] [--keep]

One scikit-learn LogisticRegression(max_iter=5000) on sklearn's bundled breast_cancer data (30
float64 columns) is trained once under this interpreter (`_serving_plinth.py --prepare`) and
pickled; every server loads that estimator. Servers, each started in its own process group on
127.0.0.1 and killed (the whole group) when its runs end, also on errors:

- MLflow 3.17.2 (benchmarks/.venv-mlflow, made on first use): the estimator logged with
  `mlflow.sklearn.log_model` (`_serving_mlflow.py`), served by `mlflow models serve
  --env-manager local` (its default: 1 worker), POST /invocations {"dataframe_records": [...]}.
- BentoML 1.4.39 (benchmarks/.venv-bentoml, made on first use): `_serving_bentoml.py`, one
  `@bentoml.api` taking {"records": [...]}, default configuration; then the same service with
  adaptive batching on (`batchable=True`).
- plinth (this interpreter): `plinth.register_model` + alias champion, `plinth serve
  bc@champion --workers 2` (signature validation and prediction logging always on), POST
  /v1/models/bc/predict {"instances": [...]}.
- floor: a bare Starlette app on uvicorn (uvloop + httptools, 2 workers) that parses the body
  and answers without a model (`_serving_floor.py`): the HTTP ceiling, for the notes.

Load: `wrk -t2 -c32 -d20s --latency -s _serving_post.lua` with a 1-row and a 32-row body, each
after a warm-up run; wrk shares the machine's cores with the server, as in the issue. Each
server's answer to both bodies is checked against the estimator's own labels first. The
machine may be shared: the benchmark waits for it to be quiet before each server, measures
(from /proc) the CPU the server, wrk and everything else used during each run, and runs a
run again (up to 3 attempts, least disturbed one kept) when other work took over 15% of it.
Batch: N rows (10,000,000) of Parquet scored by `plinth.serving.batch.batch_predict` vs the raw
`model.predict` loop over the same chunks (`_serving_batch.py`).

The table is printed and, for a full run of everything, written to benchmarks/RESULTS.md under
"## serving" (other sections kept; how each row is measured is described there).
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import json
import os
import re
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import harness
from harness import HERE, Result, log

SECTION = "serving"
LUA = HERE / "_serving_post.lua"
BENTOML_VENV = HERE / ".venv-bentoml"
BENTOML_PIN = "bentoml==1.4.39"  # the newest that installs here

# --------------------------------------------------------------------------- workload (shared)

MODEL_NAME = "bc"
ALIAS = "champion"
MODEL_FILE = "model.pkl"
META_FILE = "meta.json"
REQUEST_ROWS = 32
SEED = 0
BATCH_SIZE = 100_000  # plinth's default chunk; the raw loop uses the same
# The key each server's JSON body puts the records under.
BODY_FORMATS = {"plinth": "instances", "mlflow": "dataframe_records", "bentoml": "records"}

WRK_THREADS = 2
WRK_CONNECTIONS = 32
FULL = {"duration_s": 20, "warmup_s": 5, "batch_rows": 10_000_000, "max_wait_quiet_s": 120, "attempts": 3}
QUICK = {"duration_s": 5, "warmup_s": 2, "batch_rows": 1_000_000, "max_wait_quiet_s": 10, "attempts": 1}

SERVERS = ["mlflow", "bentoml", "bentoml-batching", "plinth", "floor"]
PARTS = [*SERVERS, "batch"]
READY_TIMEOUT_S = 180
STOP_TIMEOUT_S = 30


def body_file(data_dir: str | Path, side: str, rows: int) -> str:
    """Where the `rows`-row request body in `side`'s JSON format lives."""
    return os.path.join(data_dir, f"body_{side}_{rows}.json")


# --------------------------------------------------------------------------- processes


def run_json(name: str, cmd: list[str], env: dict[str, str], timeout: float = 1800) -> Result | None:
    """Run a helper to completion; its last JSON line, or None (and its output logged) on failure."""
    log(f"{name}: {' '.join(cmd)}")
    try:
        proc = subprocess.run(
            cmd, stdout=subprocess.PIPE, text=True, env=env, cwd=HERE, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired:
        log(f"{name}: timed out after {timeout:.0f} s")
        return None
    res = harness.last_json(proc.stdout) if proc.returncode == 0 else None
    if res is None:
        log(f"{name}: FAILED (exit {proc.returncode})")
        if proc.stdout.strip():
            print(proc.stdout[-5000:], file=sys.stderr)
    return res


def _proc_table() -> dict[int, tuple[int, str, int]]:
    """pid -> (parent pid, state, CPU ticks: user + system, reaped children included), from /proc."""
    table = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat") as fh:
                text = fh.read()
        except OSError:
            continue
        fields = text[text.rindex(")") + 2 :].split()  # fields[0] is field 3 (state) of proc(5)
        table[int(entry.name)] = (int(fields[1]), fields[0], sum(int(v) for v in fields[11:15]))
    return table


def _tree(root: int, table: dict[int, tuple[int, str, int]]) -> set[int]:
    """`root` and all its descendants alive in `table` (whatever their process group or session)."""
    children: dict[int, list[int]] = {}
    for pid, (ppid, _state, _ticks) in table.items():
        children.setdefault(ppid, []).append(pid)
    found, todo = set(), [root]
    while todo:
        pid = todo.pop()
        if pid in table and pid not in found:
            found.add(pid)
            todo.extend(children.get(pid, []))
    return found


def _signal_all(pids: set[int], sig: int) -> None:
    for pid in pids:
        try:
            os.kill(pid, sig)
        except (ProcessLookupError, PermissionError):
            pass


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


RUNNING: dict[int, Server] = {}


@dataclass
class Server:
    """One server process group: started, polled until ready, stopped (whole group)."""

    name: str
    cmd: list[str]
    env: dict[str, str]
    cwd: Path
    port: int
    ready_path: str
    predict_path: str
    body_side: str
    log_path: Path
    proc: subprocess.Popen[bytes] | None = None
    started: float = 0.0
    startup_s: float | None = None
    known: set[int] = field(default_factory=set)  # every process of this server seen so far

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def start(self) -> None:
        log(f"{self.name}: starting on port {self.port}: {' '.join(self.cmd)}")
        with open(self.log_path, "wb") as out:
            self.proc = subprocess.Popen(
                self.cmd,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=self.env,
                cwd=self.cwd,
                start_new_session=True,  # its own process group: stop() kills workers too
            )
        RUNNING[self.proc.pid] = self
        self.started = time.perf_counter()

    def wait_ready(self, timeout: float = READY_TIMEOUT_S) -> bool:
        assert self.proc is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                log(f"{self.name}: exited with {self.proc.returncode} before it was ready")
                return False
            try:
                with urllib.request.urlopen(self.url(self.ready_path), timeout=2) as resp:
                    if resp.status == 200:
                        self.startup_s = time.perf_counter() - self.started
                        log(f"{self.name}: ready after {self.startup_s:.1f} s")
                        return True
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.25)
        log(f"{self.name}: not ready after {timeout:.0f} s")
        return False

    def pids(self) -> set[int]:
        """The leader and every descendant alive now (BentoML's workers start their own sessions)."""
        if self.proc is None:
            return set()
        table = _proc_table()
        found = _tree(self.proc.pid, table)
        self.known |= found
        return {p for p in found if table[p][1] != "Z"}

    def _alive(self) -> set[int]:
        table = _proc_table()
        self.pids()
        return {p for p in self.known if p in table and table[p][1] != "Z"}

    def stop(self) -> None:
        """SIGTERM the process group and every descendant; SIGKILL whatever is left after a while."""
        if self.proc is None:
            return
        pgid = self.proc.pid  # start_new_session: the group id is the leader's pid
        self.pids()
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, signal.SIGTERM)
        _signal_all(self.known - {pgid}, signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT_S
        while time.monotonic() < deadline:
            self.proc.poll()
            if not self._alive():
                break
            time.sleep(0.1)
        else:
            left = self._alive()
            log(f"{self.name}: {sorted(left)} still running {STOP_TIMEOUT_S} s after SIGTERM; SIGKILL")
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pgid, signal.SIGKILL)
            _signal_all(left, signal.SIGKILL)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            log(f"{self.name}: leader {pgid} did not exit")
        RUNNING.pop(pgid, None)
        self.proc = None

    def log_tail(self, n: int = 3000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-n:]
        except OSError:
            return ""


def _stop_all() -> None:
    for server in list(RUNNING.values()):
        server.stop()


def _on_signal(signum: int, _frame: Any) -> None:
    raise SystemExit(128 + signum)  # unwinds through the finally blocks that stop the servers


# --------------------------------------------------------------------------- load


def wrk(
    server: Server, rows: int, seconds: int, data_dir: Path, headers: tuple[str, ...] = ()
) -> Result | None:
    """One wrk run against `server` with its `rows`-row body; counts, rates and percentiles.

    `headers` ("Name: value") go with every request, e.g. a bearer token.
    """
    body = body_file(data_dir, server.body_side, rows)
    cmd = [
        "wrk",
        f"-t{WRK_THREADS}",
        f"-c{WRK_CONNECTIONS}",
        f"-d{seconds}s",
        "--latency",
        *(arg for header in headers for arg in ("-H", header)),
        "-s",
        str(LUA),
        server.url(server.predict_path),
    ]
    env = dict(os.environ, WRK_BODY=body)
    meter = CpuMeter(server)
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=seconds + 60, check=False)
    except subprocess.TimeoutExpired:
        log(f"{server.name}: wrk timed out")
        return None
    cpu = meter.stop()
    line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("WRKJSON ")), None)
    if proc.returncode != 0 or line is None:
        log(f"{server.name}: wrk failed (exit {proc.returncode})\n{proc.stdout[-2000:]}{proc.stderr[-2000:]}")
        return None
    res: Result = json.loads(line[len("WRKJSON ") :])
    secs = res["duration_us"] / 1e6
    ok = res["requests"] - res["non2xx"]
    res["rows"] = rows
    res["req_s"] = ok / secs  # answered with 2xx, per second
    res["rows_s"] = ok * rows / secs
    res["socket_errors"] = res["connect"] + res["read"] + res["write"] + res["timeout"]
    m = re.search(r"Requests/sec:\s+([\d.]+)", proc.stdout)
    res["wrk_requests_per_s"] = float(m.group(1)) if m else None
    res["cpu"] = cpu
    res["text"] = proc.stdout
    return res


def _post(url: str, body: bytes) -> Any:
    req = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as resp:
        return json.loads(resp.read())


def check(server: Server, data_dir: Path, expected: list[int]) -> tuple[bool, str]:
    """POST the 1-row and 32-row bodies once; do the labels equal the raw estimator's?"""
    details = []
    ok = True
    for rows in (1, REQUEST_ROWS):
        body = Path(body_file(data_dir, server.body_side, rows)).read_bytes()
        try:
            doc = _post(server.url(server.predict_path), body)
        except (urllib.error.URLError, OSError, ValueError) as exc:
            return False, f"{rows}-row request failed: {exc}"
        preds = doc.get("predictions") if isinstance(doc, dict) else doc
        got = [int(p) for p in preds] if isinstance(preds, list) else preds
        same = got == expected[:rows]
        ok &= same
        details.append(f"{rows} row{'s' if rows > 1 else ''} {'ok' if same else f'got {got}'}")
    return ok, ", ".join(details)


# /metrics series (summed over labels and workers) that tell how requests were batched.
BATCH_METRICS = {
    "plinth": {
        "dropped_logs": "plinth_prediction_logs_dropped_total",
        "predict_calls": "plinth_batch_rows_count",
        "rows_predicted": "plinth_batch_rows_sum",
    },
    "bentoml-batching": {
        "predict_calls": r"\w*adaptive_batch_size_count",
        "rows_predicted": r"\w*adaptive_batch_size_sum",
    },
}


def scrape_metrics(server: Server) -> Result:
    """The server's BATCH_METRICS totals from its /metrics; {} where it has none."""
    names = BATCH_METRICS.get(server.name)
    if not names:
        return {}
    try:
        with urllib.request.urlopen(server.url("/metrics"), timeout=10) as resp:
            text = resp.read().decode()
    except (urllib.error.URLError, OSError):
        return {}

    def total(name: str) -> float:
        pattern = rf"^{name}(?:{{[^}}]*}})? ([0-9.e+-]+)$"
        return sum(float(m.group(1)) for m in re.finditer(pattern, text, re.M))

    return {key: total(name) for key, name in names.items()}


def _delta(after: Result, before: Result) -> Result:
    out = {k: after[k] - before.get(k, 0.0) for k in after}
    if out.get("predict_calls"):
        out["mean_rows_per_predict"] = out["rows_predicted"] / out["predict_calls"]
    return out


# --------------------------------------------------------------------------- CPU accounting
# The machine may be shared: how much CPU went to the server, to wrk and to everything else is
# measured around every run (from /proc, in USER_HZ ticks), and the benchmark waits for a quiet
# machine before each server starts.

QUIET_BUSY = 0.25  # machine busy share (all cores) under which it counts as quiet
NOISY_OTHER = 0.15  # a measured run where other work took more of the machine is run again


def _machine_ticks() -> tuple[int, int]:
    """(busy, total) CPU ticks of the whole machine since boot, all cores."""
    with open("/proc/stat") as fh:
        vals = [int(v) for v in fh.readline().split()[1:9]]
    return sum(vals) - vals[3] - vals[4], sum(vals)  # idle and iowait are not busy


def _children_ticks() -> float:
    import resource

    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (ru.ru_utime + ru.ru_stime) * os.sysconf("SC_CLK_TCK")


class CpuMeter:
    """Shares of the machine's CPU (all cores = 1.0) used by the server's processes, wrk, the rest."""

    def __init__(self, server: Server | None) -> None:
        self.server = server
        self.m0 = _machine_ticks()
        self.s0 = self._server_ticks()
        self.c0 = _children_ticks()

    def _server_ticks(self) -> dict[int, int]:
        if self.server is None:
            return {}
        table = _proc_table()
        return {p: table[p][2] for p in self.server.pids() if p in table}

    def stop(self) -> Result:
        m1 = _machine_ticks()
        s1 = self._server_ticks()
        busy, total = m1[0] - self.m0[0], m1[1] - self.m0[1]
        if total <= 0:
            return {}
        server = sum(t - self.s0.get(p, 0) for p, t in s1.items())
        load = _children_ticks() - self.c0  # wrk (or the batch process): the only child reaped meanwhile
        return {
            "busy": busy / total,
            "server": server / total,
            "wrk": load / total,
            "other": max(0.0, busy - server - load) / total,
        }


def background_cpu(seconds: float = 1.0) -> float | None:
    """Share of the machine busy over `seconds` (nothing of ours running then): other work."""
    try:
        meter = CpuMeter(None)
        time.sleep(seconds)
        return meter.stop().get("busy")
    except (OSError, ValueError, IndexError):
        return None


def wait_quiet(max_wait_s: float) -> tuple[float | None, float]:
    """Wait (at most `max_wait_s`) until the machine is quiet; (busy share last seen, seconds waited)."""
    t0 = time.monotonic()
    busy = background_cpu()
    while busy is not None and busy > QUIET_BUSY and time.monotonic() - t0 < max_wait_s:
        if time.monotonic() - t0 < 1.5:
            log(f"machine {busy:.0%} busy with other work; waiting up to {max_wait_s:.0f} s for it to settle")
        time.sleep(2)
        busy = background_cpu()
    return busy, time.monotonic() - t0


def _count_logs(home: Path) -> int | None:
    db = home / "plinth.db"
    if not db.exists():
        return None
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return int(con.execute("SELECT count(*) FROM prediction_logs").fetchone()[0])
    except sqlite3.Error:
        return None
    finally:
        con.close()


def bench_server(server: Server, data_dir: Path, expected: list[int], sizes: dict[str, int]) -> Result:
    """Start, check, warm up and load `server` with the 1-row and 32-row bodies; always stop it."""
    out: Result = {"name": server.name, "runs": {}, "warmups": {}, "attempts": {}}
    out["background_cpu"], out["waited_s"] = wait_quiet(sizes["max_wait_quiet_s"])
    try:
        server.start()
        if not server.wait_ready():
            out["error"] = "did not become ready"
            log(f"{server.name} log:\n{server.log_tail()}")
            return out
        out["startup_s"] = server.startup_s
        if server.name != "floor":  # no model there: nothing to check
            out["check_ok"], out["check"] = check(server, data_dir, expected)
            log(f"{server.name}: check {'ok' if out['check_ok'] else 'FAILED'} ({out['check']})")
        for rows in (1, REQUEST_ROWS):
            log(f"{server.name}: {rows}-row body, warm-up {sizes['warmup_s']} s")
            out["warmups"][rows] = _slim(wrk(server, rows, sizes["warmup_s"], data_dir))
            attempts = out["attempts"].setdefault(rows, [])
            for attempt in range(1, sizes["attempts"] + 1):
                log(f"{server.name}: {rows}-row body, {sizes['duration_s']} s (attempt {attempt})")
                before = scrape_metrics(server)
                res = wrk(server, rows, sizes["duration_s"], data_dir)
                if res is None:
                    break
                if before:
                    res["batching"] = _delta(scrape_metrics(server), before)
                res["attempt"] = attempt
                attempts.append(res)
                log(
                    f"{server.name}: {rows} rows: {res['req_s']:,.0f} req/s, {res['rows_s']:,.0f} rows/s, "
                    f"p50 {res['p50_us'] / 1e3:.1f} ms, p99 {res['p99_us'] / 1e3:.1f} ms, "
                    f"non-2xx {res['non2xx']}, socket errors {res['socket_errors']}; CPU {_cpu(res)}"
                )
                time.sleep(1)
                other = res["cpu"].get("other", 0.0)
                if other <= NOISY_OTHER:
                    break
                if attempt < sizes["attempts"]:
                    log(f"{server.name}: other work took {other:.0%} of the machine; running again")
            if not attempts:
                out["error"] = f"wrk failed on the {rows}-row body"
                continue
            # The attempt least disturbed by other work on the machine.
            out["runs"][rows] = min(attempts, key=lambda r: r["cpu"].get("other", 0.0))
        out["metrics"] = scrape_metrics(server)
    except Exception as exc:  # report it; the server is stopped below either way
        out["error"] = f"{type(exc).__name__}: {exc}"
        log(f"{server.name}: {out['error']}")
    finally:
        server.stop()
        log(f"{server.name}: stopped")
    return out


def _cpu(run: Result) -> str:
    c = run.get("cpu") or {}
    if not c:
        return "?"
    return f"server {c['server']:.0%}, wrk {c['wrk']:.0%}, other {c['other']:.0%}"


def _slim(res: Result | None) -> Result | None:
    return None if res is None else {k: v for k, v in res.items() if k != "text"}


# --------------------------------------------------------------------------- environments


def ensure_bentoml_venv() -> str:
    """The BentoML venv's python, with BentoML and this interpreter's scikit-learn installed."""
    spec = harness.sklearn_spec()
    probe = f"import bentoml, sklearn; assert bentoml.__version__ == {BENTOML_PIN.split('==')[1]!r}"
    if "==" in spec:
        probe += f"; assert sklearn.__version__ == {spec.split('==')[1]!r}"
    return harness.ensure_venv(BENTOML_VENV, [BENTOML_PIN, spec], probe)


# --------------------------------------------------------------------------- servers


@dataclass
class Ctx:
    base: Path
    data: Path
    home: Path
    pythons: dict[str, str] = field(default_factory=dict)
    mlflow: Result | None = None
    plinth: Result | None = None


def make_server(name: str, ctx: Ctx) -> Server | None:
    """The server `name`, with its side prepared (model logged/registered); None if that failed."""
    port = _free_port()
    logs = ctx.base / "logs"
    logs.mkdir(exist_ok=True)
    log_path = logs / f"{name}.log"
    env = harness.clean_env()
    if name == "mlflow":
        if ctx.mlflow is None:
            return None
        env.update(ctx.mlflow["env"])
        env["PATH"] = f"{Path(ctx.pythons['mlflow']).parent}{os.pathsep}{env.get('PATH', '')}"  # its uvicorn
        mlflow_bin = str(Path(ctx.pythons["mlflow"]).parent / "mlflow")
        cmd = [mlflow_bin, "models", "serve", "-m", ctx.mlflow["model_uri"], "--env-manager", "local"]
        cmd += ["-h", "127.0.0.1", "-p", str(port)]
        return Server(
            name, cmd, env, Path(ctx.mlflow["cwd"]), port, "/ping", "/invocations", "mlflow", log_path
        )
    if name.startswith("bentoml"):
        home = ctx.base / "bentoml-home"
        home.mkdir(exist_ok=True)
        env.update(
            BC_MODEL_PKL=str(ctx.data / MODEL_FILE),
            BC_BATCHING="1" if name == "bentoml-batching" else "0",
            BENTOML_HOME=str(home),
            BENTOML_DO_NOT_TRACK="true",
            PATH=f"{Path(ctx.pythons['bentoml']).parent}{os.pathsep}{env.get('PATH', '')}",
        )
        bentoml_bin = str(Path(ctx.pythons["bentoml"]).parent / "bentoml")
        cmd = [bentoml_bin, "serve", "_serving_bentoml:BC", "--host", "127.0.0.1", "--port", str(port)]
        cmd += ["--working-dir", str(HERE)]
        return Server(name, cmd, env, HERE, port, "/readyz", "/predict", "bentoml", log_path)
    if name == "plinth":
        if ctx.plinth is None:
            return None
        prom = ctx.base / "prometheus"
        prom.mkdir(exist_ok=True)
        env.update(PLINTH_HOME=str(ctx.home), PROMETHEUS_MULTIPROC_DIR=str(prom))
        plinth_bin = str(Path(sys.executable).parent / "plinth")
        cmd = [plinth_bin, "serve", f"{MODEL_NAME}@{ALIAS}", "--port", str(port), "--workers", "2"]
        return Server(
            name, cmd, env, ctx.base, port, "/readyz", f"/v1/models/{MODEL_NAME}/predict", "plinth", log_path
        )
    if name == "floor":
        cmd = [sys.executable, "-m", "uvicorn", "_serving_floor:app", "--host", "127.0.0.1"]
        cmd += ["--port", str(port), "--workers", "2", "--loop", "uvloop", "--http", "httptools"]
        cmd += ["--log-level", "warning"]
        return Server(
            name, cmd, env, HERE, port, "/readyz", f"/v1/models/{MODEL_NAME}/predict", "plinth", log_path
        )
    raise ValueError(name)


def prepare_side(name: str, ctx: Ctx) -> None:
    """Log / register the model for `name` (once per side), installing its venv first if needed."""
    if name == "mlflow" and "mlflow" not in ctx.pythons:
        ctx.pythons["mlflow"] = harness.ensure_mlflow_venv()
        harness.ensure_sklearn(ctx.pythons["mlflow"])
        cmd = [ctx.pythons["mlflow"], str(HERE / "_serving_mlflow.py")]
        cmd += ["--workdir", str(ctx.base / "mlflow"), "--data", str(ctx.data)]
        ctx.mlflow = run_json("mlflow", cmd, harness.clean_env())
    elif name.startswith("bentoml") and "bentoml" not in ctx.pythons:
        ctx.pythons["bentoml"] = ensure_bentoml_venv()
    elif name in ("plinth", "batch") and ctx.plinth is None:
        env = dict(harness.clean_env(), PLINTH_HOME=str(ctx.home))
        cmd = [sys.executable, str(HERE / "_serving_plinth.py"), "--register", "--data", str(ctx.data)]
        ctx.plinth = run_json("plinth register", cmd, env)


def run_batch(ctx: Ctx, rows: int) -> Result | None:
    env = dict(harness.clean_env(), PLINTH_HOME=str(ctx.home))
    cmd = [sys.executable, str(HERE / "_serving_batch.py"), "--data", str(ctx.data)]
    cmd += ["--work", str(ctx.base / "batch"), "--rows", str(rows), "--batch-size", str(BATCH_SIZE)]
    try:
        return run_json("batch", cmd, env, timeout=3600)
    finally:
        shutil.rmtree(ctx.base / "batch", ignore_errors=True)  # GBs of Parquet: never kept


# --------------------------------------------------------------------------- table


HEADER = ["row", "MLflow", "BentoML", "BentoML batching", "plinth", "target", "met?"]
COLS = ["mlflow", "bentoml", "bentoml-batching", "plinth"]


def _run(res: dict[str, Result], name: str, rows: int) -> Result | None:
    return (res.get(name) or {}).get("runs", {}).get(rows)


def _rate(v: float | None, unit: str = "/s") -> str:
    return "-" if v is None else f"{v:,.0f}{unit}"


def _ms(us: float) -> str:
    ms = us / 1e3
    return f"{ms:,.0f} ms" if ms >= 100 else f"{ms:.2f} ms"


def _lat(r: Result | None) -> str:
    return "-" if r is None else f"{_ms(r['p50_us'])} / {_ms(r['p99_us'])}"


def _errs(r: Result | None) -> str:
    return "-" if r is None else f"{r['non2xx']:,} / {r['socket_errors']:,}"


def _met(ok: bool | None) -> str:
    return "-" if ok is None else "yes" if ok else "NO"


def _clean(r: Result | None) -> bool:
    return r is not None and r["non2xx"] == 0 and r["socket_errors"] == 0


def table(
    res: dict[str, Result], batch: Result | None, sizes: dict[str, int]
) -> tuple[list[list[str]], int, int]:
    """The table body and (targets met, targets judged)."""
    body: list[list[str]] = []
    judged: list[bool] = []

    def row(label: str, cells: dict[str, str], target: str, ok: bool | None) -> None:
        body.append([label, *(cells.get(c, "-") for c in COLS), target, _met(ok)])
        if ok is not None:
            judged.append(ok)

    one = {c: _run(res, c, 1) for c in COLS}
    many = {c: _run(res, c, REQUEST_ROWS) for c in COLS}
    p1, p32 = one["plinth"], many["plinth"]
    d = sizes["duration_s"]

    row(
        f"1. 1-row requests, {WRK_CONNECTIONS} connections, {d} s (2xx req/s)",
        {c: _rate(r["req_s"]) for c, r in one.items() if r},
        ">= 4,000/s",
        None if p1 is None else p1["req_s"] >= 4000 and _clean(p1),
    )
    m1 = one["mlflow"]
    ratio = p1["req_s"] / m1["req_s"] if p1 and m1 and m1["req_s"] > 0 else None
    row(
        "2. 1-row req/s, plinth / MLflow",
        {"plinth": f"{ratio:,.1f}x"} if ratio else {},
        ">= 25x",
        None if ratio is None else ratio >= 25,
    )
    bento = [r["req_s"] for r in (one["bentoml"], one["bentoml-batching"]) if r]
    ratio = p1["req_s"] / max(bento) if p1 and bento and max(bento) > 0 else None
    row(
        "3. 1-row req/s, plinth / BentoML's best",
        {"plinth": f"{ratio:,.1f}x"} if ratio else {},
        ">= 5x",
        None if ratio is None else ratio >= 5,
    )
    row(
        "4. 1-row latency p50 / p99",
        {c: _lat(r) for c, r in one.items() if r},
        "p99 < 20 ms",
        None if p1 is None else p1["p99_us"] < 20_000,
    )
    row(
        f"5. {REQUEST_ROWS}-row requests (2xx rows/s)",
        {c: f"{_rate(r['rows_s'])} ({_rate(r['req_s'], ' req/s')})" for c, r in many.items() if r},
        ">= 30,000 rows/s",
        None if p32 is None else p32["rows_s"] >= 30_000 and _clean(p32),
    )
    row(f"6. {REQUEST_ROWS}-row latency p50 / p99", {c: _lat(r) for c, r in many.items() if r}, "-", None)
    row(
        f"7. non-2xx / socket errors (1-row; {REQUEST_ROWS}-row)",
        {c: f"{_errs(one[c])}; {_errs(many[c])}" for c in COLS if one[c] or many[c]},
        "-",
        None,
    )
    if batch is not None:
        raw = max(batch["rows"] / s for s in batch["raw_s"])
        cell = "not run"
        if batch.get("plinth_s"):
            rate = batch["rows"] / batch["plinth_s"]
            cell = f"{_rate(rate, ' rows/s')} ({rate / raw:.0%} of raw)"
        row(
            f"8. batch, {batch['rows']:,} Parquet rows: raw predict loop {_rate(raw, ' rows/s')}",
            {"plinth": cell},
            "-",
            None,
        )
    return body, sum(judged), len(judged)


def _model_note(meta: Result, info: dict[str, str], ctx: Ctx, sizes: dict[str, int]) -> str:
    ones = sum(meta["expected"])
    return (
        f"Model: scikit-learn {meta['sklearn']} LogisticRegression, {meta['train_rows']} rows, "
        f"{meta['n_iter']} iterations, training accuracy {meta['train_accuracy']:.3f}, pickle "
        f"{meta['pickle_bytes']:,} bytes; scikit-learn {(ctx.mlflow or {}).get('sklearn', '-')} under "
        "MLflow, "
        f"{info.get('bentoml_sklearn', '-')} under BentoML. Request rows: labels {ones} x 1, "
        f"{REQUEST_ROWS - ones} x 0; plinth bodies {meta['body_bytes']['plinth_1']:,} and "
        f"{meta['body_bytes']['plinth_32']:,} bytes. wrk runs of {sizes['duration_s']} s after "
        f"{sizes['warmup_s']} s warm-ups."
    )


def _server_notes(res: dict[str, Result]) -> list[str]:
    """Checks, start-up, plinth's prediction logs and the batching each server did."""
    out = []
    checks = [
        f"{n} {'ok' if r.get('check_ok') else 'FAILED'} ({r.get('check', r.get('error', '?'))})"
        for n, r in res.items()
        if n != "floor"
    ]
    if checks:
        out.append("Labels equal to the raw estimator's, before the load: " + "; ".join(checks) + ".")
    starts = [f"{n} {r['startup_s']:.1f} s" for n, r in res.items() if r.get("startup_s") is not None]
    if starts:
        out.append("Time from start to ready: " + ", ".join(starts) + ".")
    pl = res.get("plinth")
    if pl and pl.get("runs"):
        sent = sum(r["requests"] - r["non2xx"] for a in pl["attempts"].values() for r in a)
        sent += sum(r["requests"] - r["non2xx"] for r in pl["warmups"].values() if r)
        dropped = pl.get("metrics", {}).get("dropped_logs")
        logged = pl.get("logged")
        out.append(
            f"plinth prediction logs: {'?' if logged is None else f'{logged:,}'} rows stored for "
            f"{sent:,} 2xx answers counted by wrk (warm-ups included) + 2 checks; dropped: "
            f"{'?' if dropped is None else f'{dropped:,.0f}'}."
        )
    batching = []
    for name in BATCH_METRICS:
        calls = []
        for rows, run in sorted(((res.get(name) or {}).get("runs") or {}).items()):
            m = run.get("batching") or {}
            if m.get("mean_rows_per_predict"):
                calls.append(
                    f"{rows}-row run {m['predict_calls']:,.0f} predict calls, "
                    f"{m['mean_rows_per_predict']:.1f} rows per call"
                )
        if calls:
            batching.append(f"{name}: " + ", ".join(calls))
    if batching:
        out.append("Adaptive batching (/metrics, measured runs): " + "; ".join(batching) + ".")
    return out


def _cpu_notes(res: dict[str, Result], sizes: dict[str, int]) -> list[str]:
    """How busy the machine was before each server, and whose CPU each measured run used."""
    out = []
    bg = [
        f"{n} {r['background_cpu']:.0%}"
        + (f" (after waiting {r['waited_s']:.0f} s)" if r["waited_s"] > 3 else "")
        for n, r in res.items()
        if r.get("background_cpu") is not None
    ]
    if bg:
        out.append("Machine busy with other work before each start: " + ", ".join(bg) + ".")
    runs = [(n, rows, run, r) for n, r in res.items() for rows, run in sorted((r.get("runs") or {}).items())]
    split = [
        f"{n} {rows}-row {_cpu(run)}"
        + (
            f" (attempt {run['attempt']} of {len(r['attempts'][rows])})"
            if len(r["attempts"][rows]) > 1
            else ""
        )
        for n, rows, run, r in runs
        if run.get("cpu")
    ]
    if split:
        out.append(
            f"CPU during each measured run (share of the machine; at most {sizes['attempts']} attempts): "
            + "; ".join(split)
            + "."
        )
    noisy = [
        f"{n} {rows}-row ({run['cpu']['other']:.0%})"
        for n, rows, run, _ in runs
        if run.get("cpu", {}).get("other", 0.0) > NOISY_OTHER
    ]
    if noisy:
        out.append(f"Measured under load (other work over {NOISY_OTHER:.0%}): " + ", ".join(noisy) + ".")
    redone = [
        f"{n} {rows}-row: "
        + ", ".join(f"{a['req_s']:,.0f} req/s (other {a['cpu'].get('other', 0):.0%})" for a in att)
        for n, r in res.items()
        for rows, att in sorted((r.get("attempts") or {}).items())
        if len(att) > 1
    ]
    if redone:
        out.append("Runs repeated because of other work: " + "; ".join(redone) + ".")
    return out


def _floor_note(res: dict[str, Result]) -> list[str]:
    f1, f32 = _run(res, "floor", 1), _run(res, "floor", REQUEST_ROWS)
    parts = []
    if f1:
        parts.append(f"1 row {f1['req_s']:,.0f} req/s (p50 {_ms(f1['p50_us'])}, p99 {_ms(f1['p99_us'])})")
    if f32:
        parts.append(f"{REQUEST_ROWS} rows {f32['req_s']:,.0f} req/s = {f32['rows_s']:,.0f} rows/s")
    if not parts:
        return []
    p1 = _run(res, "plinth", 1)
    share = f"; plinth reaches {p1['req_s'] / f1['req_s']:.0%} of it with 1-row bodies" if p1 and f1 else ""
    return ["HTTP ceiling (floor): " + ", ".join(parts) + share + "."]


def _batch_note(batch: Result) -> str:
    raws = ", ".join(f"{batch['rows'] / s:,.0f}" for s in batch["raw_s"])
    pred = ", ".join(f"{s:.1f}" for s in batch["raw_predict_s"])
    text = (
        f"Batch: {batch['rows']:,} rows, {batch['input_bytes'] / 1e9:.2f} GB of Parquet written in "
        f"{batch['generate_s']:.0f} s. Raw loop before and after plinth: {raws} rows/s (model.predict "
        f"{pred} s). "
    )
    if batch.get("plinth_s"):
        r = batch["plinth_result"]
        same = "identical" if batch.get("plinth_mismatches") == 0 else batch.get("plinth_mismatches")
        text += (
            f"plinth: {batch['plinth_s']:.1f} s wall around the call ({r['rows_per_s']:,.0f} rows/s by its "
            f"BatchResult, {r['chunks']} chunks), output {batch['output_bytes'] / 1e6:.1f} MB; labels vs the "
            f"raw loop's: {same} ({batch['positive_share']:.1%} label 1)."
        )
    else:
        text += f"plinth's batch API could not be run: {batch.get('plinth_error', '?')}."
    c = batch.get("cpu") or {}
    if c:
        text += (
            f" Machine busy {batch['background_cpu']:.0%} just before; during the batch process: "
            f"batch process {c['wrk']:.0%}, other work {c['other']:.0%}."
        )
    return text


def _warnings(res: dict[str, Result], batch: Result | None) -> list[str]:
    out = []
    for name, r in res.items():
        if r.get("error"):
            out.append(f"WARNING: {name}: {r['error']}.")
        for rows, run in (r.get("runs") or {}).items():
            if not _clean(run):
                out.append(
                    f"WARNING: {name} {rows}-row run had {run['non2xx']:,} non-2xx answers and "
                    f"{run['socket_errors']:,} socket errors (connect {run['connect']}, read {run['read']}, "
                    f"write {run['write']}, timeout {run['timeout']})."
                )
        if name != "floor" and r.get("check_ok") is False:
            out.append(f"WARNING: {name} answered with labels that differ from the raw estimator's.")
    if batch is not None and batch.get("plinth_mismatches"):
        out.append(
            f"WARNING: plinth's batch output differs from the raw loop in {batch['plinth_mismatches']} rows."
        )
    return out


def notes(
    res: dict[str, Result],
    batch: Result | None,
    meta: Result,
    info: dict[str, str],
    sizes: dict[str, int],
    ctx: Ctx,
) -> list[str]:
    """The measured numbers behind the table, the checks, and how busy the machine was."""
    out = [_model_note(meta, info, ctx, sizes), *_server_notes(res), *_cpu_notes(res, sizes)]
    out += _floor_note(res)
    if batch is not None:
        out.append(_batch_note(batch))
    load = meta.get("loadavg")
    if load:
        out.append(f"1-minute load average at start / end: {load[0]} / {load[1]}.")
    return out + _warnings(res, batch)


# --------------------------------------------------------------------------- main


def _wrk_version() -> str:
    try:
        proc = subprocess.run(["wrk", "-v"], capture_output=True, text=True, check=False)
    except OSError:
        return "wrk"
    m = re.search(r"wrk (\S+)", proc.stdout + proc.stderr)
    return f"wrk {m.group(1)}" if m else "wrk"


def run_all(
    args: argparse.Namespace, ctx: Ctx, parts: list[str], sizes: dict[str, int]
) -> tuple[dict[str, Result], Result | None, Result | None, list[str]]:
    failed: list[str] = []
    cmd = [sys.executable, str(HERE / "_serving_plinth.py"), "--prepare", "--data", str(ctx.data)]
    meta = run_json("prepare", cmd, harness.clean_env())
    if meta is None:
        return {}, None, None, ["prepare"]
    expected = meta["expected"]
    res: dict[str, Result] = {}
    for name in parts:
        if name == "batch":
            continue
        prepare_side(name, ctx)
        server = make_server(name, ctx)
        if server is None:
            failed.append(f"{name} (setup)")
            continue
        res[name] = r = bench_server(server, ctx.data, expected, sizes)
        if name == "plinth":
            r["logged"] = _count_logs(ctx.home)
        if r.get("error") or len(r["runs"]) < 2 or (name != "floor" and not r.get("check_ok")):
            failed.append(name)
    batch = None
    if "batch" in parts:
        prepare_side("batch", ctx)
        if ctx.plinth:
            busy, waited = wait_quiet(sizes["max_wait_quiet_s"])
            meter = CpuMeter(None)
            batch = run_batch(ctx, args.batch_rows or sizes["batch_rows"])
            if batch is not None:
                batch.update(background_cpu=busy, waited_s=waited, cpu=meter.stop())
        if batch is None or not batch.get("plinth_s") or batch.get("plinth_mismatches"):
            failed.append("batch")
    return res, batch, meta, failed


def _parse() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    harness.add_common_options(
        ap,
        "5 s runs, 2 s warm-ups, 1 attempt, 1,000,000 batch rows",
        "a full run of everything",
        "keep the work folder (logs, stores; not the Parquet)",
    )
    ap.add_argument("--only", help=f"comma-separated subset of {','.join(PARTS)}")
    ap.add_argument("--batch-rows", type=int, help="rows in the batch row's Parquet file")
    return ap.parse_args()


def main() -> int:
    args = _parse()
    parts = harness.parse_list(args.only, PARTS, "part")
    sizes = dict(QUICK if args.quick else FULL)
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed")

    atexit.register(_stop_all)
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _on_signal)

    info = harness.machine()
    load_start = harness.load_text()
    with harness.work_folder("serving", args.keep) as base:
        ctx = Ctx(base=base, data=base / "data", home=base / "plinth-home")
        try:
            res, batch, meta, failed = run_all(args, ctx, parts, sizes)
        finally:
            _stop_all()
    if meta is None:
        print("FAILED: prepare", file=sys.stderr)
        return 1
    meta["loadavg"] = [load_start, harness.load_text()]
    versions = _versions(info, ctx)

    body, met_n, checked = table(res, batch, sizes)
    note_lines = notes(res, batch, meta, info, sizes, ctx)
    title = (
        f"serving: plinth {info.get('plinth', '-')} vs MLflow {info.get('mlflow', '-')} and BentoML "
        f"{info.get('bentoml', '-')}{' [quick]' if args.quick else ''}"
    )
    harness.print_table(body, title, HEADER, 170)
    harness.report(info, note_lines, met_n, checked)

    write = args.write if args.write is not None else not args.quick and parts == PARTS and not failed
    return harness.finish(
        write,
        lambda: harness.section(
            SECTION, "bench_serving.py", args.quick, info, versions, HEADER, body, note_lines
        ),
        SECTION,
        failed,
    )


def _versions(info: dict[str, str], ctx: Ctx) -> str:
    """Fill `info` with each side's versions; the Machine line's tail."""
    info["wrk"] = _wrk_version()
    if ctx.mlflow:
        info["mlflow"], info["mlflow_python"] = ctx.mlflow["version"], ctx.mlflow["python"]
    if "bentoml" in ctx.pythons:
        info["bentoml"], info["bentoml_python"] = harness.dist_version(ctx.pythons["bentoml"], "bentoml")
        info["bentoml_sklearn"] = harness.dist_version(ctx.pythons["bentoml"], "scikit-learn")[0]
    if ctx.plinth:
        info["plinth"] = ctx.plinth["version"]
    return (
        f"Python {info['python']} (plinth), {info.get('mlflow_python', '-')} (MLflow), "
        f"{info.get('bentoml_python', '-')} (BentoML); MLflow {info.get('mlflow', '-')}, BentoML "
        f"{info.get('bentoml', '-')}, plinth {info.get('plinth', '-')}; {info['wrk']}"
    )


if __name__ == "__main__":
    sys.exit(main())
