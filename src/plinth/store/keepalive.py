"""Keep-alive HTTP/1.1 connections for the remote store's calls: the request path of
`ServerClient.request` when nothing needs httpx's extras.

A tracked run is a handful of small requests, and a general HTTP client spends several times the
server's own work on each: httpx parses URLs and builds header models and its pool's state
machine; the standard library's `http.client` reads an answer's head through the `email`
package's parser. Here a request goes out in one write, its head laid out in one string, and the
answer is read by a small HTTP/1.1 parser over a buffered socket (status line, headers, then a
body of Content-Length bytes, in chunks, or up to the close). `KeepAlive` keeps a few such
connections to one server for the threads of a process (the metric writer, the heartbeat, the
user's code) and raises httpx's own exceptions, so `ServerClient` treats both paths alike. httpx
stays the path for everything else: proxies, request and response hooks, JSON bodies it encodes,
and artifact streams.
"""

from __future__ import annotations

import http
import io
import json
import os
import select
import socket
import ssl
import threading
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

import httpx

from plinth.core.errors import InvalidInput

MAX_IDLE = 16
"""Idle connections kept per server (more threads than that reconnect now and then)."""
MAX_LINE = 65_536
"""Longest status line, header line or chunk-size line read from a server."""
MAX_HEADERS = 100
"""Most header lines in one answer."""

_PROXY_VARIABLES = ("http_proxy", "https_proxy", "all_proxy")
_NO_BODY_STATUSES = frozenset({204, 304})
_UNSAFE = ("\r", "\n", "\0")


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
        host = f"[{self.host}]" if ":" in self.host else self.host
        self._host_line = f"Host: {host}" + ("" if parts.port is None else f":{self.port}") + "\r\n"
        self._idle: list[_Wire] = []
        self._lock = threading.Lock()
        self._pid = os.getpid()

    def request(
        self, verb: str, path: str, query: str, headers: Mapping[str, str], body: bytes | None
    ) -> Answer:
        """Send one request on an idle connection (else a new one) and read its whole answer.

        Raises:
            InvalidInput: a header holds a line break or NUL (it would forge another header).
            httpx.ConnectError: the server could not be reached (nothing was sent).
            httpx.TransportError: the connection failed once the request went out.
        """
        head = self._head(verb, self.base_path + path + ("?" + query if query else ""), headers, body)
        wire = self._take()
        try:
            status, answer_headers, content, closing = wire.exchange(head + body if body else head, verb)
        except (OSError, ValueError) as exc:  # ValueError: a malformed answer
            wire.close()
            kind = httpx.ReadTimeout if isinstance(exc, TimeoutError) else httpx.RemoteProtocolError
            raise kind(f"{type(exc).__name__}: {exc}") from exc
        except BaseException:
            wire.close()
            raise
        if closing:
            wire.close()
        else:
            self._keep(wire)
        return Answer(status, answer_headers, content)

    def close(self) -> None:
        """Close the idle connections."""
        with self._lock:
            idle, self._idle = self._idle, []
        for wire in idle:
            wire.close()

    def _head(self, verb: str, target: str, headers: Mapping[str, str], body: bytes | None) -> bytes:
        """The request's line and headers, with its Host and (where a body may go) Content-Length."""
        lines = [f"{verb} {target} HTTP/1.1\r\n", self._host_line]
        for name, value in headers.items():
            if any(mark in name or mark in value for mark in _UNSAFE):
                raise InvalidInput(
                    f"The request header {name!r} holds a line break or NUL; check PLINTH_TOKEN and "
                    "PLINTH_WORKSPACE for stray characters."
                )
            lines.append(f"{name}: {value}\r\n")
        if body or verb in ("POST", "PUT", "PATCH"):
            lines.append(f"Content-Length: {len(body or b'')}\r\n")
        lines.append("Accept-Encoding: identity\r\n\r\n")
        line, rest = lines[0], "".join(lines[1:])
        return line.encode("ascii") + rest.encode("latin-1")

    def _take(self) -> _Wire:
        """An idle connection the server has not closed, else a new one.

        Raises:
            httpx.ConnectError: the server could not be reached.
        """
        with self._lock:
            if self._pid != os.getpid():  # a forked child never shares its parent's sockets
                self._idle, self._pid = [], os.getpid()
            while self._idle:
                idle = self._idle.pop()
                if idle.usable():
                    return idle
                idle.close()
        try:
            sock = socket.create_connection((self.host, self.port), timeout=self.timeout)
        except OSError as exc:
            raise httpx.ConnectError(f"{type(exc).__name__}: {exc}") from exc
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # a request is one write
            if self.context is not None:
                sock = self.context.wrap_socket(sock, server_hostname=self.host)
        except (OSError, ssl.SSLError) as exc:
            sock.close()
            raise httpx.ConnectError(f"{type(exc).__name__}: {exc}") from exc
        return _Wire(sock)

    def _keep(self, wire: _Wire) -> None:
        with self._lock:
            if len(self._idle) < MAX_IDLE and self._pid == os.getpid():
                self._idle.append(wire)
                return
        wire.close()


