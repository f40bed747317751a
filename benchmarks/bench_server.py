"""Team server benchmark: `plinth server` vs MLflow's `mlflow server`, same machine, same backend.

    python benchmarks/bench_server.py [--quick] [--only plinth|mlflow] [--backend sqlite|postgresql|both]
                                      [--clients 50] [--workers N] [--write|--no-write] [--keep]

For each backend (SQLite, then PostgreSQL at 127.0.0.1:5432, database `test` reachable with trust
auth) and each side, the script makes a fresh store (a SQLite file in a fresh work folder, or a
fresh PostgreSQL database dropped afterwards) and starts its server as a subprocess in its own
process group on 127.0.0.1: plinth's, whose client script runs every row once, then MLflow's,
whose script does the same (each once the machine is quiet). With both servers up, rows 1 and 3
run again, the sides taking turns, until each has `ROUNDS` rounds of them: the table gives each
side's median (the notes each round), so a change in the machine's speed during a backend's
minutes weighs on both sides alike. Then the servers stop:

- plinth (this interpreter): `plinth server --port P` with PLINTH_STORE / PLINTH_ARTIFACTS /
  PLINTH_ADMIN_TOKEN in its environment; the client (`_server_plinth.py`) runs with
  PLINTH_STORE=http://127.0.0.1:P and PLINTH_TOKEN set to an editor token made with
  `plinth tokens create` (the admin token where that command is missing).
- MLflow 3.17.2 (benchmarks/.venv-mlflow, made on first use; psycopg2-binary added for
  PostgreSQL): `mlflow server --backend-store-uri URI --port P` (`_server_mlflow.py`), then the
  same store behind `--app-name basic-auth` (its credential cache off, the default, and then on)
  for the token-check row.

Rows: runs created per second, metric points per second, search of 5,000 runs (filter + order,
limit 10), metric history of 100,000 points, 50 concurrent clients (nothing lost, no 5xx, p99),
and the cost of the token check. The table is printed and, for a full run of both sides on both
backends, written to benchmarks/RESULTS.md under "## server" (how each row is measured is
described there).
"""

from __future__ import annotations

import argparse
import atexit
import configparser
import contextlib
import json
import secrets
import signal
import statistics
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import harness
from bench_serving import Server, _free_port, _on_signal, _stop_all, wait_quiet
from harness import HERE, Result, log

SECTION = "server"
SIDES = {"plinth": HERE / "_server_plinth.py", "mlflow": HERE / "_server_mlflow.py"}
BACKENDS = ["sqlite", "postgresql"]
HEADER = ["row", "plinth", "MLflow", "ratio", "target", "met?"]
PG_DSN = "host=127.0.0.1 port=5432 user=postgres dbname=test"
PG_HOST = "postgres@127.0.0.1:5432"
PSYCOPG2_PIN = "psycopg2-binary"  # MLflow's PostgreSQL driver
MLFLOW_AUTH_PIN = harness.MLFLOW_PIN.replace("mlflow==", "mlflow[auth]==")  # Flask-WTF for basic-auth
SIDE_TIMEOUT_S = 3600
QUIET_MLFLOW = {
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "DO_NOT_TRACK": "true",
    "GIT_PYTHON_REFRESH": "quiet",
    # The server's background job runner (GenAI jobs, huey consumers) has nothing to do with
    # tracking and would take CPU from it on a small machine.
    "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
}


# --------------------------------------------------------------------------- stores


@dataclass
class Backing:
    """One side's fresh metadata store: its URL for plinth or for MLflow."""

    backend: str
    url: str
    dsn: str | None = None  # libpq DSN of a PostgreSQL database (the sides ANALYZE it after bulk loads)


