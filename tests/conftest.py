"""Fixtures: a clean environment per test, stores on SQLite and PostgreSQL, S3 on moto."""

from __future__ import annotations

import inspect
import os
import re
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import plinth
from plinth.core.settings import Settings
from plinth.tracking import context

PG_SERVER = os.environ.get("PLINTH_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    for name in list(os.environ):
        if name.startswith("PLINTH_"):
            monkeypatch.delenv(name)
    # a COLUMNS exported by the caller's shell would narrow every CLI table; a test that wants
    # a narrow terminal sets it itself
    monkeypatch.delenv("COLUMNS", raising=False)
    monkeypatch.delenv("LINES", raising=False)
    monkeypatch.setenv("PLINTH_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("PLINTH_USER", "tester")
    yield
    context.reset()


def _pg_available() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 5432), timeout=1):
            return True
    except OSError:
        return False


@pytest.fixture(scope="session")
def pg_schema_factory() -> Iterator[Callable[[], str]]:
    """Make fresh PostgreSQL schemas (one per test) and drop them at the end of the session."""
    import psycopg

    if not _pg_available():
        pytest.fail("PostgreSQL is not listening on 127.0.0.1:5432; .ci/run starts it.")
    made: list[str] = []
    dsn = "host=127.0.0.1 port=5432 user=postgres dbname=test"

    def make() -> str:
        name = f"plinth_t_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(f'CREATE SCHEMA "{name}"')
        made.append(name)
        return f"{PG_SERVER}?options=-csearch_path%3D{name}"

    yield make
    with psycopg.connect(dsn, autocommit=True) as conn:
        for name in made:
            # with the schemas of the store's other workspaces (`<name>_ws_<workspace>`)
            found = conn.execute("SELECT nspname FROM pg_namespace WHERE starts_with(nspname, %s)", (name,))
            for (schema,) in found.fetchall():
                conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh, empty metadata store URL on each backend."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'meta' / 'plinth.db'}"
    return request.getfixturevalue("pg_schema_factory")()


REMOTE = os.environ.get("PLINTH_TEST_REMOTE", "") == "1"
"""PLINTH_TEST_REMOTE=1 runs every test that takes `settings` (or `tracking`) through a team
server over the parametrized store, as the bootstrap admin (runs record the principal `admin`,
never the client's PLINTH_USER)."""

WHITE_BOX = re.compile(
    "|".join(
        [
            r"\.engine\b",
            r"exec_driver_sql",
            r"sqlite3\.connect",
            r"SqlStore\(",
            r"isinstance\([^)]*SqlStore\)",
            r"SqlIdentity\.",
            r"WorkspaceStores\(",
            r"open_workspace_store\(",
            r"audit_key_path",
            r"\.path_of\(",
            r"\.blobs\.delete\(",
            r"\bput_object\(",
            r"[\"']blobs[\"']",
        ]
    )
)
"""What a test that edits the store's database or blob files directly uses: such a test checks
the store itself (tampering, corruption, crash recovery, a lost blob), which a client of a server
cannot reach; with PLINTH_TEST_REMOTE=1 it is marked `store_itself` and runs on the store directly.
The test's own source is searched, with the fixtures it asks for and the helpers of tests/ it calls."""

TESTS_ROOT = Path(__file__).resolve().parent
CALLED = re.compile(r"\b([A-Za-z_]\w*)\s*\(")


def _test_helper(value: object) -> bool:
    """Whether `value` is a function written in tests/ (a helper or fixture a test may hide SQL in)."""
    if not inspect.isfunction(value):
        return False
    try:
        source_file = inspect.getsourcefile(value)
    except TypeError:
        return False
    return source_file is not None and Path(source_file).resolve().is_relative_to(TESTS_ROOT)


