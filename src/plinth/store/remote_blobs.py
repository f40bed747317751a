"""The artifact store of a team server, over its blob API (`plinth.server.blob_routes`).

`RemoteBlobStore` is what `open_blobs` gives when `PLINTH_STORE=http(s)://…`: the same
content-addressed store as `BlobStore`, with the bytes going through the server (or straight
to S3 through presigned URLs the server hands out). Memory stays constant whatever the size:
a file is hashed in one pass, then sent in chunks of `chunk_bytes` (skipped when the server
already holds that digest); a download is streamed to disk and hashed on the way. Both resume
after a dropped connection, an upload from the offset the server reports, a download with a
`Range` request from the bytes already received; the server checks the sha256 of what it
received before storing it, and the client checks the sha256 of what it downloaded before
returning it.

It has no local path or filesystem: `path_of`, `fs` and `open_blob` raise ConfigError.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import random
import re
import time
from collections.abc import Callable, Iterator
from email.utils import parsedate_to_datetime
from typing import IO, Any

import httpx

from plinth.core.errors import (
    ConfigError,
    ConflictError,
    IntegrityError,
    InvalidInput,
    NotFound,
    ServerUnavailable,
    StoreError,
)
from plinth.store.blobs import CHUNK, BlobInfo, BlobStore, check_readable_file, file_digest
from plinth.store.http import ServerClient, error_of

CHUNK_BYTES = 8 << 20
ATTEMPTS = 6
"""Tries in a row without progress before a transfer gives up."""
_RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
_PRESIGN_HEADER = "x-plinth-presign"
_DIGEST = re.compile(r"[0-9a-f]{64}")


class RemoteBlobStore(BlobStore):
    """The blobs of the team server `client` talks to.

    A `BlobStore` to every caller (tracking, datasets, the registry, flow results): the same
    methods with the same meaning, sha256 checked at both ends.

    Args:
        client: the server connection (its token and workspace decide what may be read or
            written: downloads need `load`, uploads `write`, listing and deleting `superuser`).
        chunk_bytes: bytes per upload request.
        attempts: tries in a row without progress before a transfer raises ServerUnavailable.

    Example:
        >>> blobs = RemoteBlobStore(ServerClient("https://plinth.example.com", token=token))
        >>> digest, size = blobs.put_file("model.onnx")
        >>> blobs.get_file(digest, "copy.onnx")
    """

    def __init__(
        self, client: ServerClient, *, chunk_bytes: int = CHUNK_BYTES, attempts: int = ATTEMPTS
    ) -> None:
        self.client = client
        self.url = client.url
        self.root = self.url
        self.endpoint = None
        self.local = False
        self._options = {}
        self._fs = None
        self.chunk_bytes = chunk_bytes
        self.attempts = attempts
        self._direct: httpx.Client | None = None  # for presigned URLs: never sends our token
        self._offered = False  # the server offers presigned URLs (it says so in answers to HEAD)

    # what has no meaning remotely ---------------------------------------------------------------
    @property
    def fs(self) -> Any:
        """Not available: the blobs live behind the team server."""
        raise self._no_local("filesystem")

    def path_of(self, digest: str) -> str:
        """Not available: the blobs live behind the team server."""
        raise self._no_local("path")

    def open_blob(self, digest: str) -> IO[bytes]:
        """Not available: read with `get_file` or `read_bytes`, which verify the hash."""
        raise self._no_local("file to open")

    def stale_temp_files(self, older_than: float) -> list[str]:
        """None here: the server sweeps its own unfinished uploads."""
        return []

    def _no_local(self, what: str) -> ConfigError:
        return ConfigError(
            f"The artifact store is the team server {self.url}, so there is no local {what}; "
            "use get_file() or read_bytes() to fetch it."
        )

    # lookups ------------------------------------------------------------------------------------
    def exists(self, digest: str) -> bool:
        """True when the server holds the blob."""
        try:
            self._head(digest)
        except NotFound:
            return False
        return True

    def stat(self, digest: str) -> BlobInfo:
        """The blob's size and modification time, as the server reports them."""
        response = self._head(digest)
        return BlobInfo(digest, int(response.headers["content-length"]), _mtime(response))

    def list_blobs(self) -> Iterator[BlobInfo]:
        """Every blob the server holds (needs the superuser: blobs are shared by all workspaces)."""
        with self.client.http.stream("GET", "/blobs") as response:
            self._raise_for(response)
            for line in response.iter_lines():
                if line.strip():
                    item = json.loads(line)
                    yield BlobInfo(item["digest"], int(item["size"]), float(item["mtime"]))

    def delete(self, digest: str) -> None:
        """Delete a blob nothing refers to (garbage collection; needs the superuser).

        Raises:
            ConflictError: a workspace still refers to the blob; it stays.
        """
        try:
            self.client.request("DELETE", f"/blobs/{_checked(digest)}")
        except NotFound:
            pass

    # uploads ------------------------------------------------------------------------------------
    def put_file(self, path: str) -> tuple[str, int]:
        """Store a local file through the server; identical content is sent once.

        Raises:
            InvalidInput: `path` is not a regular file this process can read.
            StoreError: the file changed while it was sent, or the server refused it.
        """
        check_readable_file(path)
        digest, size = file_digest(path)
        self._put(digest, size, lambda: open(path, "rb"), path)
        return digest, size

    def put_bytes(self, data: bytes, *, durable: bool = True) -> tuple[str, int]:
        """Store bytes held in memory through the server. Returns (digest, size).

        `durable` is accepted for compatibility: the server always stores blobs durably.
        """
        digest = hashlib.sha256(data).hexdigest()
        self._put(digest, len(data), lambda: io.BytesIO(data), "the bytes")
        return digest, len(data)

    def adopt_file(self, path: str, digest: str) -> int:
        """Store a local file known to hash to `digest` through the server, and remove it."""
        found, size = self.put_file(path)
        if found != digest:
            raise StoreError(f"{path} changed while it was being stored; store it again.")
        os.unlink(path)
        return size

    def _put(self, digest: str, size: int, opener: Callable[[], IO[bytes]], what: str) -> None:
        head = self._head_or_none(digest)
        if head is not None:
            return
        body = {"presign": self._offered, "size": size}
        started = self.client.request("POST", "/blobs/uploads", json=body).json()
        upload_id = started["upload_id"]
        chunk = min(self.chunk_bytes, int(started.get("chunk_bytes") or self.chunk_bytes))
        with opener() as fh:
            if started.get("url"):
                self._put_direct(started["url"], fh, size)
            else:
                self._send_chunks(upload_id, fh, size, chunk)
        self._commit(upload_id, digest, what)

    def _send_chunks(self, upload_id: str, fh: IO[bytes], size: int, chunk: int) -> None:
        """Send the file from where the server's copy ends, resuming after each failure."""
        offset, failures = 0, 0
        while offset < size:
            length = min(chunk, size - offset)
            fh.seek(offset)
            # streamed in pieces: a fresh chunk-sized buffer per request fragments the heap
            headers = {"upload-offset": str(offset), "content-length": str(length)}
            try:
                response = self.client.http.patch(
                    f"/blobs/uploads/{upload_id}", content=_read_chunks(fh, length), headers=headers
                )
                if response.status_code in _RETRY_STATUSES or response.status_code == 409:
                    raise _Retry(response)
                self._raise_for(response)
                offset = int(response.headers["upload-offset"])
                failures = 0
            except (httpx.TransportError, _Retry) as exc:
                failures = self._pause(failures, exc)
                offset = self._upload_offset(upload_id)

    def _upload_offset(self, upload_id: str) -> int:
        response = self._retrying(lambda: self.client.http.head(f"/blobs/uploads/{upload_id}"))
        self._raise_for(response)
        return int(response.headers["upload-offset"])

    def _put_direct(self, url: str, fh: IO[bytes], size: int) -> None:
        """PUT the file to a presigned URL (the server verifies it at commit)."""

        def send() -> httpx.Response:
            fh.seek(0)
            return self._direct_client.put(
                url, content=_read_chunks(fh), headers={"content-length": str(size)}
            )

        response = self._retrying(send)
        if response.status_code >= 300:
            raise StoreError(
                f"The artifact store refused the upload through its presigned URL "
                f"({response.status_code}): {response.text[:200]}"
            )

    def _commit(self, upload_id: str, digest: str, what: str) -> None:
        try:
            self.client.request("POST", f"/blobs/uploads/{upload_id}/commit", json={"digest": digest})
        except NotFound:  # committed by an earlier try whose answer was lost
            if not self.exists(digest):
                raise
        except ConflictError:
            raise
        except InvalidInput as exc:
            raise StoreError(f"{what} changed while being stored ({exc}); store it again.") from exc

    # downloads ----------------------------------------------------------------------------------
    def _chunks(self, digest: str, name: str | None) -> Iterator[bytes]:
        """The blob's bytes, streamed; a dropped connection resumes from the bytes received.

        `get_file` and `read_bytes` (inherited) hash what this yields and refuse a mismatch.
        """
        head = self._head(_checked(digest), name)
        size = int(head.headers["content-length"])
        direct = _PRESIGN_HEADER in head.headers
        received, failures = 0, 0
        while received < size:
            try:
                with self._open_stream(digest, received, direct) as response:
                    for chunk in response.iter_bytes(CHUNK):
                        received += len(chunk)
                        failures = 0
                        yield chunk
                if received < size:
                    raise _Retry(None)
            except (httpx.TransportError, _Retry) as exc:
                failures = self._pause(failures, exc)

    def _open_stream(
        self, digest: str, start: int, direct: bool
    ) -> contextlib.AbstractContextManager[httpx.Response]:
        headers = {"range": f"bytes={start}-"} if start else {}
        if direct:
            url = self.client.request("POST", f"/blobs/{digest}/presign").json().get("url")
            if url:
                return _opened(self._direct_client.stream("GET", url, headers=headers), self)
        return _opened(self.client.http.stream("GET", f"/blobs/{digest}", headers=headers), self)

    # plumbing -----------------------------------------------------------------------------------
    @property
    def _direct_client(self) -> httpx.Client:
        if self._direct is None:
            self._direct = httpx.Client(timeout=self.client.http.timeout, follow_redirects=False)
        return self._direct

    def _head(self, digest: str, name: str | None = None) -> httpx.Response:
        response = self._retrying(lambda: self.client.http.head(f"/blobs/{_checked(digest)}"))
        self._offered = _PRESIGN_HEADER in response.headers
        if response.status_code == 404:
            raise NotFound(
                f"Blob {digest[:12]}… of {name or 'an artifact'} is missing from the team server "
                f"{self.url}; it may have been deleted. Re-log the artifact."
            )
        self._raise_for(response)
        return response

    def _head_or_none(self, digest: str) -> httpx.Response | None:
        try:
            return self._head(digest)
        except NotFound:
            return None

    def _retrying(self, send: Callable[[], httpx.Response]) -> httpx.Response:
        """`send()`, tried again after connection failures and 5xx answers."""
        failures = 0
        while True:
            try:
                response = send()
                if response.status_code not in _RETRY_STATUSES:
                    return response
                raise _Retry(response)
            except (httpx.TransportError, _Retry) as exc:
                failures = self._pause(failures, exc)

    def _pause(self, failures: int, exc: Exception) -> int:
        """Wait before the next try (exponential back-off with jitter); give up past `attempts`."""
        failures += 1
        if failures >= self.attempts:
            raise ServerUnavailable(
                f"The team server {self.url} kept failing while moving a blob ({_describe(exc)}); "
                "check that it is running and reachable, then try again."
            ) from exc
        time.sleep(min(5.0, 0.1 * 2**failures) * (0.5 + random.random()))
        return failures

    def _raise_for(self, response: httpx.Response) -> None:
        """Raise the error an answer of the server carries (none for a success)."""
        if response.status_code < 400:
            return
        if not response.is_closed:
            response.read()
        raise error_of(response)


