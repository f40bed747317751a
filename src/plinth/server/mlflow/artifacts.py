"""MLflow's proxied artifacts (`mlflow-artifacts:` URIs) over plinth's runs and blob store.

    PUT    /api/2.0/mlflow-artifacts/artifacts/<path>        write      store a file
    GET    /api/2.0/mlflow-artifacts/artifacts/<path>        load, read the file's bytes
    GET    /api/2.0/mlflow-artifacts/artifacts?path=<path>   load, read a folder's entries
    DELETE /api/2.0/mlflow-artifacts/artifacts/<path>        maintain   refused (501)
    POST   /api/2.0/mlflow-artifacts/mpu/{create,complete,abort}/<path>   refused (501)
    GET    /api/2.0/mlflow-artifacts/presigned/<path>        refused (501)

A path names one of two roots: `<exp>/<run_id>/artifacts/<rel>` is artifact `<rel>` of that
run, and `<exp>/models/<model_id>/artifacts/<rel>` is artifact `models/<model_id>/<rel>` of the
run holding that logged model's files. The run decides: the experiment part is MLflow's
address only. A file's bytes stream to a staging file while they are hashed, move into the
content-addressed blob store, and only then are recorded as the run's artifact, so a broken
upload records nothing. As on the blob routes, a file's size is bounded by the artifact store's
room, not by the JSON body limit (from which these routes are exempt). Reading a logged model's
files needs `load` (what loading a model
needs); reading a run's other files needs `read`. MLflow's client uploads every file with one
PUT unless the server offers multipart uploads, which plinth does not: its refusal starts with
the sentence the client reads as "fall back to one PUT". Artifacts are never deleted here:
the files a run logged stay with it (a new PUT at the same path replaces one).
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO, Annotated, Any

import anyio.to_thread
from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response, StreamingResponse

from plinth.core.access import Right
from plinth.core.entities import Artifact
from plinth.core.errors import IntegrityError, InvalidInput, NotFound
from plinth.core.validation import check_artifact_path
from plinth.server.blob_routes import upload_folder
from plinth.server.context import RequestContext, require
from plinth.server.mlflow.common import ARTIFACTS_PREFIX, logged_model_prefix, needs
from plinth.server.uploads import Uploads
from plinth.store.base import ArtifactRecord, TrackingStore
from plinth.store.blobs import CHUNK, BlobStore

FILES = f"{ARTIFACTS_PREFIX}/artifacts"
OCTETS = "application/octet-stream"
WHOLE_BYTES = 4 * 1024 * 1024
"""Files up to this size are read, checked and sent in one piece; larger ones stream."""
MULTIPART_REFUSAL = "Multipart upload is not supported for the current artifact repository"
"""How MLflow's client recognises a server without multipart uploads (it then sends one PUT)."""

Loader = Annotated[RequestContext, Depends(require(Right.LOAD))]
Writer = Annotated[RequestContext, Depends(require(Right.WRITE))]
Maintainer = Annotated[RequestContext, Depends(require(Right.MAINTAIN))]


@dataclass(frozen=True)
class ArtifactAddress:
    """What an MLflow artifact path names: below a run's root, or below a logged model's root.

    `rel` is the path below that root ("" for the root itself), checked as an artifact path.
    """

    experiment_id: str
    run_id: str | None
    model_id: str | None
    rel: str


@dataclass(frozen=True)
class ArtifactTarget:
    """An address resolved to plinth's terms: artifact `path` ("" for the root) of run `run_id`."""

    run_id: str
    path: str


@dataclass(frozen=True)
class FolderEntry:
    """One entry of a folder listing: a file (with its size) or a folder."""

    name: str
    is_dir: bool
    size: int | None


def parse_artifact_path(path: str | None) -> ArtifactAddress:
    """The address of an MLflow artifact path (`<exp>/<run>/artifacts/...` or
    `<exp>/models/<model_id>/artifacts/...`).

    Raises:
        InvalidInput: a path of another shape, or one with `..`, `.`, an absolute start, a
            control character (NUL included) or a part too long to store.
    """
    parts = (path or "").split("/")
    if len(parts) >= 3 and parts[2] == "artifacts" and parts[0] and parts[1] and parts[1] != "models":
        return ArtifactAddress(parts[0], parts[1], None, _rel(path, parts[3:]))
    if len(parts) >= 4 and parts[1] == "models" and parts[3] == "artifacts" and parts[0] and parts[2]:
        return ArtifactAddress(parts[0], None, parts[2], _rel(path, parts[4:]))
    raise InvalidInput(
        f"Artifact path {str(path)[:200]!r} names no run or logged model; plinth serves "
        "'<experiment_id>/<run_id>/artifacts/<path>' and "
        "'<experiment_id>/models/<model_id>/artifacts/<path>'."
    )


