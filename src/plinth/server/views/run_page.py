"""Views of the web UI: run page."""

from __future__ import annotations

from fastapi import APIRouter

from plinth.server.config import ServerConfig
from plinth.server.views.common import view_router


def router(config: ServerConfig) -> APIRouter:
    """The run page views."""
    return view_router()
