"""The remote store's requests on keep-alive connections of the standard library."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from plinth.core.errors import NotFound
from plinth.store.http import ServerClient
from plinth.store.keepalive import KeepAlive, proxied


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
