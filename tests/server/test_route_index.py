"""`RouteIndex` picks the route Starlette's router would pick, trying only the ones that can match."""

from __future__ import annotations

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from starlette.routing import Mount

from plinth.server.route_index import RouteIndex, index_routes, literal_prefix


def app_with_overlaps() -> FastAPI:
    app = FastAPI()

    @app.get("/items/{item}")
    def item(item: str) -> dict[str, str]:
        return {"route": "item", "item": item}

    @app.get("/items/special")  # shadowed by the pattern above, as in Starlette
    def special() -> dict[str, str]:
        return {"route": "special"}

    @app.post("/items")
    def add() -> dict[str, str]:
        return {"route": "add"}

    @app.get("/items/{item}/parts/{part:int}")
    def part(item: str, part: int) -> dict[str, object]:
        return {"route": "part", "item": item, "part": part}

    @app.get("/{rest:path}")
    def fallback(rest: str) -> dict[str, str]:
        return {"route": "fallback", "rest": rest}

    return app


def answers(app: FastAPI) -> list[tuple[int, object]]:
    with TestClient(app) as client:
        calls = [
            client.get("/items/special"),
            client.get("/items/7/parts/3"),
            client.get("/items/7/parts/x"),  # not an int: the catch-all
            client.post("/items"),
            client.get("/items"),  # no GET route of its own: the catch-all
            client.delete("/items/7"),  # a path with other methods only: 405
            client.get("/elsewhere/deep"),
        ]
        return [(r.status_code, r.json()) for r in calls]


def test_the_index_answers_as_the_router_does() -> None:
    plain, indexed = app_with_overlaps(), app_with_overlaps()
    index_routes(indexed.router)
    got = answers(indexed)
    assert got == answers(plain)
    assert got[0] == (200, {"route": "item", "item": "special"})
    assert got[1] == (200, {"route": "part", "item": "7", "part": 3})
    assert got[2][1] == {"route": "fallback", "rest": "items/7/parts/x"}
    assert got[5][0] == 405


def test_routes_added_later_are_found() -> None:
    app = app_with_overlaps()
    index_routes(app.router)
    with TestClient(app) as client:
        assert client.get("/late").json()["route"] == "fallback"
        app.router.routes.insert(0, app.router.routes.pop())  # the catch-all now comes first
        assert client.get("/items/1").json() == {"route": "fallback", "rest": "items/1"}


def test_a_table_with_a_mount_is_left_to_the_router() -> None:
    app = app_with_overlaps()
    inner = FastAPI()

    @inner.get("/ping")
    def ping() -> dict[str, str]:
        return {"route": "inner"}

    app.router.routes.insert(0, Mount("/sub", app=inner))
    index_routes(app.router)
    assert isinstance(app.router.middleware_stack, RouteIndex)
    with TestClient(app) as client:
        assert client.get("/sub/ping").json() == {"route": "inner"}
        assert client.get("/items/2").json() == {"route": "item", "item": "2"}


@pytest.mark.parametrize(
    ("path", "prefix"),
    [("/healthz", "/healthz"), ("/api/v1/runs/{run_id}", "/api/v1/runs/"), ("/{rest:path}", "/")],
)
def test_literal_prefix(path: str, prefix: str) -> None:
    assert literal_prefix(path) == prefix