@contextlib.contextmanager
def fresh_store(backend: str, side: str, work: Path) -> Iterator[Backing]:
    """A fresh, empty store for `side` on `backend`; a PostgreSQL database is dropped afterwards."""
    if backend == "sqlite":
        name = "plinth.db" if side == "plinth" else "mlflow.db"
        yield Backing(backend, f"sqlite:///{work / name}")
        return
    import psycopg

    db = f"bench_server_{side}_{secrets.token_hex(4)}"
    with psycopg.connect(PG_DSN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{db}"')
    driver = "postgresql+psycopg" if side == "plinth" else "postgresql+psycopg2"
    try:
        yield Backing(backend, f"{driver}://{PG_HOST}/{db}", PG_DSN.replace("dbname=test", f"dbname={db}"))
    finally:
        with psycopg.connect(PG_DSN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')


def _pg_reachable() -> bool:
    try:
        import psycopg

        with psycopg.connect(PG_DSN, connect_timeout=3):
            return True
    except Exception:
        return False


# --------------------------------------------------------------------------- sides


def run_client(name: str, cmd: list[str], env: dict[str, str]) -> Result | None:
    """Run a client script to completion; its last JSON line, or None (output logged) on failure."""
    log(f"{name}: {' '.join(cmd)}")
    try:
        proc = subprocess.run(
            cmd, stdout=subprocess.PIPE, text=True, env=env, cwd=HERE, timeout=SIDE_TIMEOUT_S, check=False
        )
    except subprocess.TimeoutExpired:
        log(f"{name}: timed out after {SIDE_TIMEOUT_S} s")
        return None
    res = harness.last_json(proc.stdout) if proc.returncode == 0 else None
    if res is None:
        log(f"{name}: FAILED (exit {proc.returncode})")
        if proc.stdout.strip():
            print(proc.stdout[-5000:], file=sys.stderr)
    return res


def _server(name: str, cmd: list[str], env: dict[str, str], work: Path, port: int, ready: str) -> Server:
    return Server(
        name=name,
        cmd=cmd,
        env=env,
        cwd=work,
        port=port,
        ready_path=ready,
        predict_path="",
        body_side="",
        log_path=work / f"{name.replace(' ', '-')}.log",
    )


@contextlib.contextmanager
def serving(server: Server) -> Iterator[Server]:
    """`server` started and ready for the block, stopped (its whole process group) afterwards."""
    server.start()
    try:
        if not server.wait_ready():
            print(server.log_tail(), file=sys.stderr)
            raise RuntimeError(f"{server.name} did not start")
        yield server
    finally:
        server.stop()


def plinth_command() -> list[str]:
    """How to run the `plinth` CLI of this interpreter."""
    exe = Path(sys.executable).parent / "plinth"
    if exe.exists():
        return [str(exe)]
    return [sys.executable, "-c", "import sys; from plinth.cli.main import main; sys.exit(main())"]


def editor_token(url: str, admin: str, work: Path) -> tuple[str, str]:
    """An editor token on `default` made through the server; (secret, how it was made)."""
    env = {
        **harness.clean_env(),
        "PLINTH_STORE": url,
        "PLINTH_TOKEN": admin,
        "PLINTH_HOME": str(work / "cli"),
    }
    cmd = [*plinth_command(), "tokens", "create", "--name", "bench", "--workspace", "default"]
    cmd += ["--role", "editor", "--json"]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False, timeout=120)
    try:
        doc = json.loads(proc.stdout) if proc.returncode == 0 else None
    except ValueError:
        doc = None
    if isinstance(doc, dict) and isinstance(doc.get("token"), str):
        return doc["token"], "editor token (plinth tokens create)"
    log(f"plinth: `plinth tokens create` failed (exit {proc.returncode}); the clients use the admin token")
    log((proc.stdout + proc.stderr)[-1500:])
    return admin, "admin token (`plinth tokens create` failed)"


@dataclass
class Side:
    """One side's server, up while the block that opened it runs, and its client script."""

    name: str
    cmd: list[str]
    env: dict[str, str]
    again: list[str]
    """The client's arguments for a later round (rows 1 and 3 over the runs the first one made)."""
    finish: Callable[[Result], None]
    """Completes the first round's result, while the side's server is still up."""

    def client(self, *args: str) -> Result | None:
        return run_client(self.name, [*self.cmd, *args], self.env)


@contextlib.contextmanager
def plinth_side(backend: str, args: argparse.Namespace) -> Iterator[Side]:
    """plinth's server on a fresh store of `backend`, up for the block, and its client script.

    Raises:
        RuntimeError: the server did not start.
    """
    with (
        harness.work_folder(f"server-plinth-{backend}", args.keep) as work,
        fresh_store(backend, "plinth", work) as store,
    ):
        port = _free_port()
        admin = "plt_" + secrets.token_urlsafe(32)
        env = {
            **harness.clean_env(),
            "PLINTH_HOME": str(work / "server-home"),
            "PLINTH_STORE": store.url,
            "PLINTH_ARTIFACTS": str(work / "artifacts"),
            "PLINTH_ADMIN_TOKEN": admin,
        }
        cmd = [*plinth_command(), "server", "--host", "127.0.0.1", "--port", str(port)]
        if args.workers:
            cmd += ["--workers", str(args.workers)]
        url = f"http://127.0.0.1:{port}"
        with serving(_server("plinth server", cmd, env, work, port, "/readyz")) as server:
            token, token_kind = editor_token(url, admin, work)
            client_env = {
                **harness.clean_env(),
                "PLINTH_HOME": str(work / "client-home"),
                "PLINTH_STORE": url,
                "PLINTH_TOKEN": token,
                "PLINTH_SYSTEM_METRICS": "false",
                "BENCH_ADMIN_TOKEN": admin,
                **({"BENCH_PG_DSN": store.dsn} if store.dsn else {}),
            }
            side = [sys.executable, str(SIDES["plinth"]), "--url", url, "--workdir", str(work / "client")]
            side += ["--clients", str(args.clients), "--server-log", str(server.log_path)]
            if args.quick:
                side.append("--quick")

            def finish(res: Result) -> None:
                res["token_kind"] = token_kind
                res["server_startup_s"] = server.startup_s
                res["workers"] = args.workers or 1
                res["server_5xx_logged"] = count_5xx(server.log_path)

            yield Side(f"plinth ({backend})", side, client_env, ["--again"], finish)


def ensure_mlflow(backend: str) -> str:
    """The MLflow venv's python, with MLflow's `auth` extra (its basic-auth app needs Flask-WTF)
    and, when `backend` needs it, its PostgreSQL driver."""
    harness.ensure_mlflow_venv()
    packages, probe = [MLFLOW_AUTH_PIN], "import mlflow, flask_wtf"
    if backend == "postgresql":
        packages, probe = [*packages, PSYCOPG2_PIN], probe + ", psycopg2"
    return harness.ensure_venv(harness.MLFLOW_VENV, packages, probe)


@contextlib.contextmanager
def mlflow_side(backend: str, args: argparse.Namespace) -> Iterator[Side]:
    """MLflow's server on a fresh store of `backend`, up for the block, and its client script;
    finishing its result stops that server and runs the same store behind basic-auth.

    Raises:
        RuntimeError: the server did not start.
    """
    python = ensure_mlflow(backend)
    with (
        harness.work_folder(f"server-mlflow-{backend}", args.keep) as work,
        fresh_store(backend, "mlflow", work) as store,
        contextlib.ExitStack() as main,
    ):
        base = [python, "-m", "mlflow", "server", "--backend-store-uri", store.url, "--host", "127.0.0.1"]
        base += ["--artifacts-destination", str(work / "artifacts")]
        if args.workers:
            base += ["--workers", str(args.workers)]
        env = {**harness.clean_env(), **QUIET_MLFLOW}
        side = [
            python,
            str(SIDES["mlflow"]),
            "--workdir",
            str(work / "client"),
            "--clients",
            str(args.clients),
        ]
        if args.quick:
            side.append("--quick")
        client_env = {**harness.clean_env(), **QUIET_MLFLOW}
        if store.dsn:
            client_env["BENCH_PG_DSN"] = store.dsn
        port = _free_port()
        url = f"http://127.0.0.1:{port}"
        server = main.enter_context(
            serving(_server("mlflow server", [*base, "--port", str(port)], env, work, port, "/health"))
        )

        def finish(res: Result) -> None:
            res["server_startup_s"] = server.startup_s
            res["workers"] = args.workers or 4
            main.close()  # the plain server stops before the basic-auth ones start on its store
            for cache_s, key in ((0, "auth"), (60, "auth_cached")):
                try:
                    got = _mlflow_auth_phase(base, env, side, client_env, work, backend, cache_s)
                except RuntimeError as exc:
                    log(f"mlflow ({backend}): {exc}; no token-check figure")
                    got = None
                if got is not None:
                    res[f"{key}_get_run_median_ms"] = got["get_run_median_ms"]
                    res[f"{key}_check_ms"] = max(0.0, got["get_run_median_ms"] - res["get_run_median_ms"])

        client = [*side, "--url", url, "--server-log", str(server.log_path)]
        yield Side(f"mlflow ({backend})", client, client_env, ["--phase", "again"], finish)


OPEN: dict[str, Callable[[str, argparse.Namespace], contextlib.AbstractContextManager[Side]]] = {
    "plinth": plinth_side,
    "mlflow": mlflow_side,
}
ROUNDS = 5
"""Rounds of rows 1 and 3 per side (the first with every other row), the sides taking turns
while both servers are up: each of the two figures is the median of its rounds, so a change in
the machine's speed during the minutes a backend takes weighs on both sides alike."""
SETTLE_S = 60.0
"""At most this long to wait, once a server answers, for the machine to go quiet: MLflow's
workers go on starting after the first of them answers."""
ROUNDED = ("runs_per_s", "search_median_ms")


def run_backend(backend: str, sides: list[str], args: argparse.Namespace) -> dict[str, Result | None]:
    """Each side's result on `backend`: both servers up, a first round of every row on each side,
    then later rounds of rows 1 and 3 taking turns (`ROUNDS`)."""
    results: dict[str, Result | None] = dict.fromkeys(sides)
    with contextlib.ExitStack() as stack:
        up: dict[str, Side] = {}
        rounds: dict[str, list[Result]] = {}
        for side in sides:  # a server starts once the other side's first round is done
            try:
                up[side] = stack.enter_context(OPEN[side](backend, args))
            except RuntimeError as exc:
                log(f"{side} ({backend}): {exc}")
                continue
            wait_quiet(SETTLE_S)
            first = up[side].client()
            results[side] = first
            if first is not None:
                rounds[side] = [first]
        for _ in range(ROUNDS - 1):
            for side, measured in rounds.items():
                again = up[side].client(*up[side].again)
                if again is not None:
                    measured.append(again)
        for side, measured in rounds.items():
            _median_of_rounds(measured)
            up[side].finish(measured[0])
    return results


def _median_of_rounds(measured: list[Result]) -> None:
    """Set the first round's `ROUNDED` figures to the median over every round (each round's kept
    beside it, as `<key>_rounds`)."""
    first = measured[0]
    for key in ROUNDED:
        values = [float(r[key]) for r in measured if isinstance(r.get(key), int | float)]
        if values:
            first[f"{key}_rounds"] = values
            first[key] = statistics.median(values)


def _mlflow_auth_phase(
    base: list[str],
    env: dict[str, str],
    side: list[str],
    client_env: dict[str, str],
    work: Path,
    backend: str,
    cache_s: int,
) -> Result | None:
    """The same store behind `--app-name basic-auth`; the client's get_run latency there."""
    password = secrets.token_urlsafe(16)
    ini = configparser.ConfigParser()
    ini["mlflow"] = {
        "default_permission": "READ",
        "database_uri": f"sqlite:///{work / f'basic_auth_{cache_s}.db'}",
        "admin_username": "admin",
        "admin_password": password,
        "authorization_function": "mlflow.server.auth:authenticate_request_basic_auth",
        "auth_cache_ttl_seconds": str(cache_s),
    }
    config = work / f"basic_auth_{cache_s}.ini"
    with open(config, "w") as fh:
        ini.write(fh)
    port = _free_port()
    cmd = [*base, "--port", str(port), "--app-name", "basic-auth"]
    name = "mlflow basic-auth" + (" cached" if cache_s else "")
    server_env = {
        **env,
        "MLFLOW_AUTH_CONFIG_PATH": str(config),
        "MLFLOW_FLASK_SERVER_SECRET_KEY": secrets.token_urlsafe(32),  # its CSRF protection needs one
    }
    with serving(_server(name, cmd, server_env, work, port, "/health")):
        auth_env = {
            **client_env,
            "MLFLOW_TRACKING_USERNAME": "admin",
            "MLFLOW_TRACKING_PASSWORD": password,
        }
        phase = [*side, "--url", f"http://127.0.0.1:{port}", "--phase", "auth"]
        return run_client(f"{name} ({backend})", phase, auth_env)


def count_5xx(log_path: Path) -> int | None:
    """5xx answers in a server's access log (uvicorn's format); None when it cannot be read."""
    import re

    try:
        text = log_path.read_text(errors="replace")
    except OSError:
        return None
    return len(re.findall(r'HTTP/1\.[01]" 5\d\d ', text))


# --------------------------------------------------------------------------- table


@dataclass
class Row:
    label: str
    key: str
    kind: str  # "rate": higher is better; "ms": lower is better; "count": an exact count
    target: str
    # (plinth value, ratio or None) -> met?, or None where it cannot be judged
    met: Callable[[float, float | None], bool | None] | None


def _rows(quick: bool, clients: int) -> list[Row]:
    search_n = "500" if quick else "5,000"
    history_n = "10,000" if quick else "100,000"
    c = f"{clients} clients"
    return [
        Row(
            "1. runs created, one client: start_run + end (runs/s)",
            "runs_per_s",
            "rate",
            ">= 10x",
            lambda p, r: None if r is None else r >= 10,
        ),
        Row("1b. runs created, one client: store API (runs/s)", "store_runs_per_s", "rate", "-", None),
        Row(
            "2. metric points, one client, durable (points/s)",
            "points_per_s",
            "rate",
            ">= 200,000/s",
            lambda p, r: p >= 200_000,
        ),
        Row(
            f"3. search {search_n} runs: filter + order, limit 10 (median)",
            "search_median_ms",
            "ms",
            ">= 10x",
            lambda p, r: None if r is None else r >= 10,
        ),
        Row(f"4. metric history, {history_n} points (median)", "history_median_ms", "ms", "-", None),
        Row(f"5. {c}: points written (points/s)", "conc_points_per_s", "rate", "-", None),
        Row(f"5. {c}: acknowledged writes lost", "conc_lost", "count", "0", lambda p, r: p == 0),
        Row(f"5. {c}: 5xx answers", "conc_5xx", "count", "0", lambda p, r: p == 0),
        Row(
            f"5. {c}: calls that failed (after retries)",
            "conc_client_errors",
            "count",
            "0",
            lambda p, r: p == 0,
        ),
        Row(
            f"5. {c}: p99 latency (MLflow: client-side)",
            "conc_p99_ms",
            "ms",
            "< 100 ms",
            lambda p, r: p < 100,
        ),
        Row(
            "6. token check per request (MLflow: basic-auth)",
            "auth_check_ms",
            "ms",
            "<= 0.2 ms",
            lambda p, r: p <= 0.2,
        ),
    ]


def _fmt(value: float | None, kind: str) -> str:
    if value is None:
        return "-"
    if kind == "rate":
        return f"{value:,.0f}/s"
    if kind == "count":
        return f"{value:,.0f}"
    ms = value
    if ms >= 10_000:
        return f"{ms / 1e3:,.1f} s"
    if ms >= 1_000:
        return f"{ms / 1e3:,.2f} s"
    if ms >= 10:
        return f"{ms:,.1f} ms"
    if ms >= 1:
        return f"{ms:.2f} ms"
    return f"{ms:.3f} ms" if ms >= 0.01 else f"{ms * 1e3:.1f} µs"


def _fmt_ratio(ratio: float | None) -> str:
    if ratio is None:
        return "-"
    return f"{ratio:,.0f}x faster" if ratio >= 100 else f"{ratio:,.1f}x faster"


BACKEND_NAMES = {"sqlite": "SQLite", "postgresql": "PostgreSQL"}


def table(
    results: dict[tuple[str, str], Result | None], backends: list[str], quick: bool, clients: int
) -> tuple[list[list[str]], int, int]:
    """The table body (rows of each backend in turn) and (targets met, targets checked)."""
    body = []
    met_n = checked = 0
    for backend in backends:
        plinth, mlflow = results.get(("plinth", backend)), results.get(("mlflow", backend))
        for row in _rows(quick, clients):
            p = plinth.get(row.key) if plinth else None
            m = mlflow.get(row.key) if mlflow else None
            ratio = None
            if row.kind != "count" and m and p:
                ratio = p / m if row.kind == "rate" else m / p
            ok = row.met(p, ratio) if row.met is not None and p is not None else None
            met = "-" if ok is None else "yes" if ok else "NO"
            if ok is not None:
                checked += 1
                met_n += ok
            label = f"{BACKEND_NAMES[backend]} · {row.label}"
            body.append([label, _fmt(p, row.kind), _fmt(m, row.kind), _fmt_ratio(ratio), row.target, met])
    return body, met_n, checked


def notes(results: dict[tuple[str, str], Result | None], backends: list[str]) -> list[str]:
    """Sample sizes, how each figure was read, and checks of both sides' answers."""
    out = []
    for backend in backends:
        name = BACKEND_NAMES[backend]
        plinth, mlflow = results.get(("plinth", backend)), results.get(("mlflow", backend))
        if plinth:
            out.append(
                f"{name}, plinth: {plinth['workers']} server process(es), "
                f"clients with an {plinth['token_kind']}; "
                f"{plinth['runs_n']:,} runs (row 1), {plinth['points_n']:,} points in "
                f"{plinth['points_chunk']:,}-point log_metric_points calls (row 2); search corpus filled in "
                f"{plinth['search_setup_s']:,.1f} s."
            )
            out.append(_server_share_note(name, plinth))
            out.append(_concurrency_note(name, "plinth", plinth))
            if plinth.get("auth_e2e_ms") is not None:
                out.append(
                    f"{name}, plinth: in-process token check (authenticate + authorize, cache hit) "
                    f"{plinth['auth_check_ms'] * 1e3:.1f} µs; over HTTP, an authenticated GET "
                    f"{plinth['auth_route']} takes {plinth['auth_e2e_ms']:.2f} ms (median) against "
                    f"{plinth['health_e2e_ms']:.2f} ms for the unauthenticated /healthz."
                )
        if mlflow:
            out.append(
                f"{name}, MLflow: {mlflow['workers']} uvicorn workers, job runner off; "
                f"{mlflow['runs_n']:,} runs (row 1; MlflowClient.create_run + set_terminated, so rows 1 "
                f"and 1b are the same figure), {mlflow['points_n']:,} points (row 2); search corpus "
                f"filled in {mlflow['search_setup_s']:,.1f} s."
            )
            out.append(_concurrency_note(name, "MLflow", mlflow))
            if mlflow.get("auth_check_ms") is not None:
                line = (
                    f"{name}, MLflow: get_run takes {mlflow['get_run_median_ms']:.2f} ms (median) on the "
                    f"plain server and {mlflow['auth_get_run_median_ms']:.2f} ms behind basic-auth "
                    "(credential cache off, its default): row 6 is the difference"
                )
                if mlflow.get("auth_cached_get_run_median_ms") is not None:
                    extra = mlflow["auth_cached_check_ms"]
                    line += (
                        f"; with auth_cache_ttl_seconds = 60 it takes "
                        f"{mlflow['auth_cached_get_run_median_ms']:.2f} ms ("
                        + (
                            f"{extra:.2f} ms over the plain server"
                            if extra > 0
                            else "no cost measurable over the plain server"
                        )
                        + ")"
                    )
                out.append(line + ".")
        out.extend(_answer_checks(name, plinth, mlflow))
        out.extend(_rounds_note(name, plinth, mlflow))
    return out


def _rounds_note(name: str, plinth: Result | None, mlflow: Result | None) -> list[str]:
    """Each round's rows 1 and 3, of which the table gives the medians."""
    parts = []
    for label, key, kind in (("row 1", "runs_per_s", "rate"), ("row 3", "search_median_ms", "ms")):
        shown = []
        for side, res in (("plinth", plinth), ("MLflow", mlflow)):
            values = (res or {}).get(f"{key}_rounds")
            if values:
                shown.append(f"{side} " + " / ".join(_fmt(v, kind) for v in values))
        if shown:
            parts.append(f"{label} " + ", ".join(shown))
    if not parts:
        return []
    return [f"{name}: rounds, taking turns (the table gives each side's median): " + "; ".join(parts) + "."]


def _server_share_note(name: str, res: Result) -> str:
    """How much of rows 1-4's time the server spent answering (from its latency histogram)."""
    parts = []
    for label, busy, total in (
        ("row 1", res.get("runs_server_s"), res.get("runs_s")),
        ("row 2", res.get("points_server_s"), res.get("points_s")),
    ):
        if busy is not None and total:
            parts.append(f"{label} {busy:.2f} s of {total:.2f} s")
    for label, key in (("row 3", "search"), ("row 4", "history")):
        busy = res.get(f"{key}_server_ms")
        if busy is not None:
            parts.append(f"{label} {_fmt(busy, 'ms')} a call (mean; the table gives the client's median)")
    if not parts:
        return f"{name}, plinth: the server's own time per row could not be read from /metrics."
    return f"{name}, plinth: time the server spent answering: " + "; ".join(parts) + "."


def _concurrency_note(name: str, side: str, res: Result) -> str:
    if "conc_clients" not in res:
        return f"{name}, {side}: no concurrency figures."
    text = (
        f"{name}, {side}, row 5: {res['conc_clients']} clients in {res['conc_procs']} processes "
        f"created {res['conc_runs_found']:,} of {res['conc_runs_intended']:,} runs and "
        f"{res['conc_points_found']:,} of {res['conc_points_intended']:,} points "
        f"(acknowledged: {res['conc_runs_acked']:,} runs, {res['conc_points_acked']:,} points; "
        f"{res['conc_client_errors']} client errors) in {res['conc_elapsed_s']:.1f} s; "
        f"client-side p50 {_fmt(res.get('conc_client_p50_ms'), 'ms')}, "
        f"p99 {_fmt(res.get('conc_client_p99_ms'), 'ms')}"
    )
    if res.get("conc_p99_source") == "server":
        p99 = _fmt(res.get("conc_p99_ms"), "ms")
        text += f"; server-side p99 {p99} over {res['conc_server_requests']:,} requests"
    routes = res.get("conc_route_p99") or {}
    if routes:
        shown = ", ".join(
            f"{route} {_fmt(p99, 'ms')} ({count:,})"
            for route, (p99, count) in sorted(routes.items(), key=lambda kv: -(kv[1][0] or 0.0))
        )
        text += f" (per route, p99 and requests: {shown})"
    if res.get("conc_extra"):
        text += f"; WARNING: {res['conc_extra']} more rows than acknowledged (written twice?)"
    if res.get("conc_error_text"):
        text += f"; first error: {res['conc_error_text'][0]}"
    return text + "."


def _answer_checks(name: str, plinth: Result | None, mlflow: Result | None) -> list[str]:
    out = []
    for side in (s for s in (plinth, mlflow) if s):
        expected = min(10, side["search_matches"])
        if side["search_returned"] != expected:
            out.append(
                f"WARNING: {name}, {side['side']} search returned {side['search_returned']} runs, "
                f"expected {expected}."
            )
        if side["history_returned"] != side["history_points"]:
            out.append(
                f"WARNING: {name}, {side['side']} metric history returned {side['history_returned']} "
                f"points, expected {side['history_points']}."
            )
    if plinth and mlflow:
        same = plinth["search_top_m2"] == mlflow["search_top_m2"]
        out.append(
            f"{name}: search top-10 (by m2) identical on both sides: "
            + (
                "yes."
                if same
                else f"NO (plinth {plinth['search_top_m2']}, MLflow {mlflow['search_top_m2']})."
            )
        )
    return out


# --------------------------------------------------------------------------- main


def _quiet_enough() -> None:
    load = harness.loadavg()
    if load is not None and load > 1.5:
        log(f"load average {load:.2f} > 1.5: the machine is busy, numbers will be noisy")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    harness.add_common_options(
        ap,
        "small sizes (500-run search, 10,000-point history, a few writes per client): a smoke run",
        "a full run of both sides on both backends",
        "keep the work folders (server logs included)",
    )
    ap.add_argument("--only", choices=sorted(SIDES), help="run one side only")
    ap.add_argument("--backend", choices=[*BACKENDS, "both"], default="both")
    ap.add_argument("--clients", type=int, default=50, help="concurrent clients of row 5 (default 50)")
    ap.add_argument("--workers", type=int, help="server worker processes (default: each server's own)")
    args = ap.parse_args()

    atexit.register(_stop_all)
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _on_signal)

    backends = BACKENDS if args.backend == "both" else [args.backend]
    if "postgresql" in backends and not _pg_reachable():
        raise SystemExit(f"PostgreSQL is not reachable ({PG_DSN}); use --backend sqlite")
    sides = [s for s in ("plinth", "mlflow") if not args.only or args.only == s]
    info = harness.machine()
    load_at_start = harness.load_text()
    _quiet_enough()
    results: dict[tuple[str, str], Result | None] = {}
    failed = []
    for backend in backends:
        for side, res in run_backend(backend, sides, args).items():
            results[(side, backend)] = res
            if res is None:
                failed.append(f"{side} ({backend})")

    any_plinth = next((r for (s, _), r in results.items() if s == "plinth" and r), None)
    any_mlflow = next((r for (s, _), r in results.items() if s == "mlflow" and r), None)
    v_plinth = any_plinth["version"] if any_plinth else "-"
    v_mlflow = any_mlflow["version"] if any_mlflow else "-"
    body, met_n, checked = table(results, backends, args.quick, args.clients)
    note_lines = notes(results, backends)
    title = f"server: plinth {v_plinth} vs MLflow {v_mlflow}{' [quick]' if args.quick else ''}"
    harness.print_table(body, title, HEADER)
    harness.report(info, note_lines, met_n, checked)
    pg = _pg_version() if "postgresql" in backends else None
    versions = (
        f"Python {info['python']} (plinth side), "
        f"{any_mlflow['python'] if any_mlflow else '-'} (MLflow side); "
        f"MLflow {v_mlflow}; plinth {v_plinth}; backends "
        + ", ".join(BACKEND_NAMES[b] + (f" {pg}" if b == "postgresql" and pg else "") for b in backends)
        + f"; load average at the start {load_at_start}"
    )
    partial = args.quick or args.only or args.backend != "both"
    write = args.write if args.write is not None else not partial and not failed
    return harness.finish(
        write,
        lambda: harness.section(
            SECTION, "bench_server.py", args.quick, info, versions, HEADER, body, note_lines
        ),
        SECTION,
        failed,
    )


def _pg_version() -> str | None:
    try:
        import psycopg

        with psycopg.connect(PG_DSN, connect_timeout=3) as conn:
            row = conn.execute("SHOW server_version").fetchone()
        return str(row[0]).split()[0] if row else None
    except Exception:
        return None


if __name__ == "__main__":
    sys.exit(main())