def _rel(path: str | None, parts: list[str]) -> str:
    """The part below a root, checked ("" for the root; a trailing `/` names the same folder)."""
    if parts and parts[-1] == "":
        parts = parts[:-1]
    if not parts:
        return ""
    try:
        return check_artifact_path("/".join(parts))
    except InvalidInput as exc:
        raise InvalidInput(f"Artifact path {str(path)[:200]!r} cannot be used: {exc}") from None


def resolve(store: TrackingStore, address: ArtifactAddress) -> ArtifactTarget:
    """The run and artifact path an address names (a logged model's files live in its run).

    Raises:
        NotFound: no such logged model.
    """
    if address.model_id is not None:
        model = store.get_logged_model(address.model_id)
        return ArtifactTarget(model.run_id, model_files_path(model.id, address.rel))
    return ArtifactTarget(address.run_id or "", address.rel)


def model_files_path(model_id: str, rel: str) -> str:
    """Where file `rel` ("" for the root) of a logged model lies among its run's artifacts."""
    prefix = logged_model_prefix(model_id)
    return prefix + rel if rel else prefix.rstrip("/")


def folder_entries(store: TrackingStore, target: ArtifactTarget) -> list[FolderEntry]:
    """The files and folders directly inside folder `target` (none when it is a file or absent)."""
    base = f"{target.path}/" if target.path else ""
    files: dict[str, int] = {}
    folders: set[str] = set()
    for item in store.list_artifacts(target.run_id, target.path):
        if not item.path.startswith(base):
            continue  # the target itself, a file
        name, below, _ = item.path[len(base) :].partition("/")
        if below:
            folders.add(name)
        else:
            files[name] = item.size
    entries = [FolderEntry(name, True, None) for name in folders]
    entries += [FolderEntry(name, False, size) for name, size in files.items()]
    return sorted(entries, key=lambda entry: (entry.name, entry.is_dir))


def file_response(ctx: RequestContext, target: ArtifactTarget, shown: str) -> Response:
    """The bytes of artifact `target` as a download (`shown`: its path as the caller named it).

    A small file is read and checked whole, then sent in one piece (a model's files are mostly
    small, and a client fetches them in parallel). A larger one streams, its hash checked as the
    bytes go: a blob that no longer matches its digest is cut short before its last chunk, so
    the client sees a failed download, never wrong bytes.

    Raises:
        NotFound: no file at that path (a folder, or nothing).
        IntegrityError: a small file's blob no longer matches its digest.
    """
    item = _artifact(ctx.store, target, shown)
    headers = {
        "content-disposition": "attachment",  # never rendered in the UI's origin
        "x-content-type-options": "nosniff",
        "etag": f'"{item.digest}"',
    }
    if item.size <= WHOLE_BYTES:
        data = ctx.blobs.read_bytes(item.digest, name=f"artifact {item.path!r} of run {item.run_id}")
        return Response(data, media_type=OCTETS, headers=headers)
    stream = ctx.blobs.open_blob(item.digest)
    headers["content-length"] = str(item.size)
    return StreamingResponse(_verified(stream, item), media_type=OCTETS, headers=headers)


def _artifact(store: TrackingStore, target: ArtifactTarget, shown: str) -> Artifact:
    if target.path:
        for item in store.list_artifacts(target.run_id, target.path):
            if item.path == target.path:
                return item
    raise NotFound(
        f"No artifact file at {shown!r} (run {target.run_id}); list the folder with "
        f"GET {FILES}?path=<folder> to see what it holds."
    )


def _verified(stream: IO[bytes], item: Artifact) -> Iterator[bytes]:
    h = hashlib.sha256()
    with stream:
        held = stream.read(CHUNK)
        while held:
            h.update(held)
            ahead = stream.read(CHUNK)
            if not ahead and h.hexdigest() != item.digest:
                raise IntegrityError(
                    f"Artifact {item.path!r} of run {item.run_id} is corrupted in the blob store "
                    "(its bytes no longer match their digest); the download was cut short. "
                    "Restore the blob from a backup or log the file again."
                )
            yield held
            held = ahead


def not_implemented(message: str) -> Response:
    """MLflow's answer for an operation this server does not offer (NOT_IMPLEMENTED, 501)."""
    body = json.dumps({"error_code": "NOT_IMPLEMENTED", "message": message}, ensure_ascii=True)
    return Response(body, status_code=501, media_type="application/json")


def require_read_unless_model(ctx: RequestContext, address: ArtifactAddress) -> None:
    """A run's own files need `read`; a logged model's files need only `load` (checked already).

    Raises:
        Forbidden: the caller's role lacks `read` and the path is not a logged model's.
    """
    if address.model_id is None:
        ctx.state.authorizer.authorize(ctx.principal, ctx.workspace, Right.READ)


