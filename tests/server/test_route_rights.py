"""Every route of the team server against every role: a route without a rule fails here.

Each API route declares the right it needs (`openapi_extra=right_extra(...)`). For every route
and every caller (no token, a bad token, a token of each role in the workspace, the superuser)
the answer must be 401 without a valid token, 403 where the role lacks the right, and neither
where it holds it (a 404 or 422 for the made-up ids and empty bodies used here is fine).
Routes open to any valid token (`authenticated`: whoami, one's own tokens) may refuse inside
with 403 for someone else's things; for them a valid token must never get 401.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.routing import APIRoute

from plinth.core.access import DEFAULT_WORKSPACE, RIGHTS, Right, Role
from plinth.server.app import api_routes, right_of

NO_TOKEN, BAD_TOKEN, SUPERUSER = "no token", "bad token", "superuser"
CALLERS = [NO_TOKEN, BAD_TOKEN, SUPERUSER, *(role.value for role in Role)]
PARAM = re.compile(r"\{(\w+)(?::\w+)?\}")


@pytest.fixture
def server(server_factory: Callable[..., Any], tmp_path: Path) -> Any:
    return server_factory(f"sqlite:///{tmp_path / 'meta' / 'plinth.db'}")


def test_every_route_names_its_right(server: Any) -> None:
    routes = list(api_routes(server.app))
    assert len(routes) > 3
    unruled = [f"{sorted(route.methods)} {path}" for path, route in routes if right_of(route) is None]
    assert unruled == [], "routes without openapi_extra=right_extra(...)"


def expected(caller: str, right: Right) -> str:
    """'401', '403' or 'allowed'."""
    if right is Right.PUBLIC:
        return "allowed"
    if caller in (NO_TOKEN, BAD_TOKEN):
        return "401"
    if caller == SUPERUSER:
        return "allowed"
    return "allowed" if right in RIGHTS[Role(caller)] else "403"


def outcome(status: int) -> str:
    return str(status) if status in (401, 403) else "allowed"


def sample_path(path: str) -> str:
    """`path` with each parameter filled in: the default workspace, a digest, else `x`."""

    def fill(match: re.Match[str]) -> str:
        name = match.group(1)
        if name == "workspace":
            return DEFAULT_WORKSPACE
        if name == "digest":
            return "0" * 64
        return "x"

    return PARAM.sub(fill, path)


def calls(server: Any) -> Iterator[tuple[str, str, APIRoute]]:
    for path, route in api_routes(server.app):
        for method in sorted(route.methods or ()):
            yield method, path, route


@pytest.mark.slow
def test_every_route_against_every_role(server: Any) -> None:
    tokens = {SUPERUSER: server.admin_token, BAD_TOKEN: "plt_" + "b" * 43}
    for role in Role:
        tokens[role.value] = server.issue(f"role-{role.value}", role)
    clients = {caller: server.client(token=tokens.get(caller, "")) for caller in CALLERS}
    addresses = (f"10.{i // 65536}.{i // 256 % 256}.{i % 256}" for i in itertools.count(1))
    wrong: list[str] = []
    try:
        for (method, path, route), caller in itertools.product(list(calls(server)), CALLERS):
            right = right_of(route)
            assert right is not None, path
            # each bad-token call from its own address: the back-off counts failures per client
            headers = {"x-forwarded-for": next(addresses)} if caller == BAD_TOKEN else {}
            body = {} if method in ("POST", "PUT", "PATCH") else None
            answer = clients[caller].request(method, sample_path(path), json=body, headers=headers)
            want, got = expected(caller, right), outcome(answer.status_code)
            if right is Right.AUTHENTICATED and want == "allowed" and got == "403":
                continue  # refused inside, for whose thing it is: see the module's docstring
            if want != got:
                wrong.append(
                    f"{method} {path} ({right.value}) as {caller}: {answer.status_code}, expected {want}"
                )
    finally:
        for client in clients.values():
            client.close()
    assert wrong == [], "\n".join(wrong)


def test_the_sample_paths_fill_every_parameter() -> None:
    assert (
        sample_path("/api/v1/workspaces/{workspace}/members/{name}") == "/api/v1/workspaces/default/members/x"
    )
    assert sample_path("/api/v1/models/{name:path}/versions") == "/api/v1/models/x/versions"
    assert sample_path("/api/v1/blobs/{digest}") == f"/api/v1/blobs/{'0' * 64}"


def test_a_bad_token_answer_names_no_secret(server: Any) -> None:
    with server.client(token="plt_" + "c" * 43) as stranger:
        answer = stranger.get("/api/v1/whoami")
    assert answer.status_code == 401 and "c" * 20 not in answer.text
    assert isinstance(answer, httpx.Response)
