"""Views of the web UI: monitoring."""

from __future__ import annotations

from fastapi import APIRouter

from plinth.server.config import ServerConfig
from plinth.server.views.common import view_router


def router(config: ServerConfig) -> APIRouter:
    """The monitoring views."""
    return view_router()
