"""The server's access log: uvicorn's line per request, written by a thread of its own."""

from __future__ import annotations

import io
import threading
import time

from plinth.server.access_log import AccessLog

CLIENT = ("10.0.0.7", 5353)


def scope(path: str, query: bytes = b"", client: tuple[str, int] | None = CLIENT) -> dict[str, object]:
    return {"method": "GET", "path": path, "query_string": query, "client": client, "http_version": "1.1"}


def test_lines_read_as_uvicorns_and_are_written_on_close() -> None:
    out = io.StringIO()
    log = AccessLog(out)
    log.add(scope("/api/v1/runs", b"limit=5"), 200)
    log.add(scope("/missing", client=None), 404)
    log.add({**scope("/x"), "method": "POST"}, 599)  # a status without a phrase
    log.close()
    assert out.getvalue().splitlines() == [
        'INFO:     10.0.0.7:5353 - "GET /api/v1/runs?limit=5 HTTP/1.1" 200 OK',
        'INFO:     - - "GET /missing HTTP/1.1" 404 Not Found',
        'INFO:     10.0.0.7:5353 - "POST /x HTTP/1.1" 599 ',
    ]


def test_a_path_cannot_forge_a_line() -> None:
    out = io.StringIO()
    log = AccessLog(out)
    log.add(scope('/a\nINFO:     1.2.3.4:1 - "GET /admin HTTP/1.1" 200 OK'), 404)
    log.close()
    assert len(out.getvalue().splitlines()) == 1
    assert "%0A" in out.getvalue()


def test_the_writer_thread_writes_without_being_asked() -> None:
    written = threading.Event()

    class Sink(io.StringIO):
        def flush(self) -> None:
            written.set()

    out = Sink()
    log = AccessLog(out)
    log.add(scope("/healthz"), 200)
    assert written.wait(10), "the writer thread wrote nothing"
    assert "GET /healthz" in out.getvalue()
    log.add(scope("/readyz"), 200)
    deadline = time.monotonic() + 10
    while "/readyz" not in out.getvalue() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert [line.split('"')[1] for line in out.getvalue().splitlines()] == [
        "GET /healthz HTTP/1.1",
        "GET /readyz HTTP/1.1",
    ]


def test_a_broken_stream_loses_the_log_not_the_server() -> None:
    out = io.StringIO()
    log = AccessLog(out)
    out.close()
    log.add(scope("/healthz"), 200)
    log.close()  # no exception
