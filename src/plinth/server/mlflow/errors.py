"""Errors in MLflow's shape: `{"error_code": "RESOURCE_DOES_NOT_EXIST", "message": "..."}`.

MLflow's client turns the error code into the `MlflowException` (and `RestException`) its users
catch, so each `PlinthError` maps to the code MLflow's server would send for the same refusal,
with MLflow's HTTP status for that code. The message stays plinth's: it says what to do.
"""

from __future__ import annotations

import json

from fastapi import Request
from fastapi.responses import Response

from plinth.core.errors import (
    AccessError,
    ConflictError,
    Forbidden,
    InvalidInput,
    NotFound,
    PlinthError,
    RunNotActive,
    StoreError,
    TooManyAttempts,
    Unauthorized,
)

MLFLOW_PATHS = ("/api/2.0/mlflow", "/ajax-api/2.0/mlflow", "/api/3.0/mlflow", "/ajax-api/3.0/mlflow")
"""Path prefixes whose errors answer in MLflow's shape (artifacts included: `/api/2.0/mlflow-artifacts`)."""

INVALID_PARAMETER_VALUE = "INVALID_PARAMETER_VALUE"
RESOURCE_DOES_NOT_EXIST = "RESOURCE_DOES_NOT_EXIST"
RESOURCE_ALREADY_EXISTS = "RESOURCE_ALREADY_EXISTS"
INVALID_STATE = "INVALID_STATE"
BAD_REQUEST = "BAD_REQUEST"
ENDPOINT_NOT_FOUND = "ENDPOINT_NOT_FOUND"
UNAUTHENTICATED = "UNAUTHENTICATED"
PERMISSION_DENIED = "PERMISSION_DENIED"
REQUEST_LIMIT_EXCEEDED = "REQUEST_LIMIT_EXCEEDED"
TEMPORARILY_UNAVAILABLE = "TEMPORARILY_UNAVAILABLE"
INTERNAL_ERROR = "INTERNAL_ERROR"
NOT_IMPLEMENTED = "NOT_IMPLEMENTED"

STATUS = {
    INVALID_PARAMETER_VALUE: 400,
    BAD_REQUEST: 400,
    INVALID_STATE: 400,
    RESOURCE_DOES_NOT_EXIST: 404,
    ENDPOINT_NOT_FOUND: 404,
    RESOURCE_ALREADY_EXISTS: 400,
    UNAUTHENTICATED: 401,
    PERMISSION_DENIED: 403,
    REQUEST_LIMIT_EXCEEDED: 429,
    TEMPORARILY_UNAVAILABLE: 503,
    INTERNAL_ERROR: 500,
    NOT_IMPLEMENTED: 501,
}
"""MLflow's HTTP status for each error code (its `ERROR_CODE_TO_HTTP_STATUS`)."""


class MlflowError(InvalidInput):
    """A refusal that names its MLflow error code itself (e.g. RESOURCE_ALREADY_EXISTS)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def is_mlflow_path(path: str) -> bool:
    """True for a path of MLflow's dialect, whose errors answer in MLflow's shape."""
    return path.startswith(MLFLOW_PATHS)


def code_of(exc: Exception) -> str:
    """The MLflow error code for `exc`."""
    if isinstance(exc, MlflowError):
        return exc.code
    if isinstance(exc, Unauthorized):
        return UNAUTHENTICATED
    if isinstance(exc, TooManyAttempts):
        return REQUEST_LIMIT_EXCEEDED
    if isinstance(exc, Forbidden | AccessError):
        return PERMISSION_DENIED
    if isinstance(exc, RunNotActive):
        return INVALID_STATE
    if isinstance(exc, NotFound):
        return RESOURCE_DOES_NOT_EXIST
    if isinstance(exc, ConflictError):
        return INVALID_PARAMETER_VALUE
    if isinstance(exc, InvalidInput):
        return INVALID_PARAMETER_VALUE
    if isinstance(exc, StoreError):
        return TEMPORARILY_UNAVAILABLE
    if isinstance(exc, PlinthError):
        return INTERNAL_ERROR
    return INTERNAL_ERROR


def mlflow_error_response(exc: Exception, headers: dict[str, str] | None = None) -> Response:
    """`exc` as MLflow's server would answer it."""
    code = code_of(exc)
    code = code if code in STATUS else INTERNAL_ERROR
    body = json.dumps({"error_code": code, "message": str(exc)}, ensure_ascii=True).encode()
    return Response(body, status_code=STATUS[code], media_type="application/json", headers=headers)


def not_found_route(request: Request) -> Response:
    """An unknown MLflow route, as MLflow answers it (ENDPOINT_NOT_FOUND)."""
    exc = MlflowError(
        ENDPOINT_NOT_FOUND,
        f"plinth does not serve {request.method} {request.url.path} of MLflow's REST API.",
    )
    return mlflow_error_response(exc)
