"""The online server over real HTTP: endpoints, validation, batching, swaps, canary, shadow, logs."""

from __future__ import annotations

import collections
import concurrent.futures
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

import plinth
from plinth.core.settings import Settings
from plinth.tracking.context import backend
from waiting import wait_until

sqlite_only = pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)


class Broken:
    """A model whose every prediction fails (its input example included)."""

    def predict(self, data: Any) -> Any:
        raise RuntimeError("this version is broken")


def register(
    cancer: tuple[Any, Any, LogisticRegression], name: str = "bc", alias: str = "champion"
) -> plinth.ModelVersion:
    x, _y, clf = cancer
    mv = plinth.register_model(name, clf, input_example=x[:3])
    plinth.set_alias(name, alias, mv.version)
    return mv


def records(x: Any, rows: slice) -> list[dict[str, float]]:
    return x[rows].to_dict("records")


def test_endpoints(serve: Callable[..., Any], cancer: tuple[Any, Any, LogisticRegression]) -> None:
    x, _y, clf = cancer
    register(cancer)
    server = serve(["bc@champion"])
    answer = server.predict("bc", {"instances": records(x, slice(0, 5)), "subject_id": "s-1"})
    assert answer.status_code == 200
    body = answer.json()
    assert body["predictions"] == clf.predict(x[:5]).tolist()
    assert (body["model"], body["version"]) == ("bc", 1) and len(body["request_id"]) == 26
    proba = server.predict(
        "bc", {"columns": list(x.columns), "data": x[:2].values.tolist(), "output": "proba"}
    )
    np.testing.assert_allclose(proba.json()["predictions"], clf.predict_proba(x[:2]))
    reordered = list(reversed(x.columns))
    table = server.predict("bc", {"columns": reordered, "data": x[reordered][:2].values.tolist()})
    assert table.json()["predictions"] == clf.predict(x[:2]).tolist()
    assert server.client.get("/healthz").json() == {"status": "ok"}
    assert server.client.get("/readyz").status_code == 200
    [served] = server.client.get("/v1/models").json()
    assert (served["name"], served["version"], served["role"], served["flavor"]) == (
        "bc",
        1,
        "primary",
        "sklearn",
    )
    metrics = server.client.get("/metrics").text
    assert 'plinth_requests_total{code="200",model="bc",route="primary",version="1"} 3.0' in metrics
    assert "plinth_request_latency_seconds_bucket" in metrics and "plinth_batch_rows_count" in metrics
    spec = server.client.get("/openapi.json").json()
    assert "/v1/models/{name}/predict" in spec["paths"]
    assert server.client.get("/docs").status_code == 200


@sqlite_only
@pytest.mark.parametrize(
    ("body", "headers", "status", "needle"),
    [
        (b"{not json", None, 400, "not valid JSON"),
        (b'{"instances": []}', None, 400, "empty"),
        (b"[1, 2]", None, 400, "JSON object"),
        (b'{"rows": []}', None, 400, '"instances"'),
        (b'{"instances": [{"a": 1}]}', {"content-type": "text/plain"}, 415, "Content-Type"),
        (b'{"instances": [[[[[[1]]]]]]}', None, 422, "instances[0]"),
        (b'{"data": [[1, 2]]}', None, 422, "30 values"),
        (b'{"instances": [{"mean radius": 1}], "output": "logits"}', None, 422, '"output"'),
        (b'{"instances": [{"mean radius": 1e999}]}', None, 422, "finite"),
    ],
)
def test_bad_requests_are_4xx_with_a_reason(
    serve: Callable[..., Any],
    cancer: tuple[Any, Any, LogisticRegression],
    body: bytes,
    headers: dict[str, str] | None,
    status: int,
    needle: str,
) -> None:
    register(cancer)
    server = serve(["bc@champion"])
    if b"1e999" in body:  # a full row with one infinite value
        x = cancer[0]
        row = records(x, slice(0, 1))[0] | {"mean radius": float("inf")}
        body = json.dumps({"instances": [row]}).encode()
    answer = server.client.post(
        "/v1/models/bc/predict", content=body, headers=headers or {"content-type": "application/json"}
    )
    assert answer.status_code == status, answer.text
    assert needle in answer.json()["error"]


class Lengths:
    """A model over a text column and a number: the text's length plus the number."""

    def predict(self, data: Any) -> Any:
        return data["s"].str.len().to_numpy() + data["v"].to_numpy()


