"""Views of a run's artifacts: the file list, previews parsed here, the bytes for a frame, downloads.

    GET /ui/runs/{run_id}/artifacts                    every file: path, size, digest, kind
    GET /ui/runs/{run_id}/artifacts/preview?path=...   JSON: a table's head, text, pretty JSON
    GET /ui/runs/{run_id}/artifacts/raw?path=...       the bytes, for <img> and <iframe sandbox>
    GET /ui/runs/{run_id}/artifacts/download?path=...  the bytes as an attachment

An artifact is whatever a run's author logged, so none of it runs in the UI's origin: text,
tables and JSON travel as JSON the page shows as text; HTML and SVG are answered only by `raw`,
under a policy (`SANDBOX_CSP`) that puts the document in an opaque origin with no script,
framed only by this site's pages; every other answer carries a type the browser will not
sniff past. `raw` and `download` are addresses the browser loads itself (a frame, an image, a
link), which cannot send the workspace header: they take the workspace from `?workspace=`.
"""

from __future__ import annotations

import codecs
import csv
import io
import json
import math
import posixpath
from collections.abc import Iterator
from typing import IO, Any
from urllib.parse import quote

from fastapi import APIRouter, Query
from fastapi.responses import StreamingResponse

from plinth.core import entities as e
from plinth.core.access import Right
from plinth.core.errors import NotFound
from plinth.server.config import ServerConfig
from plinth.server.context import (
    RequestContext,
)
from plinth.server.views.common import READ, needs, view_router
from plinth.store.blobs import BlobStore

SANDBOX_CSP = "sandbox; default-src 'none'; img-src data:; style-src 'unsafe-inline'"
"""The policy of artifact bytes: an opaque origin, no script, no fetch, inline styles and data images."""
PREVIEW_ROWS = 50
TEXT_BYTES = 200 * 1024
TABLE_BYTES = 1 << 20
"""Bytes of a CSV read for its head: 50 rows of any sensible width."""
JSON_BYTES = 5 << 20
"""Largest JSON parsed to be shown pretty; a larger one shows its first TEXT_BYTES as they are."""
CELL_CHARS = 500
MAX_COLUMNS = 200
CHUNK = 1 << 20

KINDS = {
    **dict.fromkeys((".png", ".jpg", ".jpeg", ".gif", ".webp"), "image"),
    ".svg": "svg",
    **dict.fromkeys((".html", ".htm"), "html"),
    **dict.fromkeys((".csv", ".tsv"), "csv"),
    **dict.fromkeys((".parquet", ".pq"), "parquet"),
    ".json": "json",
    **dict.fromkeys(
        (".txt", ".log", ".md", ".rst", ".yaml", ".yml", ".toml", ".ini", ".cfg", ".py", ".sh",
         ".jsonl", ".ndjson", ".xml", ".out", ".err", ".diff", ".patch", ".sql", ".r", ".js", ".css"),
        "text",
    ),
}  # fmt: skip
"""How a file is previewed, by its suffix; others are sniffed: text, else binary (download only)."""
MEDIA = {
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".gif": "image/gif",
    ".webp": "image/webp",
    ".svg": "image/svg+xml",
    ".html": "text/html; charset=utf-8",
    ".htm": "text/html; charset=utf-8",
}
"""Types `raw` answers; anything else is plain text or bytes."""


