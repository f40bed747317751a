"""Partial artifact uploads of the team server: one file per upload, resumable from its size.

A client opens an upload (an unguessable id), sends the bytes in chunks, each written at the
offset it names (`Upload-Offset`), and commits it with the sha256 it expects. The file's size
is the offset a client resumes from after a dropped connection, so the state lives on disk and
every worker process of the server sees the same uploads. A chunk is streamed to the file as
it arrives, never held whole in memory; the file is hashed as it grows (a running hash per
upload, kept while chunks arrive in order at one worker), or from its start at commit
otherwise. Uploads left unfinished for a day are swept.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import re
import secrets
import threading
import time
from collections.abc import AsyncIterator
from typing import IO, Any

import anyio.to_thread

from plinth.core.errors import ConflictError, InvalidInput, NotFound
from plinth.core.http import RequestError
from plinth.store.blobs import CHUNK, file_digest

MAX_CHUNK = 64 << 20
"""Largest chunk one request may carry (413 beyond); clients send 8 MiB."""
STALE_S = 86_400.0
"""Uploads untouched this long are swept."""
SWEEP_EVERY_S = 3_600.0

_ID = re.compile(r"[A-Za-z0-9_-]{32}")


def check_upload_id(upload_id: str) -> str:
    """`upload_id` when it has the shape of an upload id; InvalidInput (422) otherwise."""
    if not _ID.fullmatch(upload_id):
        raise InvalidInput(
            f"{upload_id!r:.80} is not an upload id; start one with POST /api/v1/blobs/uploads."
        )
    return upload_id


class Uploads:
    """The uploads under way, as files in `folder` (shared by the server's workers).

    Args:
        folder: where partial uploads are kept; on a local artifact store, a folder on its
            filesystem, so a finished upload is moved into the store without a copy.
    """

    def __init__(self, folder: str) -> None:
        self.folder = folder
        os.makedirs(folder, mode=0o700, exist_ok=True)
        self._hashes: dict[str, tuple[int, Any]] = {}  # id -> (bytes hashed, running sha256)
        self._lock = threading.Lock()
        self._swept = 0.0

    def create(self) -> str:
        """Open a new, empty upload; returns its id."""
        upload_id = secrets.token_urlsafe(24)
        with open(self.path(upload_id), "xb"):
            pass
        with self._lock:
            self._hashes[upload_id] = (0, hashlib.sha256())
        return upload_id

    def path(self, upload_id: str) -> str:
        """The file holding the upload's bytes (whether or not it exists)."""
        return os.path.join(self.folder, check_upload_id(upload_id))

    def offset(self, upload_id: str) -> int:
        """How many bytes the upload holds: where the next chunk starts.

        Raises:
            NotFound: no such upload (never started, committed, or swept).
        """
        try:
            return os.path.getsize(self.path(upload_id))
        except FileNotFoundError:
            raise _no_upload(upload_id) from None

    async def receive(self, upload_id: str, offset: int, chunks: AsyncIterator[bytes]) -> int:
        """Write a streamed chunk at `offset` (dropping anything the upload held past it).

        Returns the upload's size afterwards.

        Raises:
            NotFound: no such upload.
            ConflictError: `offset` is past the upload's size (the message gives the size to
                resume from), or another request is writing this upload now.
            RequestError: the chunk is larger than MAX_CHUNK (413).
        """
        fh = await anyio.to_thread.run_sync(self._open, upload_id, offset)
        try:
            running = self._running(upload_id, offset)
            received, pending = 0, bytearray()
            async for part in chunks:
                received += len(part)
                if received > MAX_CHUNK:
                    raise RequestError(
                        f"An upload chunk may hold at most {MAX_CHUNK} bytes; send smaller chunks.", 413
                    )
                pending += part
                if len(pending) >= CHUNK:
                    await anyio.to_thread.run_sync(_write, fh, bytes(pending), running)
                    pending.clear()
            await anyio.to_thread.run_sync(_write, fh, bytes(pending), running)
            end = offset + received
            if running is not None:
                with self._lock:
                    self._hashes[upload_id] = (end, running)
            return end
        finally:
            await anyio.to_thread.run_sync(fh.close)

    def _open(self, upload_id: str, offset: int) -> IO[bytes]:
        try:
            fh = open(self.path(upload_id), "r+b")
        except FileNotFoundError:
            raise _no_upload(upload_id) from None
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.close()
            raise ConflictError(
                f"Upload {upload_id} is being written by another request; send one chunk at a time."
            ) from None
        size = os.fstat(fh.fileno()).st_size
        if offset > size:
            fh.close()
            raise ConflictError(
                f"Upload {upload_id} holds {size} bytes, so a chunk cannot start at {offset}; "
                f"resume from Upload-Offset {size}."
            )
        fh.truncate(offset)
        fh.seek(offset)
        return fh

    def _running(self, upload_id: str, offset: int) -> Any:
        """The running hash to continue, if it covers exactly the bytes before `offset`."""
        with self._lock:
            hashed, running = self._hashes.pop(upload_id, (-1, None))
        if offset == 0:
            return hashlib.sha256()
        return running if hashed == offset else None

    def digest(self, upload_id: str) -> tuple[str, int]:
        """The sha256 and size of the upload's bytes (from the running hash when it covers them)."""
        size = self.offset(upload_id)
        with self._lock:
            hashed, running = self._hashes.pop(upload_id, (-1, None))
        if running is not None and hashed == size:
            return running.hexdigest(), size
        return file_digest(self.path(upload_id))

    def discard(self, upload_id: str) -> None:
        """Forget an upload and delete its bytes (an upload already gone is fine)."""
        with self._lock:
            self._hashes.pop(upload_id, None)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path(upload_id))

    def sweep(self, older_than: float) -> list[str]:
        """Delete the uploads last written before `older_than` (epoch seconds); returns their ids."""
        gone = []
        for name in os.listdir(self.folder):
            path = os.path.join(self.folder, name)
            with contextlib.suppress(FileNotFoundError):
                if _ID.fullmatch(name) and os.path.getmtime(path) < older_than:
                    self.discard(name)
                    gone.append(name)
        return gone

    def due(self) -> bool:
        """True at most once an hour per process: time to sweep stale uploads."""
        now = time.time()
        with self._lock:
            if now - self._swept < SWEEP_EVERY_S:
                return False
            self._swept = now
        return True


def _write(fh: IO[bytes], data: bytes, running: Any) -> None:
    fh.write(data)
    if running is not None:
        running.update(data)


def _no_upload(upload_id: str) -> NotFound:
    return NotFound(
        f"No upload {upload_id}: it was committed, or left unfinished for a day and swept; "
        "start a new one with POST /api/v1/blobs/uploads."
    )
