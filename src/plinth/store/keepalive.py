"""Keep-alive HTTP/1.1 connections for the remote store's calls: the request path of
`ServerClient.request` when nothing needs httpx's extras.

A tracked run is a handful of small requests, and httpx spends several times the server's own
work on each (URL parsing, header models, its connection pool's state machine). The standard
library's `http.client` sends a request in one write and parses the answer in C, so a call costs
a fraction as much. `KeepAlive` keeps a few such connections to one server for the threads of a
process (the metric writer, the heartbeat, the user's code) and raises httpx's own exceptions,
so `ServerClient` treats both paths alike. httpx stays the path for everything else: proxies,
request and response hooks, JSON bodies it encodes, and artifact streams.
"""

from __future__ import annotations

import http.client
import os
import select
import socket
import ssl
import threading
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

import httpx

MAX_IDLE = 16
"""Idle connections kept per server (more threads than that reconnect now and then)."""

_PROXY_VARIABLES = ("http_proxy", "https_proxy", "all_proxy")


def proxied() -> bool:
    """Whether the environment names a proxy, which httpx honours and this path does not."""
    return any(os.environ.get(name) or os.environ.get(name.upper()) for name in _PROXY_VARIABLES)


class KeepAlive:
    """Keep-alive connections to the server at `url` (`http://` or `https://`).

    Args:
        url: the server's base URL, path included (e.g. `http://host:8080/api/v1`).
        context: the TLS context for an https URL.
        timeout: seconds to connect, and to wait for each read or write.
    """

    def __init__(self, url: str, *, context: ssl.SSLContext | None, timeout: float) -> None:
        parts = urlsplit(url)
        self.url = url.rstrip("/")
        self.base_path = parts.path.rstrip("/")
        self.https = parts.scheme == "https"
        self.host = parts.hostname or "localhost"
        self.port = parts.port or (443 if self.https else 80)
        self.context = context if context is not None or not self.https else ssl.create_default_context()
        self.timeout = timeout
        self._idle: list[http.client.HTTPConnection] = []
        self._lock = threading.Lock()
        self._pid = os.getpid()

    def request(
        self, verb: str, path: str, query: str, headers: Mapping[str, str], body: bytes | None
    ) -> httpx.Response:
        """Send one request on an idle connection (else a new one) and read its whole answer.

        Raises:
            httpx.ConnectError: the server could not be reached (nothing was sent).
            httpx.TransportError: the connection failed once the request went out.
        """
        target = self.base_path + path + ("?" + query if query else "")
        conn, fresh = self._take()
        try:
            if fresh:
                conn.connect()
                # a request goes out in one write (`_Connection`), at once
                conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except (OSError, ssl.SSLError) as exc:
            conn.close()
            raise httpx.ConnectError(f"{type(exc).__name__}: {exc}") from exc
        try:
            conn.request(verb, target, body=body, headers=dict(headers))
            answer = conn.getresponse()
            content = answer.read()
        except (OSError, http.client.HTTPException) as exc:
            conn.close()
            kind = httpx.ReadTimeout if isinstance(exc, TimeoutError) else httpx.RemoteProtocolError
            raise kind(f"{type(exc).__name__}: {exc}") from exc
        except BaseException:
            conn.close()
            raise
        if answer.will_close:
            conn.close()
        else:
            self._keep(conn)
        request = httpx.Request(verb, self.url + path + ("?" + query if query else ""))
        return httpx.Response(answer.status, headers=answer.getheaders(), content=content, request=request)

    def close(self) -> None:
        """Close the idle connections."""
        with self._lock:
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()

    def _take(self) -> tuple[http.client.HTTPConnection, bool]:
        """An idle connection the server has not closed, else a new one (not yet connected)."""
        with self._lock:
            if self._pid != os.getpid():  # a forked child never shares its parent's sockets
                self._idle, self._pid = [], os.getpid()
            while self._idle:
                idle = self._idle.pop()
                if _usable(idle):
                    return idle, False
                idle.close()
        if self.https:
            return _TlsConnection(self.host, self.port, timeout=self.timeout, context=self.context), True
        return _Connection(self.host, self.port, timeout=self.timeout), True

    def _keep(self, conn: http.client.HTTPConnection) -> None:
        with self._lock:
            if len(self._idle) < MAX_IDLE and self._pid == os.getpid():
                self._idle.append(conn)
                return
        conn.close()


class _Connection(http.client.HTTPConnection):
    """An `http.client` connection that sends a request's head and its body (bytes) in one
    write, where the standard library makes two: the server then wakes once for the request,
    and the client makes one system call, not two."""

    _head: bytes | None = None
    """While `endheaders` sends a request with a body: the head, once sent, held for the body."""

    def endheaders(self, message_body: Any = None, *, encode_chunked: bool = False) -> None:
        if isinstance(message_body, bytes) and message_body and not encode_chunked:
            self._head = b""
        try:
            super().endheaders(message_body, encode_chunked=encode_chunked)
        finally:
            self._head = None

    def send(self, data: Any) -> None:
        head = self._head
        if head is None:
            super().send(data)
        elif not head:  # the head: it goes with the body, next
            self._head = bytes(data)
        else:
            self._head = None
            super().send(head + data)


class _TlsConnection(_Connection, http.client.HTTPSConnection):
    """`_Connection` over TLS."""


def _usable(conn: http.client.HTTPConnection) -> bool:
    """False when the server closed an idle connection (it is readable: its end, or stray bytes)."""
    sock = conn.sock
    if sock is None:
        return False
    try:
        poller = select.poll()
        poller.register(sock, select.POLLIN)
        return not poller.poll(0)
    except (OSError, ValueError):
        return False
