"""Errors as responses: one body shape for every refusal of the team server.

    {"error": {"type": "NotFound", "message": "No run 'x'.", "problems": [...]}}

The status comes from the one table (`plinth.core.http.status_for`); `type` names the
`PlinthError` subclass, so the remote store raises the same error the embedded store would.
Refusals FastAPI makes itself (a body that does not match the schema, an unknown route) answer
in the same shape. An exception outside the error tree is a 500 whose body says only that the
server failed, with an incident id; the log has the route, the id and the traceback, never a
request header.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Mapping, Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from starlette.exceptions import HTTPException

from plinth.core.errors import InvalidInput, PlinthError, TooManyAttempts
from plinth.core.http import status_for
from plinth.core.ids import new_id
from plinth.server.mlflow.errors import is_mlflow_path, mlflow_error_response, not_found_route

log = logging.getLogger("plinth.server")

JSON = "application/json"


def error_body(kind: str, message: str, problems: Sequence[Mapping[str, Any]] = ()) -> bytes:
    """The JSON of an error response."""
    doc = {"error": {"type": kind, "message": message, "problems": list(problems)}}
    return json.dumps(doc, default=str, ensure_ascii=True).encode()


def error_response(
    status: int,
    kind: str,
    message: str,
    problems: Sequence[Mapping[str, Any]] = (),
    headers: Mapping[str, str] | None = None,
) -> Response:
    """An error response in the server's one shape."""
    body = error_body(kind, message, problems)
    return Response(body, status_code=status, media_type=JSON, headers=dict(headers or {}))


def plinth_error(request: Request, exc: Exception) -> Response:
    """A `PlinthError` as its status and body; a 5xx is logged with the route.

    Under MLflow's paths the body is MLflow's (`plinth.server.mlflow.errors`), so its client
    raises the exception its users expect.
    """
    status = status_for(exc)
    if status >= 500:
        log.error(
            "%s %s answered %s: %s: %s", request.method, route_of(request), status, type(exc).__name__, exc
        )
    if is_mlflow_path(request.url.path):
        return mlflow_error_response(exc)
    problems = exc.problems if isinstance(exc, InvalidInput) else []
    headers = {}
    if isinstance(exc, TooManyAttempts):
        headers["retry-after"] = str(max(1, math.ceil(exc.retry_after_s)))
    if status == 413:  # the rest of the body is not read: the connection cannot be reused
        headers["connection"] = "close"
    return error_response(status, type(exc).__name__, str(exc), problems, headers)


def validation_error(request: Request, exc: Exception) -> Response:
    """A request that does not match the route's schema: 422, each problem named by its place."""
    assert isinstance(exc, RequestValidationError)
    if is_mlflow_path(request.url.path):
        detail = "; ".join(f"{p['field']}: {p['expected']}" for p in map(_problem, exc.errors()))
        return mlflow_error_response(InvalidInput(f"Invalid request: {detail}."))
    problems = [_problem(item) for item in exc.errors()]
    first = problems[0] if problems else {"field": "body", "expected": "a valid request"}
    message = f"{first['field']}: {first['expected']}"
    if len(problems) > 1:
        message += f" (and {len(problems) - 1} more problem{'s' if len(problems) > 2 else ''})"
    return error_response(
        422, "InvalidInput", message + "; see /openapi.json for this route's schema.", problems
    )


def http_error(request: Request, exc: Exception) -> Response:
    """Starlette's own refusals (no such route, method not allowed) in the same shape."""
    assert isinstance(exc, HTTPException)
    if exc.status_code in (404, 405) and is_mlflow_path(request.url.path):
        return not_found_route(request)
    if exc.status_code == 404:
        message = f"No route {request.method} {request.url.path}; see /openapi.json for the API."
        return error_response(404, "NotFound", message)
    if exc.status_code == 405:
        message = f"{request.method} is not allowed on {request.url.path}; see /openapi.json for the API."
        return error_response(405, "InvalidInput", message, headers=exc.headers)
    kind = "InvalidInput" if exc.status_code < 500 else "PlinthError"
    return error_response(exc.status_code, kind, str(exc.detail), headers=exc.headers)


def unexpected(method: str, route: str, exc: BaseException) -> bytes:
    """Log a fault of the server (with its traceback) and give the 500 body that names its incident."""
    incident = new_id()[:12]
    log.error("%s %s failed (incident %s)", method, route, incident, exc_info=exc)
    return error_body(
        "PlinthError",
        f"The server failed on this request (incident {incident}); its log has the details.",
    )


def route_of(request: Request) -> str:
    """The request's route template (`/api/v1/runs/{run_id}`), else its path."""
    route = request.scope.get("route")
    return str(getattr(route, "path", request.url.path))


def install(app: FastAPI) -> None:
    """Answer every error of `app` in the one shape."""
    app.add_exception_handler(PlinthError, plinth_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(HTTPException, http_error)


def _problem(item: Mapping[str, Any]) -> dict[str, str]:
    place = ".".join(str(part) for part in item.get("loc", ()) if part != "body") or "body"
    got = item.get("input")
    problem = {"field": place, "expected": str(item.get("msg", "a valid value"))}
    if got is not None and not isinstance(got, dict | list):
        problem["got"] = f"{got!r:.60}"
    return problem
