"""The server's access log: one line per request, written off the event loop.

uvicorn's access log formats each line through `logging` (a record, a copy of it, a colour
formatter) and writes it to the terminal before the request is done: a quarter of the CPU a
small request took. `AccessLog` keeps uvicorn's line (`INFO:     127.0.0.1:5353 - "GET
/healthz HTTP/1.1" 200 OK`), builds it with one format, and leaves the writing to a thread of
its own that wakes a few times a second and writes what has gathered in one call.
"""

from __future__ import annotations

import collections
import http
import sys
import threading
import time
import urllib.parse
from typing import TextIO

from starlette.types import Scope

FLUSH_S = 0.2
"""How long a line may wait before it is written."""

_PHRASES = {status.value: status.phrase for status in http.HTTPStatus}


class AccessLog:
    """Lines for `stream` (standard output when None, as uvicorn writes them), written by a
    daemon thread every `FLUSH_S` seconds and by `close`."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self._stream = stream
        self._lines: collections.deque[str] = collections.deque()
        self._writer: threading.Thread | None = None
        self._start_lock = threading.Lock()
        self._write_lock = threading.Lock()

    def add(self, scope: Scope, status: int) -> None:
        """Log the request `scope` describes, answered with `status`."""
        client = scope.get("client")
        where = f"{client[0]}:{client[1]}" if client else "-"
        query = scope.get("query_string", b"")
        path = urllib.parse.quote(scope.get("root_path", "") + scope["path"])  # no line breaks
        target = f"{path}?{query.decode('latin-1')}" if query else path
        request = f"{scope.get('method', '')} {target} HTTP/{scope.get('http_version', '1.1')}"
        self._lines.append(f'INFO:     {where} - "{request}" {status} {_PHRASES.get(status, "")}\n')
        if self._writer is None:
            self._start()

    def close(self) -> None:
        """Write every line still waiting (the thread keeps running for later ones)."""
        self._write()

    def _start(self) -> None:
        with self._start_lock:
            if self._writer is None:
                self._writer = threading.Thread(target=self._run, name="plinth-access-log", daemon=True)
                self._writer.start()

    def _run(self) -> None:
        while True:
            time.sleep(FLUSH_S)
            self._write()

    def _write(self) -> None:
        lines = self._lines
        if not lines:
            return
        with self._write_lock:  # one writer at a time, so lines keep their order
            chunk = []
            while lines:
                chunk.append(lines.popleft())
            stream = self._stream or sys.stdout
            try:
                stream.write("".join(chunk))
                stream.flush()
            except (OSError, ValueError):  # a closed or broken stream: the log is lost, not the server
                pass
