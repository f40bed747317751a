"""Serving under hostile or careless input: ids checked at the edge, bad bodies refused with a
4xx that lists the problems, and a prediction-log writer that outlives anything the store refuses."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression
from starlette.requests import Request
from starlette.testclient import TestClient

import plinth
from loops import run_loop
from plinth.core.entities import PredictionLog
from plinth.core.errors import InvalidInput, PlinthWarning, StoreError
from plinth.core.settings import Settings
from plinth.core.validation import check_id
from plinth.serving.app import create_app
from plinth.serving.body import is_json, parse_json, read_json
from plinth.serving.inputs import RequestError
from plinth.serving.logger import PredictionLogger
from plinth.serving.options import ServeOptions
from plinth.tracking.context import Backend, backend

sqlite_only = pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)
COLUMNS = ["a", "b", "c"]
ROW = {"a": 0.5, "b": 1.5, "c": -2.0}


@pytest.fixture
def server(settings: Settings) -> Iterator[TestClient]:
    """A server for model "m" (three float features, with probabilities) on the parametrized store."""
    plinth.configure(settings)
    x = pd.DataFrame(np.random.default_rng(0).normal(size=(40, 3)), columns=COLUMNS)
    clf = LogisticRegression().fit(x, (x["a"] > 0).astype(int))
    mv = plinth.register_model("m", clf, input_example=x[:3])
    plinth.set_alias("m", "champion", mv.version)
    app = create_app(["m@champion"], settings, ServeOptions(max_body_bytes=100_000, alias_poll_s=3600))
    with TestClient(app) as client:
        yield client


def post(client: TestClient, body: bytes | dict[str, Any], **headers: str) -> Any:
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    return client.post(
        "/v1/models/m/predict", content=content, headers={"content-type": "application/json", **headers}
    )


def logged(client: TestClient) -> list[PredictionLog]:
    client.app.state.plinth.logger.flush()  # type: ignore[attr-defined]
    return backend().store.prediction_logs("m")


# ids ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value", ["f7323449-bf29-40ec-87a8-c167ab9c33f0", "r" * 128, "user@example.com", "Zoë 42", "01J9Z8ABCD"]
)
def test_ids_of_up_to_128_printable_characters_pass(value: str) -> None:
    assert check_id(value, "request id") == value


@pytest.mark.parametrize("value", ["", "   ", "r" * 129, "\ud800", "a\nb", "tab\there", "\x00", 7, None])
def test_other_ids_are_refused(value: object) -> None:
    with pytest.raises(InvalidInput, match="request id"):
        check_id(value, "request id")


def test_a_uuid_request_id_is_logged_as_sent(server: TestClient) -> None:
    request_id = str(uuid.uuid4())
    answer = post(server, {"instances": [ROW], "subject_id": "s-1"}, **{"x-request-id": request_id})
    assert answer.status_code == 200 and answer.json()["request_id"] == request_id
    [entry] = logged(server)
    assert (entry.request_id, entry.subject_id) == (request_id, "s-1")


@sqlite_only
@pytest.mark.parametrize(
    ("headers", "field"),
    [
        ({"x-request-id": "r" * 129}, "x-request-id"),
        ({"x-request-id": b"ab\x85c"}, "x-request-id"),  # NEL, a control character
        ({"x-subject-id": b"\xa0"}, "x-subject-id"),  # a non-breaking space alone
    ],
)
def test_bad_id_headers_are_400(server: TestClient, headers: dict[str, Any], field: str) -> None:
    answer = server.post("/v1/models/m/predict", json={"instances": [ROW]}, headers=headers)
    assert answer.status_code == 400, answer.text
    assert field in answer.json()["error"] and answer.json()["problems"][0]["field"] == field


@sqlite_only
def test_bad_subject_ids_in_the_body_are_4xx(server: TestClient) -> None:
    long = post(server, {"instances": [ROW], "subject_id": "s" * 129})
    assert long.status_code == 422 and long.json()["problems"][0]["field"] == "subject_id"
    surrogate = post(server, b'{"instances": [{"a": 1, "b": 2, "c": 3}], "subject_id": "\\ud800"}')
    assert surrogate.status_code == 400 and surrogate.json()["problems"][0]["field"] == "subject_id"
    assert post(server, {"instances": [ROW], "subject_id": 1234}).status_code == 200
    assert logged(server)[-1].subject_id == "1234"


# bodies ------------------------------------------------------------------------------------------


@sqlite_only
@pytest.mark.parametrize(
    ("body", "status", "field", "needle"),
    [
        (b'{"instances": [{"a": 1' + b"0" * 400 + b', "b": 1, "c": 1}]}', 422, "a", "a finite number"),
        (b'{"columns": ["c", "b", "a"], "data": [[1, 2]]}', 422, "data[0]", "a list of 3 values"),
        (b'{"columns": ["c", "b", "a"], "data": [[1, 2, 3], 5]}', 422, "data[1]", "a list of 3 values"),
        (b'{"columns": [1, 2, 3], "data": [[1, 2, 3]]}', 422, "columns", "a, b, c"),
        (b'{"columns": 5, "data": [[1, 2, 3]]}', 422, "columns", "a, b, c"),
        (b'{"instances": [{"\\ud800": 1, "b": 2, "c": 3}]}', 400, "instances[0]", "valid Unicode"),
        (b'{"instances": [{"a": "\\udfff", "b": 2, "c": 3}]}', 400, "instances[0].a", "valid Unicode"),
        (b'{"instances": [{"a": true, "b": 2, "c": 3}]}', 422, "a", "a number"),
        (b'{"data": [[1, false, 3]]}', 422, "b", "a number"),
        (b'{"instances": [{"a": 1, "b": 2, "c": 3}], "output": "logits"}', 422, None, '"output"'),
    ],
)
def test_bad_bodies_are_4xx_with_the_problems_listed(
    server: TestClient, body: bytes, status: int, field: str | None, needle: str
) -> None:
    answer = post(server, body)
    assert answer.status_code == status, answer.text
    problems = answer.json()["problems"]
    if field is None:
        assert needle in answer.json()["error"]
    else:
        assert problems[0]["field"] == field and needle in json.dumps(problems), problems


def test_raw_surrogate_bytes_as_a_key_are_400_and_never_logged(server: TestClient) -> None:
    body = b'{"instances": [{"a": 1, "b": 2, "c": 3, "\xed\xa0\x80": 3}]}'  # U+D800 encoded, not escaped
    answer = post(server, body)
    assert answer.status_code == 400, answer.text
    assert f"ed at byte offset {body.index(0xED)}" in answer.json()["error"]
    assert post(server, {"instances": [ROW]}).status_code == 200
    assert sorted(e.status for e in logged(server)) == [200, 400]
    assert server.get("/readyz").json() == {"status": "ready", "degraded": {}}
    assert "plinth_prediction_logs_dropped_total 0.0" in server.get("/metrics").text


class Lengths:
    """A model over a text column: the length of each text plus the number."""

    def predict(self, data: pd.DataFrame) -> Any:
        return data["s"].str.len().to_numpy() + data["v"].to_numpy()


def test_raw_surrogate_bytes_in_a_text_value_are_400(settings: Settings) -> None:
    plinth.configure(settings)
    example = pd.DataFrame({"s": ["x"], "v": [1.0]}).astype({"s": object})
    plinth.register_model("t", Lengths(), input_example=example, flavor="python")
    with TestClient(create_app(["t"], settings)) as client:
        refused = client.post(
            "/v1/models/t/predict",
            content=b'{"instances": [{"s": "x\xed\xa0\x80y", "v": 1}]}',
            headers={"content-type": "application/json"},
        )
        assert refused.status_code == 400 and "not valid UTF-8" in refused.json()["error"], refused.text
        answer = client.post("/v1/models/t/predict", json={"instances": [{"s": "xy\u00e9", "v": 1}]})
        assert answer.status_code == 200 and answer.json()["predictions"] == [4.0]
        assert client.get("/readyz").json()["degraded"] == {}


@pytest.mark.parametrize(
    ("body", "offset"),
    [(b'{"a": NaN, "b": "\xff"}', 17), (b'\xef\xbb\xbf{"a": NaN, "b": "\xc3"}', 20)],
)
def test_bodies_that_are_not_utf8_are_400_naming_the_byte(body: bytes, offset: int) -> None:
    with pytest.raises(RequestError, match=f"at byte offset {offset}") as refused:
        parse_json(body)
    assert refused.value.status == 400 and refused.value.problems[0]["field"] == "<body>"


def test_a_byte_order_mark_is_ignored() -> None:
    assert parse_json(b'\xef\xbb\xbf{"a": NaN, "b": "\xc3\xa9"}')["b"] == "\u00e9"


@sqlite_only
@pytest.mark.parametrize(
    ("ctype", "status"),
    [
        ("application/json", 200),
        ("application/json; charset=utf-8", 200),
        ("Application/JSON", 200),
        ("application/vnd.plinth+json", 200),
        ("application/jsonx", 415),
        ("application/json-seq", 415),
        ("application/+json", 415),
        ("text/json", 415),
        ("text/plain", 415),
    ],
)
def test_only_json_media_types_are_taken(server: TestClient, ctype: str, status: int) -> None:
    body = json.dumps({"instances": [ROW]}).encode()
    answer = server.post("/v1/models/m/predict", content=body, headers={"content-type": ctype})
    assert answer.status_code == status, answer.text
    assert is_json(ctype) is (status == 200)


def test_a_body_without_content_length_is_read_no_further_than_the_limit() -> None:
    chunks_read = 0

    async def receive() -> dict[str, Any]:
        nonlocal chunks_read
        chunks_read += 1
        return {"type": "http.request", "body": b" " * 65_536, "more_body": chunks_read < 1000}

    scope = {"type": "http", "method": "POST", "headers": [(b"content-type", b"application/json")]}
    with pytest.raises(RequestError) as refused:
        run_loop(read_json(Request(scope, receive), 200_000))
    assert refused.value.status == 413 and chunks_read == 4  # the 4th 64 KiB chunk passes 200 kB


@sqlite_only
def test_a_chunked_body_past_the_limit_is_413(server: TestClient) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'{"instances": ['
        for _ in range(5000):
            yield json.dumps(ROW).encode() + b","
        yield json.dumps(ROW).encode() + b"]}"

    answer = server.post(
        "/v1/models/m/predict", content=chunks(), headers={"content-type": "application/json"}
    )
    assert answer.status_code == 413 and "larger" in answer.json()["error"]
    assert answer.headers["connection"] == "close"


@sqlite_only
def test_probabilities_from_a_model_without_them_are_422(settings: Settings) -> None:
    class Plain:
        def predict(self, data: Any) -> Any:
            return np.zeros(len(data))

    plinth.configure(settings)
    plinth.register_model("plain", Plain(), input_example=pd.DataFrame([ROW]), flavor="python")
    with TestClient(create_app(["plain"], settings)) as client:
        answer = client.post("/v1/models/plain/predict", json={"instances": [ROW], "output": "proba"})
    assert answer.status_code == 422 and "no probabilities" in answer.json()["error"]


# labels ------------------------------------------------------------------------------------------


def test_label_ids_are_checked_over_http(server: TestClient) -> None:
    def labels(body: bytes) -> Any:
        return server.post("/v1/models/m/labels", content=body, headers={"content-type": "application/json"})

    surrogate = labels(b'{"labels": [{"request_id": "\\ud800", "label": 1}]}')
    assert surrogate.status_code == 400 and surrogate.json()["problems"][0]["field"] == "labels[0].request_id"
    long = labels(json.dumps({"labels": [{"request_id": "r" * 129, "label": 1}]}).encode())
    assert long.status_code == 422 and "128" in long.json()["problems"][0]["expected"]
    subject = labels(
        json.dumps({"labels": [{"request_id": "r1", "label": 1, "subject_id": "a\tb"}]}).encode()
    )
    assert subject.status_code == 422 and "subject id" in subject.json()["problems"][0]["expected"]
    uuid_id = labels(json.dumps({"labels": [{"request_id": str(uuid.uuid4()), "label": 1}]}).encode())
    assert uuid_id.status_code == 200 and uuid_id.json()["stored"] == 1


def test_label_ids_are_checked_by_the_api_and_the_cli(
    server: TestClient, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from plinth.cli.main import main

    with pytest.raises(InvalidInput, match="none stored"):
        plinth.log_labels("m", [("\ud800", 1), ("ok", 1)])
    with pytest.raises(InvalidInput, match="subject id"):
        plinth.log_labels("m", [("ok", 1, "x" * 129)])
    assert plinth.log_labels("m", pd.DataFrame({"request_id": ["r1"], "label": [1], "subject_id": [42]})) == 1
    assert backend().store.count_labels(subject_id="42") == 1
    path = tmp_path / "labels.csv"
    path.write_text("request_id,label\n" + "r" * 129 + ",1\n")
    assert main(["labels", "log", "m", "--file", str(path)]) == 2
    assert "at most 128 characters" in capsys.readouterr().err


def test_lookups_by_an_id_no_store_can_hold_find_nothing(tracking: Backend) -> None:
    store = tracking.store
    store.write_prediction_logs([entry(1, "s-1")])
    odd = "\udcff"  # what an argument that is not UTF-8 decodes to
    assert store.find_prediction(odd) is None and store.label_of("m", odd) is None
    assert store.count_prediction_logs(subject_id=odd) == store.count_labels(subject_id=odd) == 0
    assert store.delete_prediction_logs(subject_id=odd)[0] == store.delete_labels(subject_id=odd)[0] == 0
    assert store.count_prediction_logs(subject_id="s-1") == 1


# the prediction-log writer -----------------------------------------------------------------------


class FlakyStore:
    """Takes prediction logs, except those whose subject is "poison", and fails `outages` times first."""

    def __init__(self, outages: int = 0) -> None:
        self.outages = outages
        self.logs: list[PredictionLog] = []
        self.calls = threading.Semaphore(0)

    def write_prediction_logs(self, logs: list[PredictionLog]) -> None:
        self.calls.release()
        if self.outages:
            self.outages -= 1
            raise StoreError("The metadata store failed to write prediction logs: connection refused.")
        if any(entry.subject_id == "poison" for entry in logs):
            raise UnicodeEncodeError("utf-8", "\ud800", 0, 1, "surrogates not allowed")
        self.logs += logs


def entry(i: int, subject: str | None = None) -> PredictionLog:
    return PredictionLog(f"r{i}", "m", 1, "primary", i, 1.0, subject, "{}", "[0]", 200, 1)


def test_a_log_the_store_refuses_is_counted_and_the_others_are_written() -> None:
    store = FlakyStore()
    lost: list[int] = []
    logger = PredictionLogger(store, 100, interval_s=3600, on_drop=lost.append)  # type: ignore[arg-type]
    for i in range(9):
        logger.put(entry(i, "poison" if i == 4 else None))
    with pytest.warns(PlinthWarning, match="refused the prediction log of request 'r4'"):
        logger.flush()
    assert [e.request_id for e in store.logs] == [f"r{i}" for i in range(9) if i != 4]
    assert (logger.refused, lost, logger.pending) == (1, [1], 0)
    assert "1 refused by the store" in (logger.trouble or "")
    logger.put(entry(10))
    logger.flush()  # no second warning: one per logger
    assert store.logs[-1].request_id == "r10"
    logger.close()


def test_logs_wait_while_the_store_is_unreachable() -> None:
    store = FlakyStore(outages=1)
    failures: list[None] = []
    logger = PredictionLogger(store, 100, interval_s=3600, on_failure=lambda: failures.append(None))  # type: ignore[arg-type]
    for i in range(3):
        logger.put(entry(i))
    with pytest.warns(PlinthWarning, match="not taking prediction logs"):
        logger.flush()
    assert (logger.pending, len(failures)) == (3, 1) and "retried" in (logger.trouble or "")
    logger.flush()
    assert [e.request_id for e in store.logs] == ["r0", "r1", "r2"] and logger.trouble is None
    logger.close()


def test_logs_that_cannot_be_written_before_exit_are_counted() -> None:
    store = FlakyStore(outages=10**6)
    lost: list[int] = []
    logger = PredictionLogger(store, 100, interval_s=3600, on_drop=lost.append)  # type: ignore[arg-type]
    logger.put(entry(1))
    with pytest.warns(PlinthWarning):
        logger.close()
    assert (logger.dropped, lost, logger.pending) == (1, [1], 0)


def test_the_writer_thread_outlives_any_exception() -> None:
    class Broken(FlakyStore):
        def write_prediction_logs(self, logs: list[PredictionLog]) -> None:
            self.calls.release()
            raise RuntimeError("not a PlinthError")

    store = Broken()
    logger = PredictionLogger(store, 100, interval_s=0.01)  # type: ignore[arg-type]
    with pytest.warns(PlinthWarning):
        for i in range(3):
            logger.put(entry(i))
            assert store.calls.acquire(timeout=10)  # the thread took it, failed, and went on
    logger.close()
    assert logger.refused == 3


def test_a_refused_log_does_not_stop_logging_and_readyz_says_so(server: TestClient) -> None:
    state = server.app.state.plinth  # type: ignore[attr-defined]
    assert server.get("/readyz").json() == {"status": "ready", "degraded": {}}
    with pytest.warns(PlinthWarning, match="refused the prediction log of request 'r0'"):
        # what the edge refuses, put straight into the queue: both databases refuse a lone surrogate
        state.logger.put(entry(0, "\ud800"))
        ids = [post(server, {"instances": [ROW]}).json()["request_id"] for _ in range(3)]
        assert {e.request_id for e in logged(server)} == set(ids)
    ready = server.get("/readyz")
    assert ready.status_code == 200
    assert "1 prediction logs were not written" in ready.json()["degraded"]["prediction_logs"]
    metrics = server.get("/metrics").text
    assert "plinth_prediction_logs_dropped_total 1.0" in metrics
    assert 'plinth_write_failures_total{writer="prediction_logs"}' in metrics
    post(server, {"instances": [ROW]})
    assert len(logged(server)) == 4  # still writing


@sqlite_only
def test_a_swap_whose_audit_fails_is_served_and_reported(
    server: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    state = server.app.state.plinth  # type: ignore[attr-defined]
    [deployment] = state.deployments()

    def refuse(*args: Any) -> None:
        raise StoreError("The metadata store failed to record an audit event: disk full.")

    x = pd.DataFrame([ROW, {**ROW, "a": -0.5}, ROW])
    mv = plinth.register_model("m", LogisticRegression().fit(x, [1, 0, 1]), input_example=x[:2])
    plinth.set_alias("m", "champion", mv.version)
    monkeypatch.setattr(state.be.store, "record_audit", refuse)
    assert run_loop(deployment.refresh()) == "swapped"
    assert post(server, {"instances": [ROW]}).json()["version"] == mv.version
    degraded = server.get("/readyz").json()["degraded"]
    assert "serving.swap 1 -> 2" in degraded["audit"] and "disk full" in degraded["audit"]
    assert 'plinth_write_failures_total{writer="audit"} 1.0' in server.get("/metrics").text