@pytest.mark.parametrize("text_dtype", ["str", "object"])
def test_text_columns_are_served(serve: Callable[..., Any], text_dtype: str) -> None:
    example = pd.DataFrame({"s": ["ab", "c"], "v": [1.0, 2.0]}).astype({"s": text_dtype})
    plinth.register_model("t", Lengths(), input_example=example, flavor="python")
    server = serve(["t"])
    records_answer = server.predict("t", {"instances": [{"s": "abc", "v": 1}, {"s": "", "v": 0.5}]})
    assert records_answer.status_code == 200, records_answer.text
    assert records_answer.json()["predictions"] == [4.0, 0.5]
    table = server.predict("t", {"columns": ["v", "s"], "data": [[1.0, "xy"]]})
    assert table.json()["predictions"] == [3.0]
    wrong = server.predict("t", {"instances": [{"s": 5, "v": 1.0}]})
    assert wrong.status_code == 422 and wrong.json()["problems"][0]["field"] == "s"


@sqlite_only
def test_signature_problems_are_listed(
    serve: Callable[..., Any], cancer: tuple[Any, Any, LogisticRegression]
) -> None:
    x = cancer[0]
    register(cancer)
    server = serve(["bc@champion"], max_rows=10, max_body_bytes=200_000)
    row = records(x, slice(0, 1))[0]
    wrong = {**row, "mean radius": "big", "extra": 1}
    del wrong["mean texture"]
    answer = server.predict("bc", {"instances": [wrong]})
    assert answer.status_code == 422
    fields = {(p["field"], p["got"].split(" ")[0]) for p in answer.json()["problems"]}
    assert ("mean texture", "missing") in fields and ("extra", "present") in fields
    typed = server.predict("bc", {"instances": [{**row, "mean radius": "big"}]})
    assert typed.json()["problems"][0]["field"] == "mean radius"
    assert server.predict("bc", {"instances": [row] * 11}).status_code == 413
    huge = server.client.post(
        "/v1/models/bc/predict", content=b" " * 300_000, headers={"content-type": "application/json"}
    )
    assert huge.status_code == 413
    # no Content-Length: refused once 200 kB are read, and the connection closes
    chunked = server.client.post(
        "/v1/models/bc/predict",
        content=iter([b" " * 65_536] * 1000),
        headers={"content-type": "application/json"},
    )
    assert chunked.status_code == 413 and chunked.headers["connection"] == "close"
    assert server.predict("nope", {"instances": [row]}).status_code == 404


@sqlite_only
def test_concurrent_requests_are_batched_and_each_gets_its_own_rows(
    serve: Callable[..., Any], cancer: tuple[Any, Any, LogisticRegression]
) -> None:
    x, _y, clf = cancer
    register(cancer)
    server = serve(["bc@champion"], max_batch=64, max_wait_ms=5)
    expected = clf.predict(x)

    def call(i: int) -> tuple[int, list[int]]:
        rows = slice(i % 500, i % 500 + 1 + i % 3)
        return i, server.predict("bc", {"instances": records(x, rows)}).json()["predictions"]

    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        answers = list(pool.map(call, range(400)))
    for i, predictions in answers:
        assert predictions == expected[i % 500 : i % 500 + 1 + i % 3].tolist()
    metrics = server.client.get("/metrics").text
    batches = float(
        next(ln.split()[-1] for ln in metrics.splitlines() if ln.startswith("plinth_batch_rows_count"))
    )
    assert batches < 400  # requests shared predict calls


@sqlite_only
def test_alias_move_under_load_fails_no_request(
    serve: Callable[..., Any], cancer: tuple[Any, Any, LogisticRegression]
) -> None:
    x = cancer[0]
    register(cancer)
    server = serve(["bc@champion"], alias_poll_s=0.1)
    row = {"instances": records(x, slice(0, 2))}
    seen: collections.Counter[Any] = collections.Counter()
    stop = time.monotonic() + 30

    def hammer() -> None:
        while time.monotonic() < stop:
            answer = server.predict("bc", row)
            seen[answer.status_code if answer.status_code != 200 else answer.json()["version"]] += 1
            if seen[2] > 50:
                return

    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        workers = [pool.submit(hammer) for _ in range(4)]
        wait_until(lambda: seen[1] or any(w.done() for w in workers), "answers from version 1")
        mv2 = register(cancer)  # version 2, alias moved
        for worker in workers:
            worker.result()
    assert mv2.version == 2 and seen[1] > 0 and seen[2] > 0
    assert set(seen) == {1, 2}  # no status codes: nothing failed
    actions = [e.action for e in backend().store.audit_events(entity_id="bc")]
    assert "serving.swap" in actions


