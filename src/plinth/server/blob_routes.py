"""Artifact blobs through the team server: streamed, resumable, sha256-checked both ways.

    HEAD   /api/v1/blobs/{digest}                 load       exists? Content-Length, ETag
    GET    /api/v1/blobs/{digest}                 load       the bytes; `Range: bytes=a-` → 206
    POST   /api/v1/blobs/{digest}/presign         load       {"url": presigned GET or null}
    POST   /api/v1/blobs/uploads                  write      {"upload_id", "chunk_bytes", "url"}
    HEAD   /api/v1/blobs/uploads/{id}             write      Upload-Offset: bytes held so far
    PATCH  /api/v1/blobs/uploads/{id}             write      a chunk at `Upload-Offset`
    POST   /api/v1/blobs/uploads/{id}/commit      write      {"digest"} → stored, or 422
    DELETE /api/v1/blobs/uploads/{id}             write      abandon an upload
    GET    /api/v1/blobs                          superuser  every blob, one JSON per line
    DELETE /api/v1/blobs/{digest}                 superuser  delete an unreferenced blob (gc)

Uploads need `write`, not `predict`: a model server's token writes prediction logs through
the store API, and the server itself turns them into segment blobs, so no predictor ever sends
a blob; keeping uploads from predictor tokens (which sit on serving hosts) keeps them from
filling the artifact store. Blobs are shared by every workspace (content-addressed), so the
two store-wide operations, listing every digest and deleting, are the superuser's: a listing
would hand one workspace the digests of another's blobs, and a delete is refused (409) while
any workspace still refers to the blob. A digest is 64 lowercase hex characters and an upload
id 32 url-safe characters; anything else is refused with 422 before it names a file.

When the artifact store is on S3 and the config says `presign = true`, HEAD answers
`X-Plinth-Presign: get, put`; the client then reads through a presigned GET and writes through
a presigned PUT to a staging key, which the server verifies before it counts (`store.presign`).
"""

from __future__ import annotations

import base64
import json
import os
import re
import tempfile
import threading
import time
from collections.abc import Iterator
from typing import IO, Annotated, Any

from fastapi import APIRouter, Depends, Header, Path, Request
from fastapi.responses import Response, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from plinth.core.access import Right
from plinth.core.errors import ConflictError, InvalidInput, NotFound
from plinth.core.http import RequestError
from plinth.server.context import RequestContext, require, right_extra
from plinth.server.uploads import STALE_S, Uploads
from plinth.store.blobs import CHUNK, BlobInfo, BlobStore
from plinth.store.presign import MAX_PUT, Presigner, supports_presign

CHUNK_BYTES = 8 << 20
"""The chunk size clients are told to send."""
DIGEST = r"^[0-9a-f]{64}$"
UPLOAD_ID = r"^[A-Za-z0-9_-]{32}$"
PRESIGN_HEADER = "x-plinth-presign"
OCTETS = "application/octet-stream"

Digest = Annotated[str, Path(pattern=DIGEST, description="sha256 of the blob, 64 lowercase hex characters")]
UploadId = Annotated[str, Path(pattern=UPLOAD_ID, description="the id POST /blobs/uploads gave")]
Loader = Annotated[RequestContext, Depends(require(Right.LOAD))]
Writer = Annotated[RequestContext, Depends(require(Right.WRITE))]
Superuser = Annotated[RequestContext, Depends(require(Right.SUPERUSER))]

_RANGE = re.compile(r"bytes=(\d*)-(\d*)")


class NewUpload(BaseModel):
    """Body of `POST /blobs/uploads` (optional): ask for a presigned PUT for `size` bytes."""

    model_config = ConfigDict(extra="forbid")
    presign: bool = False
    size: int | None = Field(default=None, ge=0)


class Commit(BaseModel):
    """Body of `POST /blobs/uploads/{id}/commit`: the sha256 the client hashed."""

    model_config = ConfigDict(extra="forbid")
    digest: str = Field(pattern=DIGEST)


