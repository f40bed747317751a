"""MLflow's registry routes (being written)."""

from __future__ import annotations

from fastapi import APIRouter


def registry_router() -> APIRouter:
    """The routes of this area."""
    return APIRouter()
