"""Stores for the contract suite: each backend opened directly, and through a team server over it.

`open_store(actor=..., audit_key=...)` opens a store on the parametrized backend (SQLite or
PostgreSQL, from `store_url`) either as a `SqlStore` ("direct") or as a `RemoteStore` talking to
a real `plinth server` app on uvicorn, on a free loopback port, over that backend ("remote"). A
remote store acts as a user named by `actor` with an API token of its own, so the audit log
names `actor (token tests-tN)`. One server per backend serves the session; each test works in
a workspace of its own (`tN`), so it starts from an empty store and the identity events of
making its user and token (in the default workspace's chain) stay out of its audit log.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from plinth.core.access import Role
from plinth.core.identity import PrincipalKind
from plinth.core.settings import Settings
from plinth.store.base import Store
from plinth.store.http import ServerClient
from plinth.store.remote import RemoteStore
from plinth.store.sql import SqlStore
from team_servers import ThreadServer

TOKEN_NAME = "tests"
AUDIT_KEY = "a-test-audit-key-" + "0" * 16
"""The servers' audit key: the one the suite's direct stores use where a test names a key."""
_WORKSPACES = itertools.count(1)


class StoreServer:
    """A team server over `store_url` (uvicorn in a thread), with users made for the suite."""

    def __init__(self, store_url: str, home: Path, audit_key: str) -> None:
        from plinth.server.config import ServerConfig

        settings = Settings(
            home=str(home),
            store_url=store_url,
            artifacts_url=str(home / "artifacts"),
            user="server",
            audit_key=audit_key,
        )
        self.store_url = store_url
        self.server = ThreadServer(ServerConfig.load(None, settings, environ={}))
        self.url = self.server.url
        self._tokens: dict[tuple[str, str], str] = {}
        self.workspaces: list[str] = []

    def token_for(self, user: str, workspace: str, role: Role = Role.ADMIN) -> str:
        """A token of user `user`, a member of `workspace` (made if new) with `role`."""
        identity = self.server.app.state.plinth.identity
        if workspace not in self.workspaces:
            identity.create_workspace(workspace, by="tests")
            self.workspaces.append(workspace)
        if (user, workspace) not in self._tokens:
            identity.set_member(workspace, user, PrincipalKind.USER, role, by="tests")
            _, secret = identity.create_token(
                name=f"{TOKEN_NAME}-{workspace}",
                principal=user,
                kind=PrincipalKind.USER,
                workspace=workspace,
                role=None,
                expires_ms=None,
                by="tests",
            )
            self._tokens[user, workspace] = secret
        return self._tokens[user, workspace]

    def stop(self) -> None:
        self.server.stop()


@pytest.fixture(scope="session")
def store_servers(
    tmp_path_factory: pytest.TempPathFactory, pg_schema_factory: Callable[[], str]
) -> Iterator[Callable[[str], StoreServer]]:
    """One team server per backend for the whole session (each test works in a workspace of its
    own): `store_servers("sqlite")` or `store_servers("postgresql")`."""
    started: dict[str, StoreServer] = {}

    def server(backend: str) -> StoreServer:
        if backend not in started:
            home = tmp_path_factory.mktemp(f"server-{backend}")
            url = f"sqlite:///{home / 'plinth.db'}" if backend == "sqlite" else pg_schema_factory()
            started[backend] = StoreServer(url, home, AUDIT_KEY)
        return started[backend]

    yield server
    for one in started.values():
        one.stop()
        _drop_workspace_schemas(one)


@pytest.fixture(params=["direct", "remote"])
def via(request: pytest.FixtureRequest) -> str:
    """How the contract suite reaches the backend: directly, or through a team server."""
    return str(request.param)


@pytest.fixture
def open_store(store_url: str, via: str, request: pytest.FixtureRequest) -> Iterator[Callable[..., Store]]:
    """Open stores on the parametrized backend, directly or through a team server over it (in a
    fresh workspace, so each test starts from an empty store)."""
    opened: list[Store] = []
    workspace = f"t{next(_WORKSPACES)}"

    def open_(actor: str = "tester", audit_key: str | None = None, **kwargs: Any) -> Store:
        store: Store
        if via == "direct":
            store = SqlStore(store_url, actor=actor, audit_key=audit_key, **kwargs)
        else:
            servers = request.getfixturevalue("store_servers")
            server = servers("sqlite" if store_url.startswith("sqlite") else "postgresql")
            token = server.token_for(actor, workspace)
            store = RemoteStore(ServerClient(server.url, token=token, workspace=workspace))
        opened.append(store)
        return store

    yield open_
    for store in opened:
        store.close()


def _drop_workspace_schemas(server: StoreServer) -> None:
    """Drop the PostgreSQL schemas of the server's workspaces (SQLite: files in tmp)."""
    if not server.store_url.startswith("postgresql"):
        return
    import psycopg

    from plinth.store.workspaces import workspace_url

    with psycopg.connect("host=127.0.0.1 port=5432 user=postgres dbname=test", autocommit=True) as conn:
        for workspace in server.workspaces:
            schema = workspace_url(server.store_url, workspace).rsplit("search_path%3D", 1)[1]
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