def blob_router() -> APIRouter:
    """The artifact routes under `/api/v1/blobs` (see the module's table)."""
    router = APIRouter(prefix="/api/v1/blobs", tags=["blobs"])
    area = _UploadArea()

    @router.head("/{digest}", openapi_extra=right_extra(Right.LOAD))
    def blob_head(digest: Digest, ctx: Loader, request: Request) -> Response:
        offer = {PRESIGN_HEADER: "get, put"} if _presigner(request, ctx.blobs) is not None else {}
        try:
            info = ctx.blobs.stat(digest)
        except NotFound:  # a HEAD answer has no body; the offer tells an uploader how to send
            return Response(status_code=404, headers=offer)
        return Response(
            status_code=200, headers={**_identity(info), "content-length": str(info.size), **offer}
        )

    @router.get(
        "/{digest}",
        openapi_extra=right_extra(Right.LOAD),
        response_class=StreamingResponse,
        responses={206: {"description": "the range asked for"}, 416: {"description": "a range past the end"}},
    )
    def blob_get(digest: Digest, ctx: Loader, request: Request) -> StreamingResponse:
        info = ctx.blobs.stat(digest)
        start, end = byte_range(request.headers.get("range"), info.size)
        headers = {**_identity(info), "content-length": str(end - start)}
        partial = end - start < info.size
        if partial:
            headers["content-range"] = f"bytes {start}-{end - 1}/{info.size}"
        fh = ctx.blobs.open_blob(digest)
        return StreamingResponse(
            _read(fh, start, end), status_code=206 if partial else 200, media_type=OCTETS, headers=headers
        )

    @router.post("/{digest}/presign", openapi_extra=right_extra(Right.LOAD))
    def blob_presign(digest: Digest, ctx: Loader, request: Request) -> dict[str, Any]:
        presigner = _presigner(request, ctx.blobs)
        url = presigner.get_url(digest) if presigner is not None else None
        return {"url": url, "expires_s": presigner.expires_s if presigner else None}

    @router.post("/uploads", status_code=201, openapi_extra=right_extra(Right.WRITE))
    def upload_start(ctx: Writer, request: Request, body: NewUpload | None = None) -> dict[str, Any]:
        uploads = area.get(ctx.blobs)
        presigner = _presigner(request, ctx.blobs)
        if uploads.due():
            uploads.sweep(time.time() - STALE_S)
            if presigner is not None:
                presigner.sweep(time.time() - STALE_S)
        upload_id = uploads.create()
        url = None
        if presigner is not None and body is not None and body.presign and (body.size or 0) <= MAX_PUT:
            url = presigner.put_url(upload_id)
        return {"upload_id": upload_id, "chunk_bytes": CHUNK_BYTES, "url": url}

    @router.head("/uploads/{upload_id}", openapi_extra=right_extra(Right.WRITE))
    def upload_offset(upload_id: UploadId, ctx: Writer) -> Response:
        offset = area.get(ctx.blobs).offset(upload_id)
        return Response(status_code=200, headers={"upload-offset": str(offset)})

    @router.patch("/uploads/{upload_id}", status_code=204, openapi_extra=right_extra(Right.WRITE))
    async def upload_chunk(
        upload_id: UploadId,
        ctx: Writer,
        request: Request,
        offset: Annotated[int, Header(alias="upload-offset", ge=0, le=2**62)],
    ) -> Response:
        end = await area.get(ctx.blobs).receive(upload_id, offset, request.stream())
        return Response(status_code=204, headers={"upload-offset": str(end)})

    @router.post("/uploads/{upload_id}/commit", status_code=201, openapi_extra=right_extra(Right.WRITE))
    def upload_commit(upload_id: UploadId, body: Commit, ctx: Writer, request: Request) -> dict[str, Any]:
        uploads = area.get(ctx.blobs)
        presigner = _presigner(request, ctx.blobs)
        if presigner is not None and uploads.offset(upload_id) == 0 and presigner.is_staged(upload_id):
            size = presigner.commit(upload_id, body.digest)
            uploads.discard(upload_id)
            return {"digest": body.digest, "size": size}
        found, size = uploads.digest(upload_id)
        if found != body.digest:
            uploads.discard(upload_id)
            raise InvalidInput(
                f"The {size} bytes sent for upload {upload_id} hash to {found[:12]}…, not "
                f"{body.digest[:12]}…; they were discarded. Send the file again."
            )
        ctx.blobs.adopt_file(uploads.path(upload_id), body.digest)
        uploads.discard(upload_id)
        return {"digest": body.digest, "size": size}

    @router.delete("/uploads/{upload_id}", status_code=204, openapi_extra=right_extra(Right.WRITE))
    def upload_abort(upload_id: UploadId, ctx: Writer, request: Request) -> Response:
        area.get(ctx.blobs).discard(upload_id)
        presigner = _presigner(request, ctx.blobs)
        if presigner is not None:
            presigner.discard(upload_id)
        return Response(status_code=204)

    @router.get("", openapi_extra=right_extra(Right.SUPERUSER), response_class=StreamingResponse)
    def blob_list(ctx: Superuser) -> StreamingResponse:
        lines = (json.dumps(_listed(info)) + "\n" for info in ctx.blobs.list_blobs())
        return StreamingResponse(lines, media_type="application/x-ndjson")

    @router.delete("/{digest}", status_code=204, openapi_extra=right_extra(Right.SUPERUSER))
    def blob_delete(digest: Digest, ctx: Superuser) -> Response:
        holder = _referrer(ctx, digest)
        if holder is not None:
            raise ConflictError(
                f"Blob {digest[:12]}… is still referred to in workspace {holder!r}, so it was not "
                "deleted; only blobs nothing refers to may go."
            )
        ctx.blobs.delete(digest)
        return Response(status_code=204)

    return router