@sqlite_only
def test_broken_version_is_not_swapped_in(
    serve: Callable[..., Any], cancer: tuple[Any, Any, LogisticRegression]
) -> None:
    x = cancer[0]
    register(cancer)
    server = serve(["bc@champion"], alias_poll_s=0.1)
    broken = plinth.register_model("bc", Broken(), input_example=x[:2], flavor="python")
    plinth.set_alias("bc", "champion", broken.version)
    [served] = wait_until(
        lambda: [m for m in server.client.get("/v1/models").json() if m["last_error"]],
        "the failed swap to version 2",
    )
    assert served["version"] == 1 and "this version is broken" in served["last_error"]
    assert server.predict("bc", {"instances": records(x, slice(0, 1))}).json()["version"] == 1
    events = [e for e in backend().store.audit_events(entity_id="bc") if e.action == "serving.swap_failed"]
    assert events and events[0].after.startswith("2:")


@sqlite_only
def test_a_model_failing_on_a_request_is_a_logged_500(
    serve: Callable[..., Any], caplog: pytest.LogCaptureFixture
) -> None:
    plinth.register_model("broken", Broken(), flavor="python")  # no input example: it loads
    server = serve(["broken/1"])
    answer = server.predict("broken", {"instances": [[1.0, 2.0]]})
    assert answer.status_code == 500
    assert answer.json() == {
        "error": "The model failed on this request: RuntimeError: this version is broken",
        "problems": [],
    }
    assert "this version is broken" in caplog.text
    wait_until(lambda: backend().store.prediction_logs("broken"), "the failed request logged")
    [logged] = backend().store.prediction_logs("broken")
    assert logged.status == 500


@sqlite_only
def test_an_unknown_model_is_a_404_naming_the_served_ones(
    serve: Callable[..., Any], cancer: tuple[Any, Any, LogisticRegression]
) -> None:
    register(cancer)
    server = serve(["bc@champion"])
    for path in ("/v1/models/nope/predict", "/v1/models/nope/labels"):
        answer = server.client.post(path, json={"instances": [{"a": 1}]})
        assert answer.status_code == 404
        assert answer.json() == {"error": "Model 'nope' is not served here; served: bc.", "problems": []}


@sqlite_only
def test_canary_share_and_shadow_logs(
    serve: Callable[..., Any], cancer: tuple[Any, Any, LogisticRegression]
) -> None:
    x = cancer[0]
    register(cancer)
    register(cancer, alias="challenger")  # version 2
    server = serve(["bc@champion"], canary=("bc@challenger", 0.3), shadow="bc@challenger")
    answers = [
        server.predict("bc", {"instances": records(x, slice(i % 500, i % 500 + 1))}) for i in range(600)
    ]
    assert {a.status_code for a in answers} == {200}, [a.text for a in answers if a.status_code != 200][:3]
    versions = collections.Counter(a.json()["version"] for a in answers)
    assert 0.22 < versions[2] / 600 < 0.38  # 30% within tolerance
    shadowed = 'plinth_requests_total{code="200",model="bc",route="shadow",version="2"} 600.0'
    wait_until(lambda: shadowed in server.client.get("/metrics").text, "the shadow's 600 answers")
    served = {m["role"]: m["version"] for m in server.client.get("/v1/models").json()}
    assert served == {"primary": 1, "canary": 2, "shadow": 2}


@sqlite_only
def test_shadow_answers_are_logged_not_returned(
    serve: Callable[..., Any], cancer: tuple[Any, Any, LogisticRegression], settings: Settings
) -> None:
    x = cancer[0]
    register(cancer)
    register(cancer, alias="challenger")
    server = serve(["bc@champion"], shadow="bc@challenger")
    ids = {
        server.predict("bc", {"instances": records(x, slice(i, i + 1))}).json()["request_id"]
        for i in range(20)
    }
    server.client.close()

    def logged() -> tuple[list[Any], list[Any]] | None:
        logs = backend().store.prediction_logs("bc")
        shadow = [log for log in logs if log.route == "shadow"]
        return (logs, shadow) if len(shadow) == 20 else None

    logs, shadow = wait_until(logged, "20 shadow answers in the prediction log")
    assert {log.request_id for log in shadow} == ids and {log.version for log in shadow} == {2}
    assert {log.request_id for log in logs if log.route == "primary"} == ids


