"""The team server's outer layer, as one plain ASGI middleware (no per-request task or copy).

For every HTTP request it
- refuses a body past the limit with 413: at once by its Content-Length, or as soon as the
  streamed bytes pass it (routes under an exempt prefix, the artifact chunks, set their own);
- adds the security headers (nosniff, no framing, no referrer, a deny-all Content-Security-Policy
  on API answers, Strict-Transport-Security over TLS) that the route did not set itself;
- times the request and counts it per route template (`plinth.server.metrics`), and logs it
  (`plinth.server.access_log`) when the server keeps an access log;
- answers an exception that escaped every handler with a 500 in the one error shape, logged
  with the route and an incident id (never a request header).
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from plinth.server.access_log import AccessLog
from plinth.server.errors import JSON, error_body, unexpected
from plinth.server.metrics import ServerMetrics

BASE_HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
)
CSP = (b"content-security-policy", b"default-src 'none'; frame-ancestors 'none'")
HSTS = (b"strict-transport-security", b"max-age=31536000; includeSubDomains")
PAGES = ("/docs", "/redoc")
"""Paths of HTML pages that load scripts and styles: no deny-all policy there."""

UNMATCHED = "<unmatched>"


class ServerGuard:
    """Body limit, security headers, latency metrics and the last-resort 500, around `app`.

    Args:
        app: the ASGI app to guard.
        metrics: where each request's latency and status are counted.
        max_body_bytes: largest request body (413 beyond).
        exempt: path prefixes whose routes limit their own bodies.
        tls_only: send Strict-Transport-Security on every answer (the server is reached over
            https, e.g. behind a proxy); it is sent anyway on requests that came in over TLS.
        access: where each request is logged, if anywhere.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        metrics: ServerMetrics,
        max_body_bytes: int,
        exempt: Sequence[str] = (),
        tls_only: bool = False,
        access: AccessLog | None = None,
    ) -> None:
        self.app = app
        self.access = access
        self.metrics = metrics
        self.max_body_bytes = max_body_bytes
        self.exempt = tuple(exempt)
        self.tls_only = tls_only

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        path: str = scope["path"]
        extra = self._headers(scope, path)
        status = 500
        response_started = False

        async def send_guarded(message: Message) -> None:
            nonlocal status, response_started
            if message["type"] == "http.response.start":
                status = message["status"]
                response_started = True
                headers = list(message.get("headers", ()))
                own = {name.lower() for name, _ in headers}  # a route's own policy wins (the UI's pages)
                message["headers"] = [*headers, *(h for h in extra if h[0] not in own)]
            await send(message)

        try:
            limited = not path.startswith(self.exempt) if self.exempt else True
            if limited and _declared_length(scope) > self.max_body_bytes:
                await self._too_large(send_guarded)
                return
            await self.app(
                scope, _counting(receive, self.max_body_bytes) if limited else receive, send_guarded
            )
        except Exception as exc:
            if response_started:
                raise
            body = unexpected(scope.get("method", ""), _route(scope), exc)
            await _send(send_guarded, 500, body)
        finally:
            self.metrics.observe(
                _route(scope), scope.get("method", ""), status, time.perf_counter() - started
            )
            if self.access is not None:
                self.access.add(scope, status)

    def _headers(self, scope: Scope, path: str) -> list[tuple[bytes, bytes]]:
        extra = list(BASE_HEADERS)
        if not path.startswith(PAGES):
            extra.append(CSP)
        if self.tls_only or scope.get("scheme") == "https":
            extra.append(HSTS)
        return extra

    async def _too_large(self, send: Send) -> None:
        limit = self.max_body_bytes
        body = error_body(
            "InvalidInput",
            f"The request body is larger than the server's limit of {limit} bytes; send less per "
            "request (artifacts go through the chunked upload of /api/v1/blobs).",
        )
        await _send(send, 413, body, close=True)


def _declared_length(scope: Scope) -> int:
    for name, value in scope["headers"]:
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return 0
    return 0


def _counting(receive: Receive, limit: int) -> Receive:
    """`receive`, refusing with 413 once the body read so far passes `limit` bytes."""
    seen = 0

    async def counted() -> Message:
        nonlocal seen
        message = await receive()
        if message["type"] == "http.request":
            seen += len(message.get("body", b""))
            if seen > limit:
                raise HTTPException(
                    413,
                    f"The request body is larger than the server's limit of {limit} bytes; send less "
                    "per request (artifacts go through the chunked upload of /api/v1/blobs).",
                    headers={"connection": "close"},
                )
        return message

    return counted


def _route(scope: Scope) -> str:
    route = scope.get("route")
    path = getattr(route, "path", None)
    return path if isinstance(path, str) else UNMATCHED


async def _send(send: Send, status: int, body: bytes, *, close: bool = False) -> None:
    headers = [(b"content-type", JSON.encode()), (b"content-length", str(len(body)).encode())]
    if close:
        headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