class _Retry(Exception):
    """An answer worth trying again (5xx, 429, a conflicting chunk offset, a short download)."""

    def __init__(self, response: httpx.Response | None) -> None:
        super().__init__(
            f"HTTP {response.status_code}" if response is not None else "the download stopped early"
        )
        self.response = response


@contextlib.contextmanager
def _opened(stream: Any, store: RemoteBlobStore) -> Iterator[httpx.Response]:
    """A streamed GET whose error answers raise on entry (those worth a retry as `_Retry`)."""
    with stream as response:
        if response.status_code in _RETRY_STATUSES:
            raise _Retry(response)
        store._raise_for(response)
        yield response


def _checked(digest: str) -> str:
    if not isinstance(digest, str) or not _DIGEST.fullmatch(digest):
        raise IntegrityError(
            f"{digest!r:.80} is not a sha256 digest, so it names no blob; the record holding it "
            "was edited or corrupted. Restore the store from a backup."
        )
    return digest


def _read_chunks(fh: IO[bytes], length: int | None = None) -> Iterator[bytes]:
    """The next `length` bytes of `fh` (all that is left: None), in pieces of CHUNK."""
    left = length
    while left is None or left > 0:
        chunk = fh.read(CHUNK if left is None else min(CHUNK, left))
        if not chunk:
            return
        if left is not None:
            left -= len(chunk)
        yield chunk


def _mtime(response: httpx.Response) -> float:
    value = response.headers.get("last-modified")
    return parsedate_to_datetime(value).timestamp() if value else 0.0


def _describe(exc: Exception) -> str:
    return str(exc) or type(exc).__name__