def router(config: ServerConfig) -> APIRouter:
    """The artifact views of the run page (see the module's table)."""
    router = view_router()

    @router.get("/runs/{run_id}/artifacts", openapi_extra=needs(Right.READ))
    def artifact_list(run_id: str, ctx: RequestContext = READ) -> dict[str, Any]:
        """Every file the run logged, in path order, with how the page previews it.

        Raises (answered by the app's error table): NotFound for an unknown run.
        """
        items = ctx.store.list_artifacts(run_id)
        return {
            "run_id": run_id,
            "bytes": sum(a.size for a in items),
            "files": [
                {
                    "path": a.path,
                    "size": a.size,
                    "digest": a.digest,
                    "created_ms": a.created_ms,
                    "kind": kind_of(a.path),
                }
                for a in items
            ],
        }

    @router.get("/runs/{run_id}/artifacts/preview", openapi_extra=needs(Right.READ))
    def artifact_preview(
        run_id: str, path: str = Query(..., min_length=1), ctx: RequestContext = READ
    ) -> dict[str, Any]:
        """A file's preview: the head of a table, the start of a text, JSON laid out.

        Images, HTML and SVG are previewed from `raw`; this says only their kind and size.
        Raises (answered by the app's error table): NotFound for an unknown run or path.
        """
        item = find(ctx.store.list_artifacts(run_id, path), run_id, path)
        return {"path": item.path, "size": item.size, **preview(ctx.blobs, item)}

    @router.get(
        "/runs/{run_id}/artifacts/raw", openapi_extra=needs(Right.READ), response_class=StreamingResponse
    )
    def artifact_raw(
        run_id: str, path: str = Query(..., min_length=1), ctx: RequestContext = READ
    ) -> StreamingResponse:
        """The file's bytes to show in the page: sandboxed, framed by this site only, never sniffed.

        Raises (answered by the app's error table): NotFound for an unknown run or path.
        """
        item = find(ctx.store.list_artifacts(run_id, path), run_id, path)
        suffix = posixpath.splitext(item.path)[1].lower()
        media = MEDIA.get(suffix) or (
            "text/plain; charset=utf-8"
            if kind_of(item.path) in ("text", "json", "csv")
            else "application/octet-stream"
        )
        headers = {
            "content-security-policy": SANDBOX_CSP,
            "x-frame-options": "SAMEORIGIN",
            "x-content-type-options": "nosniff",
            "cache-control": "private, max-age=300",
            "content-length": str(item.size),
        }
        return StreamingResponse(_chunks(ctx.blobs.open_blob(item.digest)), media_type=media, headers=headers)

    @router.get(
        "/runs/{run_id}/artifacts/download", openapi_extra=needs(Right.READ), response_class=StreamingResponse
    )
    def artifact_download(
        run_id: str, path: str = Query(..., min_length=1), ctx: RequestContext = READ
    ) -> StreamingResponse:
        """The file's bytes as an attachment named like the file.

        Raises (answered by the app's error table): NotFound for an unknown run or path.
        """
        item = find(ctx.store.list_artifacts(run_id, path), run_id, path)
        headers = {
            "content-disposition": attachment(posixpath.basename(item.path)),
            "content-security-policy": SANDBOX_CSP,
            "x-content-type-options": "nosniff",
            "content-length": str(item.size),
        }
        return StreamingResponse(
            _chunks(ctx.blobs.open_blob(item.digest)), media_type="application/octet-stream", headers=headers
        )

    return router


def kind_of(path: str) -> str:
    """How the page previews `path`: image, svg, html, csv, parquet, json, text, or "file" (sniffed)."""
    return KINDS.get(posixpath.splitext(path)[1].lower(), "file")


def find(items: list[e.Artifact], run_id: str, path: str) -> e.Artifact:
    """The artifact at exactly `path` among `items` (a listing under that prefix).

    Raises:
        NotFound: no file at `path` (a folder is not a file).
    """
    for item in items:
        if item.path == path:
            return item
    what = "a folder" if items else "no such file"
    raise NotFound(
        f"Run {run_id} has no artifact file {path!r} ({what}); pick a file from its artifact list."
    )


def attachment(name: str) -> str:
    """A Content-Disposition saving the bytes as `name` (ASCII fallback, and the UTF-8 name)."""
    fallback = (
        "".join(c if c.isascii() and c.isprintable() and c not in '"\\' else "_" for c in name) or "artifact"
    )
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(name, safe='')}"


def preview(blobs: BlobStore, item: e.Artifact) -> dict[str, Any]:
    """What the page shows of a file, by its kind; a file that cannot be parsed says why."""
    kind = kind_of(item.path)
    if kind in ("image", "svg", "html"):
        return {"kind": kind}
    with blobs.open_blob(item.digest) as fh:
        if kind == "parquet":
            return parquet_head(fh)
        if kind == "csv":
            delimiter = "\t" if item.path.lower().endswith(".tsv") else ","
            return csv_head(fh.read(TABLE_BYTES), item.size, delimiter)
        if kind == "json" and item.size <= JSON_BYTES:
            return json_text(fh.read(JSON_BYTES))
        head = fh.read(TEXT_BYTES)
    if kind == "file" and not _looks_like_text(head):
        return {"kind": "binary"}
    return {"kind": "text", **_text(head, item.size)}


