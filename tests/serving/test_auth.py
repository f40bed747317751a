"""`plinth serve --auth`: tokens and roles on the model server, over real HTTP."""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from sklearn.linear_model import LogisticRegression

import plinth
from plinth.core.access import Role
from plinth.core.errors import InvalidInput
from plinth.core.settings import Settings
from plinth.serving.options import ServeOptions
from plinth.store.identity import IdentityStore
from plinth.store.identity_open import identity_from_settings
from plinth.store.token_issue import issue_token
from plinth.tracking.context import backend
from waiting import wait_until

sqlite_only = pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)


@pytest.fixture
def identity(settings: Settings) -> Iterator[IdentityStore]:
    """Where the model server's tokens are kept: the store's identity tables, or the team
    server's (PLINTH_TEST_REMOTE=1), where the test acts as the bootstrap admin."""
    plinth.configure(settings)
    store = identity_from_settings(settings)
    yield store
    store.close()


def issue(identity: IdentityStore, name: str, role: str, workspace: str = "default") -> str:
    """A new token named `name` for service account `name` with `role` in `workspace`; its secret."""
    return issue_token(identity, name=name, workspace=workspace, role=Role(role), by="tester").secret


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


def predict(server: Any, secret: str, doc: dict[str, Any]) -> httpx.Response:
    """POST a prediction to model bc with `secret` as the bearer token."""
    answer: httpx.Response = server.client.post("/v1/models/bc/predict", json=doc, headers=bearer(secret))
    return answer


def served(cancer: tuple[Any, Any, LogisticRegression], serve: Callable[..., Any], **options: Any) -> Any:
    x, _y, clf = cancer
    mv = plinth.register_model("bc", clf, input_example=x[:3])
    plinth.set_alias("bc", "champion", mv.version)
    return serve(["bc@champion"], **options)


def body(cancer: tuple[Any, Any, LogisticRegression], subject: str | None = None) -> dict[str, Any]:
    doc: dict[str, Any] = {"instances": cancer[0][:1].to_dict("records")}
    if subject is not None:
        doc["subject_id"] = subject
    return doc


def test_predict_and_labels_need_the_predict_right(
    serve: Callable[..., Any], cancer: tuple[Any, Any, LogisticRegression], identity: IdentityStore
) -> None:
    server = served(cancer, serve, auth=True)
    predictor, viewer = issue(identity, "scorer", "predictor"), issue(identity, "dashboard", "viewer")
    client: httpx.Client = server.client

    missing = client.post("/v1/models/bc/predict", json=body(cancer))
    assert missing.status_code == 401 and missing.headers["www-authenticate"].startswith("Bearer")
    assert "token" in missing.json()["error"].lower()
    wrong = client.post("/v1/models/bc/predict", json=body(cancer), headers=bearer("plt_" + "x" * 43))
    assert wrong.status_code == 401
    refused = client.post("/v1/models/bc/predict", json=body(cancer), headers=bearer(viewer))
    assert refused.status_code == 403 and "predict" in refused.json()["error"]

    answer = client.post("/v1/models/bc/predict", json=body(cancer), headers=bearer(predictor))
    assert answer.status_code == 200 and answer.json()["model"] == "bc"
    labels = {"labels": [{"request_id": answer.json()["request_id"], "label": 1}]}
    assert client.post("/v1/models/bc/labels", json=labels).status_code == 401
    assert client.post("/v1/models/bc/labels", json=labels, headers=bearer(viewer)).status_code == 403
    stored = client.post("/v1/models/bc/labels", json=labels, headers=bearer(predictor))
    assert stored.status_code == 200 and stored.json() == {"model": "bc", "stored": 1}


def test_health_stays_open_and_metrics_need_the_read_right(
    serve: Callable[..., Any], cancer: tuple[Any, Any, LogisticRegression], identity: IdentityStore
) -> None:
    server = served(cancer, serve, auth=True)
    predictor, viewer = issue(identity, "scorer", "predictor"), issue(identity, "scraper", "viewer")
    client: httpx.Client = server.client
    assert client.get("/healthz").status_code == 200
    assert client.get("/readyz").status_code == 200
    assert client.get("/openapi.json").status_code == 200
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", headers=bearer(predictor)).status_code == 403
    scraped = client.get("/metrics", headers=bearer(viewer))
    assert scraped.status_code == 200 and 'plinth_auth_refusals_total{code="401"}' in scraped.text
    assert client.get("/v1/models").status_code == 401
    assert client.get("/v1/models", headers=bearer(predictor)).json()[0]["name"] == "bc"


