"""The demo's serving part: a live server on a free port, a few hundred requests, what got logged."""

from __future__ import annotations

import concurrent.futures
import json
import socket
import threading
import time
import urllib.request
from typing import Any

from plinth.cli.render import console, duration, number, say, table
from plinth.core.refs import ModelRef


def serve_and_query(
    ref: str,
    rows: list[dict[str, float]],
    requests: int = 300,
    shifted: list[dict[str, float]] | None = None,
) -> list[tuple[str, int, bool]]:
    """Serve `ref` in this process, send `requests` one-row predictions (then as many again from
    `shifted`, if given), show metrics and logs; return (request id, row index, shifted) per request."""
    import uvicorn

    from plinth.serving.app import create_app
    from plinth.tracking.context import backend

    settings = backend().settings
    app = create_app([ref], settings)
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    _wait_ready(url)
    name = ModelRef.parse(ref).name
    started = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        answers = list(
            pool.map(lambda i: _predict(url, name, rows[i % len(rows)], f"user-{i % 25}"), range(requests))
        )
        sent = [(a["request_id"], i % len(rows), False) for i, a in enumerate(answers)]
        if shifted:
            time.sleep(1.0)  # the shifted traffic lands in later windows of the report
            later = list(
                pool.map(
                    lambda i: _predict(url, name, shifted[i % len(shifted)], f"user-{i % 25}"),
                    range(requests),
                )
            )
            answers += later
            sent += [(a["request_id"], i % len(shifted), True) for i, a in enumerate(later)]
    seconds = time.perf_counter() - started
    metrics = _get(f"{url}/metrics").decode()
    time.sleep(0.3)  # let the logger's last batch land before the server stops
    server.should_exit = True
    thread.join(timeout=30)
    say(
        f"Served {len(answers)} requests at {url} in {duration(seconds)} "
        f"({len(answers) / seconds:.0f} req/s, 8 concurrent clients)"
    )
    _show_metrics(metrics)
    logs = backend().store.prediction_logs(name)
    rows_out = [
        (log.request_id, log.version, log.route, number(log.latency_ms), log.subject_id, log.outputs)
        for log in logs[-5:]
    ]
    console.print(
        table(
            f"Logged predictions of {name} ({len(logs)} in all), the last 5",
            ["request", "version", "route", "ms", "subject", "prediction"],
            rows_out,
        )
    )
    return sent


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=10) as response:
        return bytes(response.read())


def _wait_ready(url: str) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            _get(f"{url}/readyz")
            return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError("the demo server did not become ready")


def _predict(url: str, name: str, row: dict[str, float], subject: str) -> Any:
    body = json.dumps({"instances": [row], "subject_id": subject}).encode()
    request = urllib.request.Request(
        f"{url}/v1/models/{name}/predict", data=body, headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def _show_metrics(text: str) -> None:
    values: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith("plinth_") and " " in line:
            key, value = line.rsplit(" ", 1)
            metric = key.split("{")[0]
            values[metric] = values.get(metric, 0.0) + float(value)
    count = values.get("plinth_request_latency_seconds_count", 0.0)
    mean_ms = 1000 * values.get("plinth_request_latency_seconds_sum", 0.0) / count if count else 0.0
    batches = values.get("plinth_batch_rows_count", 0.0)
    rows = [
        ("requests answered", number(values.get("plinth_requests_total", 0.0))),
        ("mean server latency", number(mean_ms, "ms")),
        ("predict calls (batches)", number(batches)),
        (
            "mean rows per batch",
            number(values.get("plinth_batch_rows_sum", 0.0) / batches) if batches else "-",
        ),
        ("prediction logs dropped", number(values.get("plinth_prediction_logs_dropped_total", 0.0))),
    ]
    console.print(table("/metrics summary", ["metric", "value"], rows))
