"""MLflow's REST dialect over the same stores: the unmodified MLflow client logs into plinth.

`plinth server` answers `/api/2.0/mlflow/...` (tracking, logged models, registry) and
`/api/2.0/mlflow-artifacts/...` (proxied artifacts) as MLflow's own server does, so
`MLFLOW_TRACKING_URI=http://host:port` (with `MLFLOW_TRACKING_TOKEN` holding a plinth token)
makes MLflow code write plinth runs, artifacts and model versions. Errors answer in MLflow's
shape (`{"error_code": ..., "message": ...}`, `plinth.server.mlflow.errors`), so the client
raises the `MlflowException` its users expect. Rights and workspaces apply as on every route.
"""

from __future__ import annotations

from fastapi import APIRouter

from plinth.server.mlflow.common import ARTIFACTS_PREFIX, PREFIX

__all__ = ["ARTIFACTS_PREFIX", "PREFIX", "mlflow_routers"]


def mlflow_routers() -> list[APIRouter]:
    """Every MLflow route: each area's router, under MLflow's prefixes and tagged `mlflow`."""
    from plinth.server.mlflow.artifacts import artifacts_router
    from plinth.server.mlflow.info import info_router
    from plinth.server.mlflow.logged_models import logged_models_router
    from plinth.server.mlflow.registry import registry_router
    from plinth.server.mlflow.tracking import tracking_router

    return [tracking_router(), logged_models_router(), registry_router(), artifacts_router(), info_router()]