@sqlite_only
def test_a_role_in_another_workspace_does_not_count(
    serve: Callable[..., Any], cancer: tuple[Any, Any, LogisticRegression], identity: IdentityStore
) -> None:
    identity.create_workspace("vision", by="tester")
    elsewhere = issue(identity, "vision-scorer", "predictor", workspace="vision")
    server = served(cancer, serve, auth=True)
    refused = server.client.post("/v1/models/bc/predict", json=body(cancer), headers=bearer(elsewhere))
    assert refused.status_code == 403 and "default" in refused.json()["error"]


@sqlite_only
def test_a_revoked_token_is_refused_within_the_cache_window(
    serve: Callable[..., Any], cancer: tuple[Any, Any, LogisticRegression], identity: IdentityStore
) -> None:
    server = served(cancer, serve, auth=True, auth_cache_s=1.0)
    predictor = issue(identity, "scorer", "predictor")

    def status() -> int:
        return int(predict(server, predictor, body(cancer)).status_code)

    assert status() == 200 and status() == 200  # the second is answered from the cache
    identity.revoke_token("scorer", principal="scorer", by="tester")
    wait_until(lambda: status() == 401, "the revoked token to be refused", timeout_s=5)


@sqlite_only
def test_repeated_bad_tokens_back_off(
    serve: Callable[..., Any], cancer: tuple[Any, Any, LogisticRegression], identity: IdentityStore
) -> None:
    server = served(cancer, serve, auth=True)
    refused = [predict(server, "plt_not-a-token", body(cancer)) for _ in range(6)]
    assert [r.status_code for r in refused] == [401] * 5 + [429]  # refused for a second at least
    assert int(refused[-1].headers["retry-after"]) >= 1


@sqlite_only
def test_tokens_stay_out_of_logs_and_audit_names_the_caller(
    serve: Callable[..., Any],
    cancer: tuple[Any, Any, LogisticRegression],
    identity: IdentityStore,
    settings: Settings,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    server = served(cancer, serve, auth=True)
    predictor = issue(identity, "scorer", "predictor")
    answer = predict(server, predictor, body(cancer, subject="s-1"))
    labels = {"labels": [{"request_id": answer.json()["request_id"], "label": 0}]}
    assert (
        server.client.post("/v1/models/bc/labels", json=labels, headers=bearer(predictor)).status_code == 200
    )

    [logged] = wait_until(lambda: backend().store.prediction_logs("bc"), "the prediction to be logged")
    assert predictor not in repr(logged)
    events = backend().store.audit_events()
    assert predictor not in repr(events)
    # a SQL store records the caller; a team server records who called it: this server's own token
    caller = "admin" if settings.is_remote else "scorer (token scorer)"
    assert [e.actor for e in events if e.action == "labels.log"] == [caller]
    assert predictor not in caplog.text


def test_without_auth_nothing_changes(
    serve: Callable[..., Any], cancer: tuple[Any, Any, LogisticRegression]
) -> None:
    server = served(cancer, serve)
    assert server.predict("bc", body(cancer)).status_code == 200
    assert predict(server, "plt_anything", body(cancer)).status_code == 200
    assert server.client.get("/metrics").status_code == 200
    assert server.client.get("/v1/models").status_code == 200


@pytest.mark.parametrize("cache_s", [0.0, -1.0, 6.0])
def test_the_cache_window_is_at_most_five_seconds(cache_s: float) -> None:
    with pytest.raises(InvalidInput, match="auth_cache_s"):
        ServeOptions(auth=True, auth_cache_s=cache_s)


@sqlite_only
def test_plinth_serve_auth_from_the_command_line(
    cancer: tuple[Any, Any, LogisticRegression], settings: Settings, identity: IdentityStore
) -> None:
    x, _y, clf = cancer
    mv = plinth.register_model("bc", clf, input_example=x[:3])
    plinth.set_alias("bc", "champion", mv.version)
    predictor = issue(identity, "scorer", "predictor")
    port = free_port()
    env = {**os.environ, "PLINTH_HOME": settings.home, "PLINTH_STORE": settings.resolved_store_url}
    if settings.token is not None:
        env["PLINTH_TOKEN"] = settings.token
    command = [sys.executable, "-m", "plinth.cli.main", "serve", "bc@champion", "--port", str(port), "--auth"]
    server = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:

            def ready() -> bool:
                assert server.poll() is None, server.stderr.read() if server.stderr else ""
                try:
                    return client.get("/readyz").status_code == 200
                except httpx.TransportError:
                    return False

            wait_until(ready, "`plinth serve --auth` to be ready")
            assert client.post("/v1/models/bc/predict", json=body(cancer)).status_code == 401
            answer = client.post("/v1/models/bc/predict", json=body(cancer), headers=bearer(predictor))
            assert answer.status_code == 200
    finally:
        server.terminate()
        server.wait(timeout=60)
    assert predictor not in (server.stderr.read().decode() if server.stderr else "")