def csv_head(data: bytes, size: int, delimiter: str = ",") -> dict[str, Any]:
    """The header and first PREVIEW_ROWS rows of CSV bytes (the start of the file, `size` in all)."""
    complete = len(data) >= size
    text = codecs.decode(data, "utf-8", errors="replace") if complete else _utf8_prefix(data)
    if not complete:
        text = text[: text.rfind("\n") + 1] or text  # a row cut by the read is no row
    rows = csv.reader(io.StringIO(text.lstrip("\ufeff")), delimiter=delimiter)
    header = next(rows, [])
    body: list[list[Any]] = []
    counted = 0
    for row in rows:
        counted += 1
        if len(body) < PREVIEW_ROWS:
            body.append([_cell(v) for v in row[:MAX_COLUMNS]])
        elif not complete:
            break
    return {
        "kind": "table",
        "format": "csv",
        "columns": [_cell(v) for v in header[:MAX_COLUMNS]],
        "rows": body,
        "total_rows": counted if complete else None,
    }


def parquet_head(fh: IO[bytes]) -> dict[str, Any]:
    """The columns and first PREVIEW_ROWS rows of a Parquet file, and its row count."""
    import pyarrow as pa  # loaded when a Parquet file is previewed, not with the server
    import pyarrow.parquet as pq

    try:
        found = pq.ParquetFile(fh)
        names = found.schema_arrow.names[:MAX_COLUMNS]
        batch = next(found.iter_batches(batch_size=PREVIEW_ROWS, columns=names), None)
        rows = batch.to_pylist() if batch is not None else []
        total = found.metadata.num_rows
    except (pa.ArrowException, OSError) as exc:
        return {"kind": "table", "format": "parquet", "error": f"Not readable as Parquet: {exc}"}
    return {
        "kind": "table",
        "format": "parquet",
        "columns": names,
        "rows": [[_cell(row.get(n)) for n in names] for row in rows[:PREVIEW_ROWS]],
        "total_rows": total,
    }


def json_text(data: bytes) -> dict[str, Any]:
    """JSON laid out with two-space indents; text that is not JSON shows as text, saying so."""
    try:
        parsed = json.loads(data)
    except ValueError as exc:
        return {
            "kind": "text",
            "note": f"Not valid JSON ({exc}); shown as text.",
            **_text(data[:TEXT_BYTES], len(data)),
        }
    pretty = json.dumps(parsed, indent=2, ensure_ascii=False)
    shown = pretty[:TEXT_BYTES]
    return {"kind": "json", "text": shown, "truncated": len(shown) < len(pretty)}


def _text(head: bytes, size: int) -> dict[str, Any]:
    truncated = len(head) < size
    text = _utf8_prefix(head) if truncated else codecs.decode(head, "utf-8", errors="replace")
    return {"text": text, "truncated": truncated}


def _utf8_prefix(data: bytes) -> str:
    """`data` as UTF-8 where it may end inside a character (that partial character dropped)."""
    return codecs.getincrementaldecoder("utf-8")(errors="replace").decode(data, final=False)


def _looks_like_text(head: bytes) -> bool:
    sample = head[:8192]
    if b"\0" in sample:
        return False
    text = _utf8_prefix(sample)
    return text.count("\ufffd") <= len(text) // 100


def _cell(value: Any) -> Any:
    """A table cell as JSON: numbers and booleans as they are, the rest as (shortened) text."""
    if value is None or isinstance(value, (bool, int)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    text = value.decode("utf-8", errors="replace") if isinstance(value, bytes) else str(value)
    return text if len(text) <= CELL_CHARS else text[:CELL_CHARS] + "…"


def _chunks(fh: IO[bytes]) -> Iterator[bytes]:
    with fh:
        while chunk := fh.read(CHUNK):
            yield chunk
