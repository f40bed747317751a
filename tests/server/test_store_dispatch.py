"""The store API's hot path: store calls answered ahead of FastAPI's routing, points sent as
columns, and the answers, errors, metrics and OpenAPI document the same as through FastAPI."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from plinth.core.entities import RunStatus
from plinth.store.http import ServerClient
from plinth.store.points import POINTS, PointColumns
from plinth.store.remote import RemoteStore

API = "/api/v1"


@pytest.fixture
def server(server_factory: Callable[..., Any], tmp_path: Path) -> Any:
    return server_factory(f"sqlite:///{tmp_path / 'meta' / 'plinth.db'}")


def new_run(store: RemoteStore) -> str:
    return store.create_run(
        experiment="e", name=None, params={}, tags={}, environment=None, heartbeat_s=60.0, user="u"
    ).id


def test_points_sent_as_columns_twice_are_stored_once(team_server: Any) -> None:
    store = RemoteStore(ServerClient(team_server.url, token=team_server.admin_token))
    run_id = new_run(store)
    columns = PointColumns.from_rows([(run_id, "loss", s, s, 5, s / 3) for s in range(500)])
    assert columns is not None
    with team_server.client() as http:
        for _ in range(2):
            answer = http.post(f"{API}/metrics", content=columns.to_bytes(), headers={"content-type": POINTS})
            assert answer.status_code == 200
    assert len(store.metric_history(run_id, "loss")) == 500
    assert store.get_run(run_id).metrics == {"loss": 499 / 3}


def test_a_body_that_is_not_points_answers_422(server: Any) -> None:
    with server.client() as http:
        answer = http.post(f"{API}/metrics", content=b"PLPT\x01junk", headers={"content-type": POINTS})
    assert answer.status_code == 422
    assert answer.json()["error"]["type"] == "WireError"


def test_store_calls_answer_as_fastapi_routes_would(server: Any) -> None:
    with server.client() as http, server.client(token="") as anonymous:
        assert anonymous.get(f"{API}/runs/x").status_code == 401
        missing = http.get(f"{API}/runs/nope")
        assert missing.status_code == 404 and missing.json()["error"]["type"] == "NotFound"
        assert missing.headers["x-content-type-options"] == "nosniff"
        unknown = http.get(f"{API}/runs/nope/metrics", params={"bogus": "1"})
        assert unknown.status_code == 422 and "query.bogus" in unknown.json()["error"]["message"]
        assert http.patch(f"{API}/runs/nope").status_code == 405  # a method the path lacks: FastAPI's answer
        assert http.get(f"{API}/no-such-route").status_code == 404
        text = http.get("/metrics").text
    assert 'route="/api/v1/runs/{run_id}"' in text  # latency counted by route template, not by path


def test_the_openapi_document_names_both_bodies_of_metrics(server: Any) -> None:
    with server.client() as http:
        doc = http.get("/openapi.json").json()
    operation = doc["paths"][f"{API}/metrics"]["post"]
    assert set(operation["requestBody"]["content"]) == {"application/json", POINTS}
    assert operation["x-plinth-right"] == "write"


def test_a_remote_run_round_trips_through_the_hot_path(server: Any) -> None:
    store = RemoteStore(ServerClient(server.url, token=server.admin_token))
    run_id = new_run(store)
    store.write_metrics([(run_id, "acc", 0, 1, 2, 0.5), (run_id, "acc", 1, 2, 3, float("nan"))])
    store.end_run(run_id, RunStatus.FINISHED, None, 10)
    run = store.get_run(run_id)
    assert run.status is RunStatus.FINISHED and run.user == "admin"
    assert len(store.metric_history(run_id, "acc")) == 2
    store.close()
