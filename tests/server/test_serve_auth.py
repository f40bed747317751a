"""`plinth serve --auth` over a team server: callers are asked of the server (`POST /tokens/resolve`).

The model server's store is the team server (PLINTH_STORE=http…); it loads the model and
writes prediction logs with its own token (role predictor), and asks the team server who each
caller's token is, so a token made or revoked on the team server counts on the model server.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import LogisticRegression

import plinth
from plinth.access import Authorizer
from plinth.access.remote import WhoamiResolver
from plinth.core.access import Right, Role
from plinth.core.errors import Forbidden
from plinth.core.settings import Settings
from plinth.serving.app import create_app
from plinth.serving.options import ServeOptions
from plinth.store.http import ServerClient
from plinth.tracking import context
from waiting import wait_until


@pytest.fixture
def team(server_factory: Callable[..., Any], tmp_path: Path) -> Any:
    """A team server over a fresh SQLite store."""
    return server_factory(f"sqlite:///{tmp_path / 'team' / 'plinth.db'}")


def as_client(team: Any, token: str, home: Path) -> Settings:
    """Settings of a client of `team` sending `token`."""
    return Settings(home=str(home), store_url=team.url, token=token, user="someone-else")


@pytest.fixture
def model_server(team: Any, tmp_path: Path) -> Iterator[str]:
    """A model server for bc@champion with --auth whose store is `team`; yields its URL."""
    x, y = load_breast_cancer(return_X_y=True, as_frame=True)
    plinth.configure(as_client(team, team.issue("trainer", Role.MAINTAINER), tmp_path / "trainer"))
    mv = plinth.register_model("bc", LogisticRegression(max_iter=5000).fit(x, y), input_example=x[:3])
    plinth.set_alias("bc", "champion", mv.version)
    context.reset()
    own = as_client(team, team.issue("model-server", Role.PREDICTOR), tmp_path / "model-server")
    app = create_app(["bc@champion"], own, ServeOptions(auth=True, auth_cache_s=1.0))
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    wait_until(lambda: ready(url), "the model server to load bc@champion from the team server")
    yield url
    server.should_exit = True
    thread.join(timeout=30)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def ready(url: str) -> bool:
    try:
        return httpx.get(f"{url}/readyz", timeout=5).status_code == 200
    except httpx.TransportError:
        return False


def one_row() -> dict[str, Any]:
    x, _y = load_breast_cancer(return_X_y=True, as_frame=True)
    return {"instances": x[:1].to_dict("records")}


def test_callers_are_checked_by_the_team_server(team: Any, model_server: str) -> None:
    predictor, viewer = team.issue("scorer", Role.PREDICTOR), team.issue("dashboard", Role.VIEWER)
    with httpx.Client(base_url=model_server, timeout=30) as client:

        def call(token: str | None) -> httpx.Response:
            headers = {} if token is None else {"authorization": f"Bearer {token}"}
            return client.post("/v1/models/bc/predict", json=one_row(), headers=headers)

        assert call(None).status_code == 401
        assert call("plt_" + "x" * 43).status_code == 401
        assert call(viewer).status_code == 403
        answer = call(predictor)
        assert answer.status_code == 200
        labels = {"labels": [{"request_id": answer.json()["request_id"], "label": 1}]}
        stored = client.post(
            "/v1/models/bc/labels", json=labels, headers={"authorization": f"Bearer {predictor}"}
        )
        assert stored.status_code == 200 and stored.json()["stored"] == 1

        with team.client() as admin:
            assert admin.delete("/api/v1/tokens/scorer", params={"principal": "scorer"}).status_code == 200
        wait_until(lambda: call(predictor).status_code == 401, "the revoked token to be refused", timeout_s=5)


def test_prediction_logs_go_through_with_the_servers_own_token(
    team: Any, model_server: str, tmp_path: Path
) -> None:
    predictor = team.issue("scorer", Role.PREDICTOR)
    with httpx.Client(base_url=model_server, timeout=30) as client:
        headers = {"authorization": f"Bearer {predictor}"}
        answer = client.post("/v1/models/bc/predict", json=one_row(), headers=headers)
    reviewer = team.issue("reviewer", Role.AUDITOR)
    auditor = plinth.configure(as_client(team, reviewer, tmp_path / "auditor"))
    [logged] = wait_until(lambda: auditor.store.prediction_logs("bc"), "the prediction to reach the server")
    assert logged.request_id == answer.json()["request_id"] and predictor not in repr(logged)


def test_whoami_resolver_builds_the_principal(team: Any) -> None:
    editor = team.issue("builder", Role.EDITOR)
    own = team.issue("model-server", Role.PREDICTOR)
    resolver = WhoamiResolver(lambda: ServerClient(team.url, token=own), "default")
    try:
        principal = resolver.resolve(editor)
        assert principal is not None and principal.name == "builder"
        assert principal.roles == {"default": Role.EDITOR} and principal.token_name is not None
        authorizer = Authorizer(resolver)
        found = authorizer.authenticate(editor, "127.0.0.1")
        authorizer.authorize(found, "default", Right.PREDICT)
        with pytest.raises(Forbidden):
            authorizer.authorize(found, "default", Right.MAINTAIN)
    finally:
        resolver.close()


def test_callers_bad_tokens_do_not_lock_the_model_server_out(team: Any) -> None:
    own = team.issue("model-server", Role.PREDICTOR)
    editor = team.issue("builder", Role.EDITOR)
    resolver = WhoamiResolver(lambda: ServerClient(team.url, token=own), "default")
    try:
        for i in range(12):  # more than the team server's back-off allows from one client
            assert resolver.resolve(f"plt_{i:043d}") is None
        found = resolver.resolve(editor)
        assert found is not None and found.name == "builder"
    finally:
        resolver.close()


def test_resolving_tokens_needs_the_predict_right(team: Any) -> None:
    viewer = team.issue("watcher", Role.VIEWER)
    with team.client(viewer) as client:
        assert client.post("/api/v1/tokens/resolve", json={"token": viewer}).status_code == 403
