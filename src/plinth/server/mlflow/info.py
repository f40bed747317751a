"""MLflow's server-info: what the client asks before it uploads or downloads a model.

MLflow's client asks `GET /api/3.0/mlflow/server-info` (no login, as on MLflow's server) and
keeps the answer for a minute when it is a 200; a 404 would be asked again on every model load.
plinth offers neither multipart transfers nor presigned uploads through MLflow's API, nor
MLflow's own workspaces (plinth's workspaces come from the token), and says so here.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from plinth.core.access import Right
from plinth.server.mlflow.common import needs

SERVER_INFO = "/api/3.0/mlflow/server-info"


def server_info() -> dict[str, Any]:
    """The capabilities MLflow's client reads."""
    return {
        "store_type": "SqlStore",
        "workspaces_enabled": False,
        "trace_archival_enabled": False,
        "multipart_uploads_enabled": False,
        "multipart_downloads_enabled": False,
        "presigned_upload_run_id_supported": False,
        "presigned_upload_model_id_supported": False,
        "features_enabled": {"gateway": False},
    }


def info_router() -> APIRouter:
    """The server-info route (public: it holds nothing about the data)."""
    router = APIRouter(tags=["mlflow"])
    router.add_api_route(
        SERVER_INFO,
        server_info,
        methods=["GET"],
        summary="What this server offers MLflow's client",
        openapi_extra=needs(Right.PUBLIC),
    )
    return router
