"""MLflow's artifacts routes (being written)."""

from __future__ import annotations

from fastapi import APIRouter


def artifacts_router() -> APIRouter:
    """The routes of this area."""
    return APIRouter()
