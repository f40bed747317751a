"""The web UI's view API, under `/api/v1/ui`: answers shaped for its pages.

The UI reads only through the server's API. The store routes answer one store call each; a page
often needs several, and a chart needs a series cut down to what it can draw, so each page's
data has a view here, built on the same public functions and the same workspace store (with
the same rights) as the rest of the API. One module per area of the UI.
"""

from __future__ import annotations

from fastapi import APIRouter

from plinth.server.config import ServerConfig
from plinth.server.views import (
    artifacts,
    compare,
    flows,
    governance,
    lineage,
    monitoring,
    registry,
    run_page,
    session,
    tracking,
)


def views_routers(config: ServerConfig) -> list[APIRouter]:
    """Every view of the UI, each naming the right it needs: one router per area."""
    areas = [session, tracking, run_page, artifacts, compare, registry, flows, monitoring, lineage]
    return [area.router(config) for area in (*areas, governance)]