class _Staging:
    """Where uploads wait while they arrive: the blob routes' upload folder, made on first use.

    Staged files are named as the blob routes' uploads are, so a server killed mid-upload leaves
    nothing that their daily sweep does not remove.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._uploads: Uploads | None = None

    def get(self, blobs: BlobStore) -> Uploads:
        with self._lock:
            if self._uploads is None:
                self._uploads = Uploads(upload_folder(blobs))
            return self._uploads


async def receive_file(request: Request, path: str) -> tuple[str, int]:
    """Write the request's body to `path` as it arrives; returns its sha256 and size."""
    h = hashlib.sha256()
    size = 0
    out: IO[bytes] = await anyio.to_thread.run_sync(open, path, "wb")
    try:
        pending = bytearray()
        async for part in request.stream():
            pending += part
            if len(pending) >= CHUNK:
                await anyio.to_thread.run_sync(out.write, bytes(pending))
                h.update(pending)
                size += len(pending)
                pending.clear()
        await anyio.to_thread.run_sync(out.write, bytes(pending))
        h.update(pending)
        size += len(pending)
    finally:
        await anyio.to_thread.run_sync(out.close)
    return h.hexdigest(), size


def record_file(ctx: RequestContext, target: ArtifactTarget, staged: str, digest: str, size: int) -> None:
    """Move a received file into the blob store, then record it as the run's artifact.

    Raises:
        NotFound: no such run.
    """
    ctx.blobs.adopt_file(staged, digest)
    ctx.store.add_artifacts(target.run_id, [ArtifactRecord(target.path, digest, size)])


def artifacts_router() -> APIRouter:
    """The routes of MLflow's proxied-artifacts API (see the module's table)."""
    router = APIRouter(tags=["mlflow"])
    staging = _Staging()

    @router.put(f"{FILES}/{{artifact_path:path}}", openapi_extra=needs(Right.WRITE))
    async def upload_artifact(artifact_path: str, ctx: Writer, request: Request) -> dict[str, Any]:
        address = parse_artifact_path(artifact_path)
        if not address.rel:
            raise InvalidInput(
                f"Artifact path {artifact_path[:200]!r} names a root folder; name a file in it."
            )
        target = await anyio.to_thread.run_sync(resolve, ctx.store, address)
        uploads = staging.get(ctx.blobs)
        upload_id = await anyio.to_thread.run_sync(uploads.create)
        try:
            staged = uploads.path(upload_id)
            digest, size = await receive_file(request, staged)
            await anyio.to_thread.run_sync(record_file, ctx, target, staged, digest, size)
        finally:
            await anyio.to_thread.run_sync(uploads.discard, upload_id)
        return {}

    @router.get(f"{FILES}/{{artifact_path:path}}", openapi_extra=needs(Right.LOAD))
    def download_artifact(artifact_path: str, ctx: Loader) -> Response:
        address = parse_artifact_path(artifact_path)
        require_read_unless_model(ctx, address)
        return file_response(ctx, resolve(ctx.store, address), artifact_path)

    @router.get(FILES, openapi_extra=needs(Right.LOAD))
    def list_artifacts(ctx: Loader, path: str | None = None) -> dict[str, Any]:
        address = parse_artifact_path(path)
        require_read_unless_model(ctx, address)
        entries = folder_entries(ctx.store, resolve(ctx.store, address))
        return {"files": [_listed(entry) for entry in entries]}

    @router.delete(f"{FILES}/{{artifact_path:path}}", openapi_extra=needs(Right.MAINTAIN))
    def delete_artifact(artifact_path: str, ctx: Maintainer) -> Response:
        parse_artifact_path(artifact_path)
        return not_implemented(
            "plinth does not delete artifacts: the files a run logged stay with it (lineage and "
            "audit refer to them). Log a new file at the same path to replace one."
        )

    for step in ("create", "complete", "abort"):
        router.add_api_route(
            f"{ARTIFACTS_PREFIX}/mpu/{step}/{{artifact_path:path}}",
            _refuse_multipart,
            methods=["POST"],
            openapi_extra=needs(Right.WRITE),
            name=f"multipart_{step}",
        )

    @router.get(f"{ARTIFACTS_PREFIX}/presigned/{{artifact_path:path}}", openapi_extra=needs(Right.LOAD))
    def presigned_download(artifact_path: str, ctx: Loader) -> Response:
        return not_implemented(
            "plinth serves artifact downloads through this server only, not presigned URLs; unset "
            "MLFLOW_ENABLE_PROXY_MULTIPART_DOWNLOAD."
        )

    return router


def _refuse_multipart(artifact_path: str, ctx: Writer) -> Response:
    return not_implemented(
        f"{MULTIPART_REFUSAL}: plinth takes each file in one PUT "
        f"({FILES}/<path>); unset MLFLOW_ENABLE_PROXY_MULTIPART_UPLOAD."
    )


def _listed(entry: FolderEntry) -> dict[str, Any]:
    if entry.is_dir:
        return {"path": entry.name, "is_dir": True}
    return {"path": entry.name, "is_dir": False, "file_size": entry.size}
