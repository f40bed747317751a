"""A real uvicorn server on a free loopback port, in a thread, for serving tests."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
import uvicorn
from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import LogisticRegression

import plinth
from plinth.core.settings import Settings
from plinth.serving.app import create_app
from plinth.serving.options import ServeOptions


@pytest.fixture(scope="session")
def cancer() -> tuple[Any, Any, LogisticRegression]:
    x, y = load_breast_cancer(return_X_y=True, as_frame=True)
    return x, y, LogisticRegression(max_iter=5000).fit(x, y)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Running:
    """A server started by `serve`: its base URL, the app and an HTTP client."""

    def __init__(self, url: str, app: Any) -> None:
        self.url = url
        self.app = app
        self.client = httpx.Client(base_url=url, timeout=30)

    def predict(self, name: str, body: dict[str, Any]) -> httpx.Response:
        return self.client.post(f"/v1/models/{name}/predict", json=body)


@pytest.fixture
def serve(settings: Settings) -> Iterator[Callable[..., Running]]:
    """Start a server for refs with options; stopped (gracefully) at the end of the test."""
    started: list[tuple[uvicorn.Server, threading.Thread, Running]] = []

    def start(refs: list[str], **options: Any) -> Running:
        app = create_app(refs, settings, ServeOptions(**options))
        port = free_port()
        server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        running = Running(f"http://127.0.0.1:{port}", app)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if running.client.get("/readyz").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        else:
            raise AssertionError("the server did not become ready")
        started.append((server, thread, running))
        return running

    plinth.configure(settings)
    yield start
    for server, thread, running in started:
        running.client.close()
        server.should_exit = True
        thread.join(timeout=30)
