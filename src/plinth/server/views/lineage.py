"""Views of the web UI: lineage."""

from __future__ import annotations

from fastapi import APIRouter

from plinth.server.config import ServerConfig
from plinth.server.views.common import view_router


def router(config: ServerConfig) -> APIRouter:
    """The lineage views."""
    return view_router()