@sqlite_only
@pytest.mark.slow
def test_prediction_logs_are_complete_after_sigterm(
    cancer: tuple[Any, Any, LogisticRegression], settings: Settings
) -> None:
    import socket

    import httpx

    x = cancer[0]
    plinth.configure(settings)
    register(cancer)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {
        **os.environ,
        "PLINTH_HOME": settings.home,
        "PLINTH_STORE": settings.resolved_store_url,
        "PLINTH_TOKEN": settings.token or "",
    }
    plinth_cli = [
        sys.executable,
        "-m",
        "plinth.cli.main",
        "serve",
        "bc@champion",
        "--port",
        str(port),
        "--batch",
        "bc=16/1",
    ]
    server = subprocess.Popen(plinth_cli, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30)

    def ready() -> bool:
        assert server.poll() is None, server.stderr.read() if server.stderr else ""
        try:
            return client.get("/readyz").status_code == 200
        except httpx.TransportError:
            return False

    wait_until(ready, "the server to be ready")
    body = {"instances": records(x, slice(0, 1))}
    for i in range(300):
        assert client.post("/v1/models/bc/predict", json={**body, "subject_id": f"s{i}"}).status_code == 200
    client.close()
    server.send_signal(signal.SIGTERM)
    # uvicorn shuts down gracefully, then re-raises SIGTERM so the exit status says how it ended
    assert server.wait(timeout=60) in (0, -signal.SIGTERM), server.stderr.read() if server.stderr else ""
    logs = backend().store.prediction_logs("bc")
    assert sorted(log.subject_id for log in logs) == sorted(f"s{i}" for i in range(300))


@sqlite_only
def test_batching_is_configured_per_model(
    serve: Callable[..., Any], cancer: tuple[Any, Any, LogisticRegression]
) -> None:
    x, _y, clf = cancer
    register(cancer)
    plinth.register_model("other", clf, input_example=x[:3])
    server = serve(["bc@champion", "other"], per_model={"bc": {"batching": False}, "other": {"max_batch": 8}})
    state = server.app.state.plinth
    assert state.primary["bc"].current.batchers == {}
    assert {b.max_batch for b in state.primary["other"].current.batchers.values()} == {8}
    for name in ("bc", "other"):
        assert (
            server.predict(name, {"instances": records(x, slice(0, 2))}).json()["predictions"]
            == clf.predict(x[:2]).tolist()
        )


@pytest.mark.parametrize(
    ("rule", "expected"),
    [
        ("bc=off", ("bc", {"batching": False})),
        ("bc=64", ("bc", {"batching": True, "max_batch": 64})),
        ("bc=32/2.5", ("bc", {"batching": True, "max_batch": 32, "max_wait_ms": 2.5})),
    ],
)
def test_batch_rules(rule: str, expected: tuple[str, dict[str, Any]]) -> None:
    from plinth.serving.options import parse_batch

    assert parse_batch(rule) == expected


@pytest.mark.parametrize("rule", ["bc", "=off", "bc=0", "bc=x", "bc=8/-1"])
def test_bad_batch_rules_are_refused(rule: str) -> None:
    from plinth.core.errors import InvalidInput
    from plinth.serving.options import parse_batch

    with pytest.raises(InvalidInput):
        parse_batch(rule)


def test_alias_poll_interval_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    from plinth.core.errors import ConfigError

    monkeypatch.setenv("PLINTH_ALIAS_POLL_S", "0.5")
    assert Settings.from_env().alias_poll_s == 0.5
    monkeypatch.setenv("PLINTH_ALIAS_POLL_S", "soon")
    with pytest.raises(ConfigError, match="PLINTH_ALIAS_POLL_S"):
        Settings.from_env()


def test_labels_over_http_join_the_logged_requests(
    serve: Callable[..., Any], cancer: tuple[Any, Any, LogisticRegression], settings: Settings
) -> None:
    x, y, clf = cancer
    register(cancer)
    server = serve(["bc@champion"])
    ids = [
        server.predict("bc", {"instances": records(x, slice(i, i + 1))}).json()["request_id"]
        for i in range(8)
    ]
    body = {
        "labels": [{"request_id": r, "label": int(y.iloc[i]), "subject_id": "s-9"} for i, r in enumerate(ids)]
    }
    answer = server.client.post("/v1/models/bc/labels", json=body)
    assert answer.status_code == 200 and answer.json() == {"model": "bc", "stored": 8}
    wait_until(lambda: len(backend().store.prediction_logs("bc")) >= 8, "8 logged requests")
    report = plinth.performance("bc")
    assert report.overall.labeled == 8
    assert report.overall.metrics["accuracy"] == (clf.predict(x[:8]) == y[:8]).mean()
    assert backend().store.count_labels(subject_id="s-9") == 8

    bad = server.client.post("/v1/models/bc/labels", json={"labels": [{"request_id": "", "label": 1}]})
    assert bad.status_code == 422 and bad.json()["problems"][0]["field"] == "labels[0]"
    assert server.client.post("/v1/models/bc/labels", json={"labels": []}).status_code == 400
    assert server.client.post("/v1/models/bc/labels", json={"labels": [{"label": 1}]}).status_code == 422
    assert server.client.post("/v1/models/other/labels", json=body).status_code == 404
    assert "/v1/models/{name}/labels" in server.client.get("/openapi.json").json()["paths"]
