"""What `plinth serve --auth` costs: throughput with tokens checked vs not, same model, same load.

    python benchmarks/bench_serve_auth.py [--quick] [--rounds N] [--write|--no-write] [--keep]

The model and request bodies are `bench_serving.py`'s (scikit-learn LogisticRegression on the
breast_cancer data, registered as bc@champion on a SQLite store). A service account gets a
token with role `predictor` in the default workspace. `plinth serve bc@champion --workers 2`
is started without and with `--auth`, alternately (off, on, off, on, …: drift on a shared
machine hits both), and loaded with `wrk -t2 -c32 --latency` and the 1-row body, the token in
`Authorization: Bearer …` in both modes (the server without --auth ignores it, so both read the
same bytes). Each round warms up, then measures; the table shows each mode's median round and
the median CPU time the server spent per request. The app is also called in this process
through ASGI, without and with --auth in alternating blocks, for the time of one request.
Target: --auth keeps ≥ 90% of the capacity without it, judged on the in-process time per
request, which other work on a shared machine disturbs far less than requests per second.

Also measured in this process: the time one check takes on a cache hit
(`Authorizer.authenticate` + `authorize`, the server's own per-request work).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import harness
from bench_serving import (
    ALIAS,
    META_FILE,
    MODEL_NAME,
    Server,
    _free_port,
    body_file,
    run_json,
    wait_quiet,
    wrk,
)
from harness import HERE, Result, log

SECTION = "serve --auth"
FULL = {"duration_s": 15, "warmup_s": 3, "rounds": 3, "max_wait_quiet_s": 60, "blocks": 30}
QUICK = {"duration_s": 5, "warmup_s": 2, "rounds": 1, "max_wait_quiet_s": 10, "blocks": 5}
TARGET = 0.90
CHECKS = 200_000


def issue_token(home: Path) -> str:
    """A predictor token for service account `scorer` in the store under `home`; its secret."""
    from plinth.core.access import Role
    from plinth.core.settings import Settings
    from plinth.store.sql.identity import SqlIdentity
    from plinth.store.token_issue import issue_token as issue

    identity = SqlIdentity.from_settings(Settings(home=str(home)))
    try:
        return issue(identity, name="scorer", workspace="default", role=Role.PREDICTOR, by="bench").secret
    finally:
        identity.close()


def check_cost(home: Path, secret: str) -> float:
    """Microseconds per cached check of `secret` as the server makes it (`Guard.check`: read the
    bearer header, authenticate, authorize predict), in this process."""
    import asyncio

    from starlette.requests import Request

    from plinth.core.access import Right
    from plinth.core.settings import Settings
    from plinth.serving.auth import guard_for

    guard = guard_for(Settings(home=str(home)), 5.0)
    headers = [(b"content-type", b"application/json"), (b"authorization", f"Bearer {secret}".encode())]
    scope = {"type": "http", "headers": headers, "client": ("127.0.0.1", 50000)}

    async def measure() -> float:
        await guard.check(Request(scope), Right.PREDICT)
        began = time.perf_counter()
        for _ in range(CHECKS):
            await guard.check(Request(scope), Right.PREDICT)
        return (time.perf_counter() - began) / CHECKS * 1e6

    try:
        return asyncio.run(measure())
    finally:
        guard.close()


def in_process(home: Path, data: Path, secret: str, blocks: int, size: int) -> dict[str, list[float]]:
    """Microseconds per request of the app without and with --auth, called in this process as
    ASGI (no network, no HTTP parsing, no wrk): `blocks` blocks of `size` sequential requests
    per mode, alternating."""
    import asyncio

    from plinth.core.settings import Settings
    from plinth.serving.app import create_app
    from plinth.serving.options import ServeOptions

    body = Path(body_file(data, "plinth", 1)).read_bytes()
    path = f"/v1/models/{MODEL_NAME}/predict"
    headers = [
        (b"host", b"bench"),
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"authorization", f"Bearer {secret}".encode()),
    ]
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": headers,
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
    }
    ref, settings = f"{MODEL_NAME}@{ALIAS}", Settings(home=str(home))
    apps = {mode: create_app([ref], settings, ServeOptions(auth=mode == "on")) for mode in ("off", "on")}

    async def call(app: Any) -> int:
        messages = [{"type": "http.request", "body": body, "more_body": False}]
        status: list[int] = []

        async def receive() -> dict[str, Any]:
            if messages:
                return messages.pop()
            await asyncio.sleep(3600)  # the client never disconnects
            raise AssertionError

        async def send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                status.append(message["status"])

        await app(dict(scope), receive, send)
        return status[0]

    async def measure() -> dict[str, list[float]]:
        found: dict[str, list[float]] = {"off": [], "on": []}
        async with (
            apps["off"].router.lifespan_context(apps["off"]),
            apps["on"].router.lifespan_context(apps["on"]),
        ):
            for app in apps.values():  # warm-up: the token's first check, caches, allocations
                for _ in range(size):
                    assert await call(app) == 200
            for _ in range(blocks):
                for mode, app in apps.items():
                    began = time.perf_counter()
                    for _ in range(size):
                        await call(app)
                    found[mode].append((time.perf_counter() - began) / size * 1e6)
        return found

    return asyncio.run(measure())


def answers(server: Server, data: Path, secret: str, expected: list[int]) -> bool:
    """Whether the server answers the 1-row body right with the token (and 401 without, under --auth)."""
    body = Path(body_file(data, "plinth", 1)).read_bytes()
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {secret}"}
    request = urllib.request.Request(server.url(server.predict_path), data=body, headers=headers)
    with urllib.request.urlopen(request, timeout=30) as resp:
        right = [int(p) for p in json.loads(resp.read())["predictions"]] == expected[:1]
    if not server.name.endswith("on"):
        return right
    bare = urllib.request.Request(
        server.url(server.predict_path), data=body, headers=headers | {"Authorization": ""}
    )
    try:
        urllib.request.urlopen(bare, timeout=30).close()
    except urllib.error.HTTPError as exc:
        return right and exc.code == 401
    return False


def one_round(mode: str, base: Path, home: Path, secret: str, sizes: dict[str, int]) -> Result:
    """Start the server (`mode` "on": with --auth), check it, warm it up and load it once."""
    port = _free_port()
    env = harness.clean_env()
    env.update(PLINTH_HOME=str(home), PROMETHEUS_MULTIPROC_DIR=str(base / f"prom-{port}"))
    (base / f"prom-{port}").mkdir()
    cmd = [str(Path(sys.executable).parent / "plinth"), "serve", f"{MODEL_NAME}@{ALIAS}", "--port", str(port)]
    cmd += ["--workers", "2", *(["--auth"] if mode == "on" else [])]
    logs = base / "logs"
    logs.mkdir(exist_ok=True)
    server = Server(
        f"auth-{mode}", cmd, env, base, port, "/readyz", f"/v1/models/{MODEL_NAME}/predict", "plinth",
        logs / f"{mode}-{port}.log",
    )  # fmt: skip
    headers = (f"Authorization: Bearer {secret}",)
    out: Result = {"mode": mode}
    out["background_cpu"], _waited = wait_quiet(sizes["max_wait_quiet_s"])
    expected = json.loads((base / "data" / META_FILE).read_text())["expected"]
    try:
        server.start()
        if not server.wait_ready():
            out["error"] = "did not become ready"
            log(server.log_tail())
            return out
        out["check_ok"] = answers(server, base / "data", secret, expected)
        wrk(server, 1, sizes["warmup_s"], base / "data", headers)
        res = wrk(server, 1, sizes["duration_s"], base / "data", headers)
        if res is None:
            out["error"] = "wrk failed"
            return out
        out.update({k: v for k, v in res.items() if k != "text"})
        out["cpu_us"] = server_cpu_per_request(res)
        log(
            f"--auth {mode}: {res['req_s']:,.0f} req/s, p50 {res['p50_us'] / 1e3:.2f} ms, "
            f"p99 {res['p99_us'] / 1e3:.2f} ms, non-2xx {res['non2xx']}, "
            f"other CPU {res['cpu'].get('other', 0):.0%}"
        )
    finally:
        server.stop()
    return out


def server_cpu_per_request(res: Result) -> float | None:
    """The server's CPU time (all its processes) per answered request, in microseconds: what
    throughput would follow on a machine of its own, whatever else shared this one."""
    share, answered = res["cpu"].get("server"), res["requests"] - res["non2xx"]
    if share is None or answered <= 0:
        return None
    return share * res["duration_us"] * (os.cpu_count() or 1) / answered


def median_round(rounds: list[Result]) -> Result | None:
    good = sorted((r for r in rounds if "req_s" in r), key=lambda r: r["req_s"])
    return good[len(good) // 2] if good else None


def median_cpu(rounds: list[Result]) -> float | None:
    """The median server CPU per request over `rounds`."""
    found = [r["cpu_us"] for r in rounds if r.get("cpu_us")]
    return statistics.median(found) if found else None


def table(
    rounds: dict[str, list[Result]], asgi: dict[str, list[float]]
) -> tuple[list[str], list[list[str]], float | None]:
    """A row per mode, and the share of its capacity the server keeps with --auth: time per
    request in-process without it ÷ with it."""
    header = ["server", "req/s", "p50", "p99", "non-2xx", "server CPU/req", "in-process/req", "capacity"]
    header.append(f"target ≥ {TARGET:.0%}")
    off, on = median_round(rounds["off"]), median_round(rounds["on"])
    cpu = {mode: median_cpu(found) for mode, found in rounds.items()}
    own = {mode: statistics.median(found) for mode, found in asgi.items()}
    kept = own["off"] / own["on"]
    body = []
    for mode, name, res in (("off", "plinth serve", off), ("on", "plinth serve --auth", on)):
        if res is None:
            body.append([name, "failed", "", "", "", "", "", "", "NO"])
            continue
        per = cpu[mode]
        met = "" if mode == "off" else ("yes" if kept >= TARGET else "NO")
        body.append(
            [
                name,
                f"{res['req_s']:,.0f}",
                f"{res['p50_us'] / 1e3:.2f} ms",
                f"{res['p99_us'] / 1e3:.2f} ms",
                str(res["non2xx"]),
                "?" if per is None else f"{per:,.0f} µs",
                f"{own[mode]:,.0f} µs",
                "100%" if mode == "off" else f"{kept:.1%}",
                met,
            ]
        )
    return header, body, kept


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    harness.add_common_options(ap, "short runs, one round", "a full run", "keep the work folder")
    ap.add_argument("--rounds", type=int, default=None, help="rounds of (off, on) [default: 3, quick 1]")
    args = ap.parse_args()
    sizes = dict(QUICK if args.quick else FULL)
    if args.rounds:
        sizes["rounds"] = args.rounds
    info = harness.machine()
    with harness.work_folder("serve-auth", args.keep) as base:
        data, home = base / "data", base / "home"
        env = harness.clean_env() | {"PLINTH_HOME": str(home)}
        helper = [sys.executable, str(HERE / "_serving_plinth.py"), "--data", str(data)]
        if (
            run_json("prepare", [*helper, "--prepare"], env) is None
            or run_json("register", [*helper, "--register"], env) is None
        ):
            return 1
        secret = issue_token(home)
        cost_us = check_cost(home, secret)
        log(f"one cached check: {cost_us:.2f} µs")
        asgi = in_process(home, data, secret, sizes["blocks"], 300)
        log(
            "in-process, µs per request: "
            + ", ".join(f"{m} {statistics.median(v):.0f}" for m, v in asgi.items())
        )
        rounds: dict[str, list[Result]] = {"off": [], "on": []}
        for number in range(sizes["rounds"]):
            for mode in ("off", "on"):
                log(f"round {number + 1}/{sizes['rounds']}: --auth {mode}")
                rounds[mode].append(one_round(mode, base, home, secret, sizes))
    header, body, kept = table(rounds, asgi)
    met = kept is not None and kept >= TARGET
    off, on = median_round(rounds["off"]), median_round(rounds["on"])
    throughput = on["req_s"] / off["req_s"] if off and on else None
    cpu_off, cpu_on = median_cpu(rounds["off"]), median_cpu(rounds["on"])
    checked = all(r.get("check_ok") for rs in rounds.values() for r in rs)
    notes = [
        f"Each row: the median of {sizes['rounds']} round(s) of {sizes['duration_s']} s "
        f"(after {sizes['warmup_s']} s of warm-up), rounds alternating off and on; "
        f"wrk -t2 -c32, 1-row body, `plinth serve --workers 2` on SQLite.",
        f"One cached token check as the server makes it (read the header, authenticate, authorize) "
        f"costs {cost_us:.2f} µs in-process.",
        "Every round: "
        + ("answers checked, and 401 without a token under --auth." if checked else "CHECK FAILED."),
        "Server CPU/req: the CPU time of the server's processes (both workers and their threads) per "
        "answered request under wrk, from /proc, median over the rounds"
        + (f" (with --auth: {cpu_off / cpu_on:.1%} of the capacity without)." if cpu_off and cpu_on else "."),
        f"In-process/req: the median time of one request to the app, called as ASGI in this process "
        f"(no network, no HTTP parsing, no wrk; {sizes['blocks']} blocks of 300 sequential requests "
        "per mode, alternating): the server's own work per request. Capacity: in-process/req "
        "without --auth ÷ with it; the target is judged on it, since req/s and CPU/req on a "
        "shared 2-core machine move with whatever else runs (see the rounds below).",
        "Measured req/s with --auth under wrk: "
        + ("?" if throughput is None else f"{throughput:.1%}")
        + " of without (median rounds).",
        "Other work on the machine (share of all cores) per round: "
        + "; ".join(
            f"{mode} " + ", ".join(f"{r.get('cpu', {}).get('other', 0):.0%}" for r in rs)
            for mode, rs in rounds.items()
        ),
        "In-process blocks (µs/req): "
        + "; ".join(f"{mode} " + ", ".join(f"{v:.0f}" for v in found) for mode, found in asgi.items()),
        "Rounds (server CPU/req): "
        + "; ".join(
            f"{mode} " + ", ".join(f"{r.get('cpu_us') or 0:,.0f} µs" for r in rs)
            for mode, rs in rounds.items()
        ),
        "Rounds (req/s): "
        + "; ".join(
            f"{mode} " + ", ".join(f"{r.get('req_s', 0):,.0f}" for r in rs) for mode, rs in rounds.items()
        ),
    ]
    harness.print_table(body, "plinth serve with and without --auth", header)
    harness.report(info, notes, int(met), 1)
    failed = [] if (met and checked) else ["--auth throughput" if not met else "answers"]
    write = args.write if args.write is not None else not args.quick
    versions = f"Python {info['python']}"

    def make() -> str:
        return harness.section(
            SECTION, "bench_serve_auth.py", args.quick, info, versions, header, body, notes
        )

    return harness.finish(write and not failed, make, SECTION, failed)


if __name__ == "__main__":
    raise SystemExit(main())
