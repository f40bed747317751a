"""The remote store's requests on keep-alive connections of the standard library."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Callable, Iterator, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from plinth.core.errors import InvalidInput, NotFound
from plinth.store.http import ServerClient
from plinth.store.keepalive import MAX_LINE, KeepAlive, proxied


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("content-length", "0")))
        status = 404 if self.path.endswith("/missing") else 200
        payload = (
            {"error": {"type": "NotFound", "message": "No such thing.", "problems": []}}
            if status == 404
            else {"path": self.path, "body": body.decode(), "peer": self.client_address[1]}
        )
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        if self.path.endswith("/bye"):
            self.send_header("connection", "close")
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def url() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_requests_share_one_connection_and_survive_its_close(url: str) -> None:
    client = ServerClient(url, token="plt_x")
    first = client.request("POST", "/runs/a", content=b"one").json()
    second = client.request("POST", "/runs/b", content=b"two").json()
    assert (first["path"], first["body"]) == ("/api/v1/runs/a", "one")
    assert second["peer"] == first["peer"]  # the same connection
    client.request("POST", "/bye", content=b"")  # the server closes this one
    third = client.request("POST", "/runs/c", content=b"three").json()
    assert third["body"] == "three" and third["peer"] != first["peer"]
    client.close()


def test_an_error_answer_is_raised_as_its_error(url: str) -> None:
    client = ServerClient(url, token="plt_x")
    with pytest.raises(NotFound, match="No such thing"):
        client.request("POST", "/missing", content=b"")
    client.close()


def test_a_proxy_in_the_environment_leaves_requests_to_httpx(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)
    assert not proxied()
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.example:3128")
    assert proxied()


def test_a_request_and_its_body_go_out_in_one_write(url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    writes: list[bytes] = []
    sendall = socket.socket.sendall

    def counted(sock: socket.socket, data: bytes, *args: int) -> None:
        if threading.current_thread() is threading.main_thread():  # the client's, not the server's
            writes.append(bytes(data))
        sendall(sock, data, *args)

    monkeypatch.setattr(socket.socket, "sendall", counted)
    keepalive = KeepAlive(url + "/api/v1", context=None, timeout=5.0)
    body = json.dumps({"x": "y" * 5000}).encode()  # past any buffer of the head
    answer = keepalive.request("POST", "/runs/a", "", {"content-type": "application/json"}, body)
    assert answer.json()["body"] == body.decode()
    assert len(writes) == 1 and writes[0].startswith(b"POST /api/v1/runs/a HTTP/1.1\r\n")
    assert writes[0].endswith(body)
    writes.clear()
    assert keepalive.request("POST", "/runs/b", "", {}, None).json()["body"] == ""  # no body: the head alone
    assert len(writes) == 1
    keepalive.close()


class Canned:
    """A server that reads one request per connection and answers with the bytes it is given."""

    def __init__(self, answer: bytes) -> None:
        self.answer = answer
        self.requests: list[bytes] = []
        self.server = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.server.getsockname()[1]}/api/v1"
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.server.accept()
            except OSError:
                return
            with conn:
                data = b""
                while b"\r\n\r\n" not in data:
                    data += conn.recv(65536)
                self.requests.append(data)
                conn.sendall(self.answer)
                conn.shutdown(socket.SHUT_WR)

    def close(self) -> None:
        self.server.close()


@pytest.fixture
def canned() -> Iterator[Callable[[bytes], Canned]]:
    made: list[Canned] = []

    def make(answer: bytes) -> Canned:
        made.append(Canned(answer))
        return made[-1]

    yield make
    for server in made:
        server.close()


def _ask(server: Canned, headers: Mapping[str, str] | None = None) -> tuple[int, bytes, str | None]:
    keepalive = KeepAlive(server.url, context=None, timeout=5.0)
    try:
        answer = keepalive.request("GET", "/runs", "a=1", headers or {}, None)
        return answer.status_code, answer.content, answer.headers.get("x-kind")
    finally:
        keepalive.close()


@pytest.mark.parametrize(
    ("answer", "status", "content"),
    [
        (b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-Kind: plain\r\n\r\nhello", 200, b"hello"),
        (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"3;x=1\r\nhel\r\n2\r\nlo\r\n0\r\nT: 1\r\n\r\n",
            200,
            b"hello",
        ),
        (b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok", 201, b"ok"),
        (b"HTTP/1.0 200 OK\r\n\r\nto the end", 200, b"to the end"),
        (b"HTTP/1.1 204 No Content\r\nX-Kind: none\r\n\r\n", 204, b""),
    ],
    ids=["length", "chunked", "continue", "until-close", "no-body"],
)
def test_answers_are_read_in_each_framing(
    canned: Callable[[bytes], Canned], answer: bytes, status: int, content: bytes
) -> None:
    server = canned(answer)
    assert _ask(server)[:2] == (status, content)
    assert server.requests[0].startswith(b"GET /api/v1/runs?a=1 HTTP/1.1\r\nHost: 127.0.0.1:")


@pytest.mark.parametrize(
    "answer",
    [
        b"",  # closed without a word
        b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort",  # cut short
        b"SPDY/3 200 OK\r\n\r\n",  # not HTTP/1.x
        b"HTTP/1.1 2xx OK\r\n\r\n",  # no status number
        b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nno colon here\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        b"HTTP/1.1 200 OK\r\nX: " + b"a" * (MAX_LINE + 10) + b"\r\n\r\n",
    ],
    ids=["silent", "short", "protocol", "status", "length", "header", "encoding", "chunk", "long-line"],
)
def test_a_malformed_answer_is_a_protocol_error(canned: Callable[[bytes], Canned], answer: bytes) -> None:
    with pytest.raises(httpx.RemoteProtocolError):
        _ask(canned(answer))


def test_a_header_that_would_forge_another_is_refused_unsent(canned: Callable[[bytes], Canned]) -> None:
    server = canned(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
    with pytest.raises(InvalidInput, match="line break"):
        _ask(server, {"authorization": "Bearer plt_x\r\nX-Plinth-Workspace: other"})
    assert server.requests == []


def test_a_closed_port_is_a_connect_error() -> None:
    with socket.create_server(("127.0.0.1", 0)) as probe:
        port = probe.getsockname()[1]
    keepalive = KeepAlive(f"http://127.0.0.1:{port}/api/v1", context=None, timeout=5.0)
    with pytest.raises(httpx.ConnectError):
        keepalive.request("GET", "/runs", "", {}, None)


def test_an_answer_reads_as_httpx_would(canned: Callable[[bytes], Canned]) -> None:
    server = canned(b'HTTP/1.1 409 Conflict\r\nContent-Length: 11\r\nRetry-After: 3\r\n\r\n{"a": "\xc3\xa9"}')
    keepalive = KeepAlive(server.url, context=None, timeout=5.0)
    answer = keepalive.request("GET", "/runs", "", {}, None)
    keepalive.close()
    assert (answer.status_code, answer.reason_phrase) == (409, "Conflict")
    assert answer.headers["retry-after"] == "3" and answer.headers.get("RETRY-AFTER") == "3"
    assert answer.json() == {"a": "é"} and answer.text == '{"a": "é"}'