def byte_range(header: str | None, size: int) -> tuple[int, int]:
    """The `[start, end)` a `Range` header asks of `size` bytes; all of them without one.

    One range of the `bytes` unit is served; any other form is ignored (the whole blob is sent,
    as RFC 9110 allows).

    Raises:
        RequestError: the range starts past the end (416).
    """
    found = _RANGE.fullmatch((header or "").strip())
    if found is None or size == 0:
        return 0, size
    first, last = found.group(1), found.group(2)
    if first == "" and last == "":
        return 0, size
    if first == "":  # the last N bytes
        if int(last) == 0:
            raise _unsatisfiable(header, size)
        return max(0, size - int(last)), size
    start = int(first)
    if start >= size:
        raise _unsatisfiable(header, size)
    end = size if last == "" else int(last) + 1
    if end <= start:  # not a valid range: ignored
        return 0, size
    return start, min(end, size)


def _unsatisfiable(header: str | None, size: int) -> RequestError:
    return RequestError(f"The range {header!r} lies outside the blob's {size} bytes; ask for less.", 416)


class _UploadArea:
    """The `Uploads` of the app's artifact store, made on first use."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._uploads: Uploads | None = None

    def get(self, blobs: BlobStore) -> Uploads:
        if self._uploads is None:
            with self._lock:
                if self._uploads is None:
                    self._uploads = Uploads(upload_folder(blobs))
        return self._uploads


def upload_folder(blobs: BlobStore) -> str:
    """Where partial uploads wait: beside the blobs of a local store (so a finished one moves in
    without a copy), else a folder of the server host's own, shared by its workers."""
    if blobs.local:
        return os.path.join(blobs.root, "uploads")
    tag = base64.b32encode(blobs.url.encode()).decode().lower().rstrip("=")[-24:]
    return os.path.join(tempfile.gettempdir(), f"plinth-uploads-{os.getuid()}-{tag}")


def _presigner(request: Request, blobs: BlobStore) -> Presigner | None:
    """A presigner when the config turns presigning on and the store is on S3."""
    config = getattr(request.app.state, "config", None)
    if not getattr(config, "presign", False) or not supports_presign(blobs):
        return None
    return Presigner(blobs)


def _identity(info: BlobInfo) -> dict[str, str]:
    raw = bytes.fromhex(info.digest)
    return {
        "etag": f'"{info.digest}"',
        "digest": "sha-256=" + base64.b64encode(raw).decode(),
        "accept-ranges": "bytes",
    }


def _read(fh: IO[bytes], start: int, end: int) -> Iterator[bytes]:
    with fh:
        fh.seek(start)
        left = end - start
        while left > 0:
            chunk = fh.read(min(CHUNK, left))
            if not chunk:
                return
            left -= len(chunk)
            yield chunk


def _listed(info: BlobInfo) -> dict[str, Any]:
    return {"digest": info.digest, "size": info.size, "mtime": info.mtime}


def _referrer(ctx: RequestContext, digest: str) -> str | None:
    """The first workspace whose records refer to `digest`, or None."""
    stores = ctx.state.stores
    for name in stores.names():
        if digest in stores.get(name).referenced_digests():
            return name
    return None
