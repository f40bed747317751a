"""The web UI's files, served at `/`: `index.html` for every page address, the modules under `/static`.

The UI is one page that routes in the browser, so `/experiments/iris` or `/runs/<id>` opened
directly answer `index.html` and the page's script draws the rest from the API. Everything it
loads ships inside the package (`plinth.ui.STATIC`): no CDN, works offline. Pages are served
under a Content-Security-Policy that allows scripts and frames from this origin only; the
server's API answers keep their deny-all policy.
"""

from __future__ import annotations

import mimetypes
from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse, Response

from plinth.core.access import Right
from plinth.core.errors import NotFound
from plinth.server.context import right_extra
from plinth.ui import STATIC

PAGE_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data: blob:; frame-src 'self'; connect-src 'self'; object-src 'none'; "
    "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
"""The policy of the UI's page and files. Inline styles only: the chart library sizes its canvas
with element styles; no inline script, no eval, nothing from another origin."""
SECTIONS = (
    "experiments", "runs", "compare", "models", "flows", "deployments", "lineage", "audit",
    "erasures", "costs", "login",
)  # fmt: skip
"""First path segments of the UI's pages; anything else (the API, the probes) is not the UI's."""
TYPES = {".js": "text/javascript", ".mjs": "text/javascript", ".css": "text/css", ".svg": "image/svg+xml"}


def ui_router() -> APIRouter:
    """`GET /static/{path}` for the UI's files; `/` and each section's addresses answer `index.html`."""
    router = APIRouter(include_in_schema=False)
    public = right_extra(Right.PUBLIC)

    @router.get("/static/{path:path}", openapi_extra=public)
    def static(path: str) -> Response:
        return _file(path, cache="public, max-age=300")

    @router.get("/favicon.ico", openapi_extra=public)
    def favicon() -> Response:
        return _file("favicon.svg", cache="public, max-age=86400")

    def page() -> Response:
        return _file("index.html", cache="no-cache")

    router.add_api_route("/", page, methods=["GET"], openapi_extra=public)
    for section in SECTIONS:
        router.add_api_route(f"/{section}", page, methods=["GET"], openapi_extra=public)
        router.add_api_route(f"/{section}/{{rest:path}}", page, methods=["GET"], openapi_extra=public)
    return router


def _file(path: str, *, cache: str) -> Response:
    """A file of the UI by its path under STATIC; 404 for anything outside it or missing."""
    root = STATIC.resolve()
    target = (root / path).resolve()
    if not target.is_relative_to(root) or not target.is_file():
        raise NotFound(f"The web UI has no file {path!r}.")
    media = TYPES.get(target.suffix) or mimetypes.guess_type(target.name)[0] or "application/octet-stream"
    headers = {"content-security-policy": PAGE_CSP, "cache-control": cache}
    return FileResponse(Path(target), media_type=media, headers=headers)
