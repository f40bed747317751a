"""Hashing the input for lineage: sha256 in a background thread, while chunks are scored."""

from __future__ import annotations

import hashlib
import os
import threading

from plinth.core.errors import InvalidInput
from plinth.serving.batch.inputs import Input

_HASH_BLOCK = 4 << 20


class Hasher:
    """sha256 of the input, computed in a background thread (a folder: over each file's digest)."""

    def __init__(self, source: Input) -> None:
        self._source = source
        self._stop = threading.Event()
        self._digest: str | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="plinth-input-hash", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            digests = [(f, *self._file(f)) for f in self._source.files]
            if self._source.folder:
                lines = "".join(f"{os.path.relpath(f, self._source.path)}\t{n}\t{d}\n" for f, d, n in digests)
                self._digest = hashlib.sha256(lines.encode()).hexdigest()
            else:
                self._digest = digests[0][1]
        except BaseException as exc:
            self._error = exc

    def _file(self, path: str) -> tuple[str, int]:
        h = hashlib.sha256()
        size = 0
        buffer = bytearray(_HASH_BLOCK)
        view = memoryview(buffer)
        with open(path, "rb", buffering=0) as fh:
            while count := fh.readinto(buffer):
                if self._stop.is_set():
                    raise InterruptedError("stopped")
                h.update(view[:count])  # releases the GIL: scoring goes on meanwhile
                size += count
        return h.hexdigest(), size

    def result(self) -> str:
        """The digest (waits for the thread)."""
        self._thread.join()
        if self._error is not None:
            raise InvalidInput(f"Cannot hash input {self._source.path}: {self._error}") from self._error
        assert self._digest is not None
        return self._digest

    def stop(self) -> None:
        """Ask the thread to give up (after a failure)."""
        self._stop.set()
