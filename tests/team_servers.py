"""Team servers for tests: a real uvicorn on a free loopback port, in a thread or as `plinth server`.

Used by the fixtures of tests/server/conftest.py, and by tests/conftest.py when
PLINTH_TEST_REMOTE=1 runs the whole suite through a server.
"""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from fastapi import FastAPI

from plinth.core.access import DEFAULT_WORKSPACE, Role
from plinth.core.settings import Settings
from plinth.server.app import create_app
from plinth.server.config import ServerConfig
from plinth.store.sql import SqlStore
from waiting import wait_until


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def new_admin_token() -> str:
    return "plt_" + secrets.token_urlsafe(32)


class _Client:
    """What both kinds of server give a test: the URL, the admin token and clients."""

    url: str
    admin_token: str

    settings: Settings

    def client(self, token: str | None = None, workspace: str | None = None, **kwargs: Any) -> httpx.Client:
        """An httpx client of the server sending `token` (default the admin's; "" for none)."""
        headers = dict(kwargs.pop("headers", {}))
        token = self.admin_token if token is None else token
        if token:
            headers["authorization"] = f"Bearer {token}"
        if workspace:
            headers["x-plinth-workspace"] = workspace
        kwargs.setdefault("timeout", 30)
        return httpx.Client(base_url=self.url, headers=headers, **kwargs)

    def issue(self, name: str, role: Role | str, workspace: str = DEFAULT_WORKSPACE, **kwargs: Any) -> str:
        """A new token for service account `name` with `role` in `workspace`; returns its secret."""
        from plinth.store.sql.identity import SqlIdentity
        from plinth.store.token_issue import issue_token

        identity = SqlIdentity.from_settings(self.settings)
        try:
            if workspace != DEFAULT_WORKSPACE and not identity.workspace_exists(workspace):
                identity.create_workspace(workspace, by="tests")
            role = role if isinstance(role, Role) else Role.parse(role)
            return issue_token(
                identity, name=name, workspace=workspace, role=role, by="tests", **kwargs
            ).secret
        finally:
            identity.close()

    def ready(self) -> bool:
        try:
            return httpx.get(f"{self.url}/readyz", timeout=2, verify=False).status_code == 200
        except httpx.TransportError:
            return False


class ThreadServer(_Client):
    """The team server's app on uvicorn in a thread of the test process."""

    def __init__(self, config: ServerConfig, prepare: Callable[[FastAPI], None] | None = None) -> None:
        self.config = config
        self.settings = config.settings
        self.admin_token = config.admin_token or ""
        self.app = create_app(config)
        if prepare is not None:
            prepare(self.app)
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        self.server = uvicorn.Server(
            uvicorn.Config(self.app, host="127.0.0.1", port=port, log_level="warning")
        )
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        wait_until(self.ready, f"the team server at {self.url} to answer /readyz")

    def store(self, workspace: str = DEFAULT_WORKSPACE) -> SqlStore:
        """The server's own store of `workspace`, to make what a test needs and check what arrived."""
        store: SqlStore = self.app.state.plinth.stores.get(workspace)
        return store

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)


class ProcessServer(_Client):
    """`plinth server` as a child process; `kill()` and `start()` again keep the port."""

    def __init__(
        self, args: Sequence[str], env: Mapping[str, str], log_path: Path, scheme: str = "http"
    ) -> None:
        self.port = free_port()
        self.url = f"{scheme}://127.0.0.1:{self.port}"
        self.admin_token = env["PLINTH_ADMIN_TOKEN"]
        self.args = [sys.executable, "-m", "plinth", "server", "--port", str(self.port), *args]
        self.env = dict(env)
        self.settings = Settings.from_env(self.env, env_file=None)
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, wait: bool = True) -> ProcessServer:
        """Start the server (again) and wait until it answers /readyz."""
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                self.args, stdout=log, stderr=subprocess.STDOUT, env=self.env, start_new_session=True
            )
        if wait:
            wait_until(self._up, f"`plinth server` at {self.url} to answer /readyz (log: {self.log_path})")
        return self

    def _up(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            raise AssertionError(f"`plinth server` exited with {self.proc.returncode}:\n{self.log()}")
        return self.ready()

    def kill(self) -> None:
        """Kill the server and its workers at once, as a crash would."""
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=30)

    def stop(self) -> None:
        """Stop the server gracefully (SIGTERM), killing it if it does not exit."""
        if self.proc is None or self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.kill()

    def log(self) -> str:
        """Everything the server wrote so far."""
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


def start_thread_server(
    store_url: str,
    tmp_path: Path,
    artifacts_url: str | None = None,
    prepare: Callable[[FastAPI], None] | None = None,
    **config: Any,
) -> ThreadServer:
    """A team server in a thread over `store_url`, with a fresh bootstrap admin token; `config`
    sets `ServerConfig` fields, `prepare(app)` may add to the app before it serves."""
    import dataclasses

    settings = Settings(
        home=str(tmp_path / "server-home"),
        store_url=store_url,
        artifacts_url=artifacts_url or str(tmp_path / "server-artifacts"),
        user="server",
    )
    loaded = ServerConfig.load(None, settings, environ={"PLINTH_ADMIN_TOKEN": new_admin_token()})
    return ThreadServer(dataclasses.replace(loaded, **config), prepare)
