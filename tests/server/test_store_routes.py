"""The store API of the team server: bad requests answer 4xx with a message, retries write nothing
twice, the principal is the run's user, and binary results come back whole."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi import FastAPI

import plinth
from plinth.core.access import DEFAULT_WORKSPACE, Role
from plinth.core.entities import PredictionLog, RunStatus
from plinth.core.errors import ConflictError, Forbidden, NotFound, ServerUnavailable, Unauthorized
from plinth.core.identity import PrincipalKind
from plinth.core.settings import Settings
from plinth.store import rpc, segments
from plinth.store.base import NewModelVersion, NewRun, SealedManifest
from plinth.store.http import RetryPolicy, ServerClient
from plinth.store.remote import RemoteStore

API = "/api/v1"


@pytest.fixture
def server(server_factory: Callable[..., Any], tmp_path: Path) -> Any:
    return server_factory(f"sqlite:///{tmp_path / 'meta' / 'plinth.db'}")


@pytest.fixture
def store(server: Any) -> RemoteStore:
    return RemoteStore(ServerClient(server.url, token=server.admin_token))


def new_run(store: RemoteStore, user: str = "mallory") -> str:
    run = store.create_run(
        experiment="e", name=None, params={}, tags={}, environment=None, heartbeat_s=60.0, user=user
    )
    return run.id


def token_for(server: Any, user: str, role: Role) -> str:
    identity = server.app.state.plinth.identity
    identity.set_member(DEFAULT_WORKSPACE, user, PrincipalKind.USER, role, by="tests")
    _, secret = identity.create_token(
        name="t",
        principal=user,
        kind=PrincipalKind.USER,
        workspace=None,
        role=None,
        expires_ms=None,
        by="tests",
    )
    return str(secret)


def test_the_run_is_the_principals_whatever_user_the_client_names(store: RemoteStore) -> None:
    run = store.get_run(new_run(store, user="mallory"))
    assert run.user == "admin"
    assert store.audit_events(entity_id=run.id)[0].actor.startswith("admin")


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        (b"{not json", 400, "not valid JSON"),
        (b"[1, 2]", 422, "a JSON object of the arguments"),
        (b'{"params": {"lr": 0.1}}', 422, "body.params.lr: expected a string"),
        (b'{"params": {"lr": "0.1"}, "extra": 1}', 422, "body.extra"),
        (b"{}", 422, "body.params: expected a value"),
    ],
)
def test_a_bad_body_answers_4xx_naming_what_is_wrong(
    server: Any, store: RemoteStore, body: bytes, status: int, message: str
) -> None:
    run_id = new_run(store)
    with server.client() as http:
        answer = http.post(
            f"{API}/runs/{run_id}/params", content=body, headers={"content-type": "application/json"}
        )
    assert answer.status_code == status
    assert message in answer.json()["error"]["message"]


@pytest.mark.parametrize(
    ("verb", "path", "status", "kind"),
    [
        ("GET", "/runs/no-such-run", 404, "NotFound"),
        ("GET", "/models/churn/version?version=three", 422, "WireError"),
        ("GET", "/runs/x/artifacts?nope=1", 422, "WireError"),
        ("GET", "/predictions/table", 422, "WireError"),
        ("POST", "/runs/search", 422, "WireError"),
        ("GET", "/no/such/route", 404, "NotFound"),
    ],
)
def test_unknown_ids_and_bad_parameters_answer_4xx(
    server: Any, verb: str, path: str, status: int, kind: str
) -> None:
    with server.client() as http:
        answer = http.request(verb, API + path, content=b'{"where": {"op": "="}}' if verb == "POST" else None)
    assert answer.status_code == status, answer.text
    error = answer.json()["error"]
    assert error["type"] == kind and error["message"]


def test_a_filter_built_by_hand_is_held_to_the_parsers_rules(server: Any) -> None:
    bad = {"$type": "Compare", "field": {"kind": "attributes", "name": "nope"}, "op": "=", "value": 1}
    body = {"experiments": None, "where": bad, "order_by": [], "limit": None, "now_ms": 0}
    with server.client() as http:
        answer = http.post(f"{API}/runs/search", json=body)
    assert answer.status_code == 422 and "Unknown run attribute" in answer.json()["error"]["message"]


def test_errors_come_back_as_the_same_kinds(server: Any, store: RemoteStore) -> None:
    run_id = new_run(store)
    store.log_params(run_id, {"lr": "0.1"})
    with pytest.raises(ConflictError, match="already logged"):
        store.log_params(run_id, {"lr": "0.2"})
    with pytest.raises(NotFound, match="plinth runs list"):
        store.get_run("nope")
    with pytest.raises(Unauthorized):
        RemoteStore(ServerClient(server.url, token="plt_wrong")).list_experiments()
    viewer = RemoteStore(ServerClient(server.url, token=token_for(server, "vera", Role.VIEWER)))
    assert viewer.get_run(run_id).id == run_id
    with pytest.raises(Forbidden):
        viewer.set_tags(run_id, {"a": "b"})
    with pytest.raises(Forbidden):
        viewer.prediction_logs("churn")


def test_the_same_metric_batch_sent_twice_is_stored_once(team_server: Any) -> None:
    server = team_server  # SQLite, then PostgreSQL (where points are appended with COPY)
    store = RemoteStore(ServerClient(server.url, token=server.admin_token))
    run_id = new_run(store)
    points = [[run_id, "loss", step, 1000 + step, 5, 1.0 / (step + 1)] for step in range(100)]
    with server.client() as http:
        for _ in range(2):
            assert http.post(f"{API}/metrics", json={"points": points}).status_code == 200
        partly = [*points[50:], [run_id, "loss", 100, 2000, 5, 0.0]]
        assert http.post(f"{API}/metrics", json={"points": partly}).status_code == 200
    assert len(store.metric_history(run_id, "loss")) == 101


def lose_the_first_answer(path: str) -> Callable[[FastAPI], None]:
    """An app change: the first request to `path` is served, but its answer is lost (a 502)."""

    def prepare(app: FastAPI) -> None:
        lost: list[str] = []

        class LoseFirst:
            def __init__(self, inner: Any) -> None:
                self.inner = inner

            async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
                if scope["type"] != "http" or scope["path"] != path or lost:
                    await self.inner(scope, receive, send)
                    return
                lost.append(path)

                async def drop(message: Any) -> None:
                    return None

                await self.inner(scope, receive, drop)
                await send({"type": "http.response.start", "status": 502, "headers": []})
                await send({"type": "http.response.body", "body": b""})

        app.add_middleware(LoseFirst)

    return prepare


def test_a_metric_batch_retried_after_its_answer_was_lost_is_written_once(
    server_factory: Callable[..., Any], tmp_path: Path
) -> None:
    server = server_factory(
        f"sqlite:///{tmp_path / 'plinth.db'}", prepare=lose_the_first_answer(f"{API}/metrics")
    )
    store = RemoteStore(ServerClient(server.url, token=server.admin_token))
    run_id = new_run(store)
    store.write_metrics([(run_id, "acc", step, step, 5, 0.5) for step in range(1000)])
    assert len(store.metric_history(run_id, "acc")) == 1000
    assert store.get_run(run_id).metrics == {"acc": 0.5}


def test_a_request_that_cannot_be_sent_gives_up_after_the_budget() -> None:
    client = ServerClient("http://127.0.0.1:9", retry=RetryPolicy(budget_s=0.3, first_delay_s=0.05))
    with pytest.raises(ServerUnavailable, match="did not answer"):
        RemoteStore(client).list_experiments()


def test_metric_history_and_prediction_tables_come_back_whole(store: RemoteStore) -> None:
    run_id = new_run(store)
    store.write_metrics([(run_id, "m", 0, 1, 2, float("nan")), (run_id, "m", 1, 2, 3, float("inf"))])
    history = store.metric_history(run_id, "m")
    assert history.dtype.names == ("step", "timestamp_ms", "value")
    assert np.isnan(history["value"][0]) and history["value"][1] == np.inf
    logs = [
        PredictionLog(f"q{i}", "churn", 1, "primary", 10 + i, 1.0, "s", '{"x": 1}', "[0]") for i in range(3)
    ]
    store.write_prediction_logs(logs)
    table = segments.encode_frame(
        {
            "request_id": ["c1"],
            "time_ms": [20],
            "version": [1],
            "route": ["external"],
            "latency_ms": [0.0],
            "status": [200],
            "n_rows": [1],
            "subject_id": [None],
        },
        {"x": [2.0]},
        [1],
        range(1),
    )
    assert store.write_prediction_columns("churn", [table]) == 1
    assert store.prediction_table("churn").num_rows == 4
    assert [log.request_id for log in store.prediction_logs("churn")] == ["q0", "q1", "q2", "c1"]
    assert store.find_prediction("q1") == logs[1]


def test_versions_are_sealed_for_the_number_the_server_records(store: RemoteStore) -> None:
    sealed: list[int] = []

    def seal(version: int) -> SealedManifest:
        sealed.append(version)
        return SealedManifest(f"{version:064x}")

    def new(name: str) -> NewModelVersion:
        return NewModelVersion(name, "python", seal, [], None, {}, None, "")

    first = store.create_model_version(new("org/churn"))
    second = store.create_model_version(new("org/churn"))
    assert (first.version, second.version) == (1, 2) and second.digest == f"{2:064x}"
    assert store.get_model_version("org/churn").version == 2
    assert [v.version for v in store.list_model_versions("org/churn")] == [1, 2]
    store.set_alias("org/churn", "prod", 1)
    assert store.resolve_alias("org/churn", "prod") == 1
    assert sealed == [1, 2]


def test_the_openapi_document_describes_every_store_route(server: Any) -> None:
    with server.client() as http:
        doc = http.get("/openapi.json").json()
    for endpoint in rpc.ENDPOINTS:
        path = (API + endpoint.path).replace(":path}", "}")
        operation = doc["paths"][path][endpoint.verb.lower()]
        assert operation["x-plinth-right"] == endpoint.right.value
        assert operation["summary"] and operation["tags"] == [endpoint.tag]
    search = doc["paths"][f"{API}/runs/search"]["post"]["requestBody"]["content"]["application/json"]
    assert set(search["schema"]["properties"]) == {
        "experiments",
        "where",
        "order_by",
        "limit",
        "now_ms",
        "offset",
    }
    json.dumps(doc)


def test_ending_runs_together_through_the_server(store: RemoteStore) -> None:
    a, b = new_run(store), new_run(store)
    store.end_runs([(a, RunStatus.FINISHED, None, 5), (b, RunStatus.FAILED, "boom", 6)])
    assert store.get_run(b).status is RunStatus.FAILED and store.get_run(b).error == "boom"


def test_tracking_works_unchanged_through_the_server(server: Any, tmp_path: Path) -> None:
    settings = Settings(
        home=str(tmp_path / "client"), store_url=server.url, token=server.admin_token, flush_s=0.05
    )
    plinth.configure(settings)
    with plinth.start_run(experiment="remote", params={"lr": 0.1}) as run:
        for step in range(50):
            run.log_metric("loss", 1.0 / (step + 1), step=step)
    got = plinth.get_run(run.id)
    assert got.status is RunStatus.FINISHED and got.params == {"lr": "0.1"} and got.user == "admin"
    assert len(plinth.metric_history(run.id, "loss")) == 50
    assert not (tmp_path / "client" / "audit.key").exists()  # the server keys the chain, not the client


def test_a_write_that_prefers_a_minimal_answer_is_made_and_answered_204(
    server: Any, store: RemoteStore
) -> None:
    spec = {
        "experiment": "quiet",
        "name": "q",
        "params": {"lr": "0.1"},
        "tags": {},
        "environment": {"python": "3.11"},
        "heartbeat_s": 60.0,
        "user": "u",
    }
    search = {"experiments": ["quiet"], "where": None, "order_by": [], "limit": None, "now_ms": 0}
    minimal = {"prefer": "respond-async, return=minimal; x=1"}
    with server.client() as http:
        quiet = http.post(f"{API}/runs/batch", json={"specs": [spec]}, headers=minimal)
        full = http.post(f"{API}/runs/batch", json={"specs": [{**spec, "name": "f"}]})
        refused = http.post(
            f"{API}/runs/batch", json={"specs": [{**spec, "heartbeat_s": "soon"}]}, headers=minimal
        )
        found = http.post(f"{API}/runs/search", json=search, headers=minimal)  # a read: answered in full
    assert (quiet.status_code, quiet.content, quiet.headers["preference-applied"]) == (
        204,
        b"",
        "return=minimal",
    )
    assert full.status_code == 200 and full.json()[0]["name"] == "f"
    assert refused.status_code == 422 and "heartbeat_s" in refused.json()["error"]["message"]
    assert found.status_code == 200 and sorted(run["name"] for run in found.json()) == ["f", "q"]
    run = store.get_run(next(r["id"] for r in found.json() if r["name"] == "q"))
    assert (run.params, run.environment, run.user) == ({"lr": "0.1"}, {"python": "3.11"}, "admin")


def test_a_quiet_call_makes_the_write_whatever_the_server_answers(store: RemoteStore) -> None:
    spec = NewRun("quiet-client", "q", {}, {"k": "v"}, None, 60.0, "me")
    assert store.call_quietly("create_runs", [spec]) is None
    (run,) = store.search_runs(experiments=["quiet-client"], where=None, order_by=[], limit=None, now_ms=0)
    assert (run.name, run.tags) == (spec.name, {"k": "v"})
    with pytest.raises(NotFound):  # an error still comes back as its kind
        store.call_quietly("end_runs", [("no-such-run", RunStatus.FINISHED, None, 1)])
