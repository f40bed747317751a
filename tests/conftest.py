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

WHITE_BOX = re.compile(r"\.engine\b|SqlStore\(|\.path_of\(|exec_driver_sql|sqlite3\.connect|audit_key_path")
"""What a test that edits the store's database or blob files directly uses: such a test checks
the store itself (tampering, corruption, crash recovery), which a client of a server cannot
reach; with PLINTH_TEST_REMOTE=1 it is marked `store_itself` and runs on the store directly."""


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if not REMOTE:
        return
    for item in items:
        function = getattr(item, "function", None)
        try:
            source = inspect.getsource(function) if function is not None else ""
        except (OSError, TypeError):
            source = ""
        if WHITE_BOX.search(source):
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
