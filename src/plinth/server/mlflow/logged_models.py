"""MLflow's logged models routes (being written)."""

from __future__ import annotations

from fastapi import APIRouter


def logged_models_router() -> APIRouter:
    """The routes of this area."""
    return APIRouter()
