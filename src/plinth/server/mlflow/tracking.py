"""MLflow's tracking routes (being written)."""

from __future__ import annotations

from fastapi import APIRouter


def tracking_router() -> APIRouter:
    """The routes of this area."""
    return APIRouter()
