"""Hardening: body limits, CORS off unless configured, security headers, back-off, quiet logs."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

Factory = Callable[..., Any]

JSON = {"content-type": "application/json"}
SECURITY_HEADERS = {
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",
    "content-security-policy": "default-src 'none'; frame-ancestors 'none'",
}


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'meta' / 'plinth.db'}"


def test_a_body_past_the_limit_is_refused_by_its_length(server_factory: Factory, sqlite_url: str) -> None:
    server = server_factory(sqlite_url, max_body_bytes=1024)
    with server.client() as admin:
        answer = admin.post(
            "/api/v1/workspaces", content=b"x" * 1025, headers={"content-type": "application/json"}
        )
    assert answer.status_code == 413
    assert answer.json()["error"]["type"] == "InvalidInput"
    assert "1024 bytes" in answer.json()["error"]["message"]
    assert answer.headers["connection"] == "close"


def test_a_streamed_body_past_the_limit_is_refused_as_it_arrives(
    server_factory: Factory, sqlite_url: str
) -> None:
    server = server_factory(sqlite_url, max_body_bytes=1024)

    def chunks() -> Iterator[bytes]:  # no Content-Length: sent chunked
        yield b'{"name": "'
        for _ in range(10):
            yield b"a" * 200
        yield b'"}'

    with server.client() as admin:
        answer = admin.post(
            "/api/v1/workspaces", content=chunks(), headers={"content-type": "application/json"}
        )
    assert answer.status_code == 413
    assert "1024 bytes" in answer.json()["error"]["message"]


def test_artifact_chunks_are_not_held_to_the_json_limit(server_factory: Factory, sqlite_url: str) -> None:
    server = server_factory(sqlite_url, max_body_bytes=1024)
    with server.client() as admin:
        answer = admin.put("/api/v1/blobs/uploads/no-such-upload", content=b"x" * 4096)
    assert answer.status_code != 413


def test_a_body_within_the_limit_passes(server_factory: Factory, sqlite_url: str) -> None:
    server = server_factory(sqlite_url, max_body_bytes=1024)
    with server.client() as admin:
        answer = admin.post("/api/v1/workspaces", json={"name": "vision"})
    assert answer.status_code == 201 or answer.status_code == 200, answer.text


def test_security_headers_on_every_answer(server_factory: Factory, sqlite_url: str) -> None:
    server = server_factory(sqlite_url)
    with server.client() as admin, server.client(token="") as anonymous:
        answers = [
            admin.get("/healthz"),
            anonymous.get("/api/v1/whoami"),
            admin.get("/nope"),
            admin.get("/metrics"),
        ]
    for answer in answers:
        for name, value in SECURITY_HEADERS.items():
            assert answer.headers.get(name) == value, (answer.request.url, name)
        assert "strict-transport-security" not in answer.headers  # plain http: see test_tls
    assert [a.status_code for a in answers] == [200, 401, 404, 200]


def preflight(client: httpx.Client, origin: str) -> httpx.Response:
    return client.options(
        "/api/v1/whoami",
        headers={
            "origin": origin,
            "access-control-request-method": "GET",
            "access-control-request-headers": "authorization",
        },
    )


def test_cors_is_off_by_default(server_factory: Factory, sqlite_url: str) -> None:
    server = server_factory(sqlite_url)
    with server.client() as admin:
        answers = [
            preflight(admin, "https://evil.example"),
            admin.get("/healthz", headers={"origin": "https://a.b"}),
        ]
    for answer in answers:
        assert not any(name.startswith("access-control-") for name in answer.headers)


def test_cors_answers_the_configured_origins_only(server_factory: Factory, sqlite_url: str) -> None:
    server = server_factory(sqlite_url, cors_origins=("https://app.example.com",))
    with server.client() as admin:
        allowed = preflight(admin, "https://app.example.com")
        other = preflight(admin, "https://evil.example")
        simple = admin.get("/api/v1/whoami", headers={"origin": "https://app.example.com"})
    assert allowed.status_code == 200
    assert allowed.headers["access-control-allow-origin"] == "https://app.example.com"
    assert "authorization" in allowed.headers["access-control-allow-headers"].lower()
    assert "access-control-allow-origin" not in other.headers
    assert simple.headers["access-control-allow-origin"] == "https://app.example.com"


def test_repeated_bad_tokens_are_backed_off(server_factory: Factory, sqlite_url: str) -> None:
    server = server_factory(sqlite_url)
    with server.client(token="plt_not-a-real-token") as guesser:
        statuses = [guesser.get("/api/v1/whoami").status_code for _ in range(5)]
        refused = guesser.get("/api/v1/whoami")
    assert statuses == [401] * 5
    assert refused.status_code == 429
    assert refused.json()["error"]["type"] == "TooManyAttempts"
    assert int(refused.headers["retry-after"]) >= 1
    with server.client(headers={"x-forwarded-for": "10.1.2.3"}) as someone_else:
        assert someone_else.get("/api/v1/whoami").status_code == 200  # counted per client


@pytest.mark.slow
def test_tokens_never_reach_the_log(server_process: Callable[..., Any], sqlite_url: str) -> None:
    server = server_process(sqlite_url, args=["--log-level", "debug"])
    bad = "plt_this-token-does-not-exist-0123456789abcdef"
    with server.client() as admin, server.client(token=bad) as stranger:
        issued = server.issue("ci", "editor")
        with server.client(token=issued) as ci:
            assert ci.get("/api/v1/whoami").status_code == 200
            ci.get("/api/v1/no-such-route", params={"q": "1"})
        assert stranger.get("/api/v1/whoami").status_code == 401
        admin.post("/api/v1/workspaces", content=b"{broken", headers=JSON)
    server.stop()
    log = server.log()
    assert "GET /api/v1/whoami" in log  # the access log is on: what it holds was checked
    for secret in (server.admin_token, issued, bad):
        assert secret not in log
        assert secret[4:20] not in log