def _reaches_the_store(item: pytest.Item) -> bool:
    """Whether the test, a fixture it asks for or a tests/ helper they call matches WHITE_BOX."""
    function = getattr(item, "function", None)
    if function is None:
        return False
    todo: list[Callable[..., object]] = [function]
    fixture_info = getattr(item, "_fixtureinfo", None)
    for name in getattr(item, "fixturenames", ()):
        definitions = fixture_info.name2fixturedefs.get(name, ()) if fixture_info else ()
        todo.extend(d.func for d in definitions if _test_helper(d.func))
    seen: set[object] = set()
    while todo:
        current = todo.pop()
        if current in seen:
            continue
        seen.add(current)
        try:
            source = inspect.getsource(current)
        except (OSError, TypeError):
            continue
        if WHITE_BOX.search(source):
            return True
        names = getattr(current, "__globals__", {})
        todo.extend(names[n] for n in CALLED.findall(source) if _test_helper(names.get(n)))
    return False


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if not REMOTE:
        return
    for item in items:
        if _reaches_the_store(item):
            item.add_marker(pytest.mark.store_itself)


@pytest.fixture
def settings(store_url: str, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Settings]:
    """Settings for a fresh home on the parametrized store, with fast heartbeats (through a team
    server started for the test when PLINTH_TEST_REMOTE=1, unless the test checks the store itself)."""
    url, token, server = store_url, None, None
    if REMOTE and request.node.get_closest_marker("store_itself") is None:
        from team_servers import start_thread_server

        server = start_thread_server(store_url, tmp_path)
        url, token = server.url, server.admin_token
    yield Settings(
        home=str(tmp_path / "home"),
        store_url=url,
        token=token,
        heartbeat_s=0.2,
        flush_s=0.1,
        user="tester",
    )
    if server is not None:
        context.reset()
        server.stop()


@pytest.fixture
def actor(settings: Settings) -> str:
    """Who the store records as the author of what this test does: PLINTH_USER on the store
    itself, the token's principal through a team server (asked of the server, never assumed)."""
    if not settings.is_remote:
        return settings.user
    from plinth.store.http import client_from_settings
    from plinth.store.remote_identity import RemoteIdentity

    client = client_from_settings(settings)
    try:
        return RemoteIdentity(client).whoami().name
    finally:
        client.close()


@pytest.fixture
def acting_as(settings: Settings) -> Callable[[str], Settings]:
    """`acting_as(name)`: settings under which user `name` does what follows. On the store itself
    that is PLINTH_USER; through a team server the server names the token's principal, so it is
    a token of user `name` (an editor of the default workspace), issued by the admin."""
    from dataclasses import replace

    issued: dict[str, Settings] = {}

    def settings_of(name: str) -> Settings:
        if not settings.is_remote:
            return replace(settings, user=name)
        if name not in issued:
            from plinth.core.access import DEFAULT_WORKSPACE, Role
            from plinth.store.identity_open import identity_from_settings
            from plinth.store.token_issue import issue_token

            token = issue_token(
                identity_from_settings(settings),
                name=f"as-{name}",
                workspace=DEFAULT_WORKSPACE,
                role=Role.EDITOR,
                user=name,
                by=settings.user,
            )
            issued[name] = replace(settings, user=name, token=token.secret)
        return issued[name]

    return settings_of


@pytest.fixture
def tracking(settings: Settings) -> context.Backend:
    """plinth configured as the default backend on the parametrized store."""
    return plinth.configure(settings)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def s3_server() -> Iterator[str]:
    """moto's S3 server on loopback; yields its endpoint URL."""
    port = _free_port()
    env = {**os.environ, "AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
    )
    endpoint = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                break
        except OSError:
            time.sleep(0.1)
    else:
        proc.kill()
        pytest.fail("moto S3 server did not start")
    yield endpoint
    proc.terminate()
    proc.wait(timeout=10)


@pytest.fixture
def s3_bucket(s3_server: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """A fresh bucket on the moto server; yields `s3://bucket/prefix`."""
    import boto3

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    name = f"b-{uuid.uuid4().hex[:10]}"
    boto3.client("s3", endpoint_url=s3_server, region_name="us-east-1").create_bucket(Bucket=name)
    return f"s3://{name}/artifacts"