class Answer:
    """An answer `KeepAlive` read, with the parts of `httpx.Response` the remote store reads
    (its headers are made into `httpx.Headers` only when asked for)."""

    __slots__ = ("_headers", "_raw", "content", "status_code")

    def __init__(self, status_code: int, headers: list[tuple[str, str]], content: bytes) -> None:
        self.status_code = status_code
        self.content = content
        self._raw = headers
        self._headers: httpx.Headers | None = None

    def __repr__(self) -> str:
        return f"<Answer [{self.status_code} {self.reason_phrase}]>"

    @property
    def headers(self) -> httpx.Headers:
        if self._headers is None:
            self._headers = httpx.Headers(self._raw)
        return self._headers

    @property
    def reason_phrase(self) -> str:
        try:
            return http.HTTPStatus(self.status_code).phrase
        except ValueError:
            return ""

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", errors="replace")

    def json(self, **kwargs: Any) -> Any:
        return json.loads(self.content, **kwargs)


class _Wire:
    """One connection: a request written at once, its answer read back whole."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.reader = sock.makefile("rb")

    def exchange(self, request: bytes, verb: str) -> tuple[int, list[tuple[str, str]], bytes, bool]:
        """Send `request` and read its answer: (status, headers, body, whether the connection
        must close after it).

        Raises:
            OSError: the connection failed or timed out.
            ValueError: the answer is not HTTP/1.x as this reader knows it.
        """
        self.sock.sendall(request)
        reader = self.reader
        while True:
            version, status = _status_line(reader)
            headers, length, chunked, closing = _headers(reader, version)
            if not (100 <= status < 200) or status == 101:
                break
        if verb == "HEAD" or status in _NO_BODY_STATUSES or 100 <= status < 200:
            return status, headers, b"", closing
        if chunked:
            return status, headers, _chunks(reader), closing
        if length is None:  # the body ends with the connection
            return status, headers, reader.read(), True
        content = reader.read(length)
        if len(content) < length:
            raise ValueError(f"the answer ended after {len(content)} of its {length} bytes")
        return status, headers, content, closing

    def usable(self) -> bool:
        """False when the server closed the idle connection (it is readable: its end, or stray bytes)."""
        try:
            poller = select.poll()
            poller.register(self.sock, select.POLLIN)
            return not poller.poll(0)
        except (OSError, ValueError):
            return False

    def close(self) -> None:
        self.reader.close()
        self.sock.close()


def _line(reader: io.BufferedReader) -> bytes:
    line = reader.readline(MAX_LINE + 1)
    if len(line) > MAX_LINE:
        raise ValueError(f"a line of the answer is longer than {MAX_LINE} bytes")
    if not line.endswith(b"\n"):
        raise ValueError("the server closed the connection in the middle of the answer's head")
    return line


def _status_line(reader: io.BufferedReader) -> tuple[str, int]:
    """The answer's HTTP version and status."""
    line = reader.readline(MAX_LINE + 1)
    if not line:
        raise ValueError("the server closed the connection without answering")
    if not line.endswith(b"\n") or len(line) > MAX_LINE:
        raise ValueError(f"a malformed status line {line[:80]!r}")
    parts = line.split(None, 2)
    version = parts[0].decode("latin-1") if parts else ""
    if len(parts) < 2 or not version.startswith("HTTP/1.") or len(parts[1]) != 3 or not parts[1].isdigit():
        raise ValueError(f"a malformed status line {line[:80]!r}")
    return version, int(parts[1])


def _headers(reader: io.BufferedReader, version: str) -> tuple[list[tuple[str, str]], int | None, bool, bool]:
    """The answer's headers, and from them: its Content-Length, whether it comes in chunks,
    and whether the server closes the connection after it (an HTTP/1.0 answer does, unless it
    says keep-alive)."""
    headers: list[tuple[str, str]] = []
    length: int | None = None
    chunked = False
    connection = ""
    while True:
        line = _line(reader)
        if line in (b"\r\n", b"\n"):
            closing = "close" in connection or (version == "HTTP/1.0" and "keep-alive" not in connection)
            return headers, length, chunked, closing
        if len(headers) >= MAX_HEADERS:
            raise ValueError(f"the answer has more than {MAX_HEADERS} headers")
        name, colon, value = line.decode("latin-1").partition(":")
        if not colon or not name or name != name.strip():
            raise ValueError(f"a malformed header line {line[:80]!r}")
        value = value.strip()
        headers.append((name, value))
        lowered = name.lower()
        if lowered == "content-length":
            if not value.isdigit() or (length is not None and int(value) != length):
                raise ValueError(f"a malformed Content-Length {value[:40]!r}")
            length = int(value)
        elif lowered == "transfer-encoding":
            chunked = value.lower().rsplit(",", 1)[-1].strip() == "chunked"
            if not chunked:
                raise ValueError(f"a Transfer-Encoding this client cannot read: {value[:40]!r}")
        elif lowered == "connection":
            connection += "," + value.lower()


def _chunks(reader: io.BufferedReader) -> bytes:
    """A body sent in chunks, with its trailer read past."""
    parts: list[bytes] = []
    while True:
        size_text = _line(reader).split(b";", 1)[0].strip()
        try:
            size = int(size_text, 16)
        except ValueError:
            raise ValueError(f"a malformed chunk size {size_text[:40]!r}") from None
        if size < 0:
            raise ValueError(f"a malformed chunk size {size_text[:40]!r}")
        if size == 0:
            while _line(reader) not in (b"\r\n", b"\n"):
                pass
            return b"".join(parts)
        data = reader.read(size)
        if len(data) < size or _line(reader) not in (b"\r\n", b"\n"):
            raise ValueError("the answer ended in the middle of a chunk")
        parts.append(data)
