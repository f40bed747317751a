"""The store API: one route per `Store` method, made from the endpoint table (`plinth.store.rpc`).

A route authenticates and authorizes through `require(endpoint.right)`, decodes its arguments
from the path, the query or the JSON body by the method's type hints (`plinth.store.wire`:
wrong types, missing and unknown fields answer 422 naming the place), calls the workspace's
store acting as the principal, and answers with the result as JSON (a NumPy or Arrow body for
the binary ones).

A few methods need more than a call:
- `create_run` / `create_runs` record the principal as the run's user, whatever the client sent;
- `write_metrics` skips points already stored, so a client retrying a batch whose answer was
  lost never writes a point twice; its points come as JSON rows or, from the remote store, as
  columns (`plinth.store.points`, `MEDIA_BODIES`);
- `create_model_version` records a version the client sealed for a given number, only while
  that number is next (`plinth.store.remote_registry` explains why);
- `search_runs` checks a filter built by hand as the parser would have checked its text, and
  `verify_audit` an anchor as reading its file would have.

The routes are declared here for the OpenAPI document and the route-table test; the requests
themselves are answered by `plinth.server.store_dispatch` with the same functions
(`parse_arguments`, `answer`), ahead of FastAPI's routing.
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import sqlite3
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from sqlalchemy.exc import DataError as SqlDataError
from sqlalchemy.exc import IntegrityError as SqlIntegrityError
from starlette.concurrency import run_in_threadpool

from plinth.core.access import Right
from plinth.core.audit import AuditHead
from plinth.core.errors import ConflictError, InvalidInput, PlinthError, StoreError
from plinth.core.http import RequestError
from plinth.server.context import RequestContext, require, right_extra
from plinth.store import bodies, rpc, wire
from plinth.store.base import NewModelVersion, NewRun, SealedManifest, Store
from plinth.store.filter_check import check_filter, check_order
from plinth.store.points import POINTS, PointColumns
from plinth.store.wire import refused

Handler = Callable[[RequestContext, dict[str, Any]], Any]
BODY_TYPES: Mapping[str, type] = {"create_model_version": rpc.VersionRequest}
"""Methods whose JSON body is one value of its own type, not the method's arguments."""
BINARY_BODIES: Mapping[str, str] = {"write_prediction_columns": "tables"}
"""Methods with an argument sent as the binary body (its other arguments go in the query)."""
FIELD_DECODERS: Mapping[tuple[str, str], wire.Decoder] = {("write_metrics", "points"): bodies.decode_points}
"""Arguments decoded by a decoder of their own (the metric hot path)."""
MEDIA_BODIES: Mapping[tuple[str, str], tuple[str, Callable[[bytes], Any]]] = {
    ("write_metrics", POINTS): ("points", PointColumns.from_bytes),
}
"""Bodies of another media type than JSON a method also takes: (method, media type) -> the
argument the whole body is, and its decoder (the metric hot path sends points as columns)."""
MAX_AGE_S = 100 * 365 * 86400.0
"""The oldest age a sweep may be asked to keep blobs for (a century)."""


def store_router() -> APIRouter:
    """The routes of every `Store` method under `/api/v1`."""
    router = APIRouter(prefix=rpc.API)
    for endpoint in rpc.ENDPOINTS:
        router.add_api_route(
            endpoint.path,
            _route(endpoint),
            methods=[endpoint.verb],
            summary=endpoint.doc,
            description=inspect.getdoc(getattr(Store, endpoint.method)) or "",
            tags=[endpoint.tag],
            operation_id=endpoint.method,
            response_class=Response,
            openapi_extra={**right_extra(endpoint.right), **_openapi(endpoint)},
        )
    return router


def _route(endpoint: rpc.Endpoint) -> Callable[..., Any]:
    authorized = Depends(require(endpoint.right))

    async def handle(request: Request, ctx: RequestContext = authorized) -> Response:
        body = await request.body() if reads_body(endpoint) else b""
        query = request.query_params.multi_items()
        media = request.headers.get("content-type")
        return await run_in_threadpool(
            lambda: answer(endpoint, ctx, parse_arguments(endpoint, request.path_params, query, body, media))
        )

    handle.__name__ = endpoint.method
    return handle


def reads_body(endpoint: rpc.Endpoint) -> bool:
    """Whether the route's arguments come in its body (a GET's come in the query)."""
    return endpoint.verb != "GET" or endpoint.method in BINARY_BODIES


def parse_arguments(
    endpoint: rpc.Endpoint,
    path_params: Mapping[str, str],
    query: Sequence[tuple[str, str]],
    body: bytes,
    media_type: str | None = None,
) -> dict[str, Any]:
    """The call's arguments from the path, the query and the body, decoded by type; a body of a
    media type in `MEDIA_BODIES` is one argument in that format.

    Raises:
        WireError: an unknown, missing or mistyped argument (422, naming its place).
        RequestError: a body that is not JSON (400).
    """
    hints = endpoint.hints
    params = endpoint.signature.parameters
    found: dict[str, Any] = {}
    for name in endpoint.path_params:
        found[name] = rpc.from_query(path_params[name], hints.get(name, str), f"path.{name}")
    media = MEDIA_BODIES.get((endpoint.method, _media(media_type)))
    if media is not None:
        name, decode_body = media
        found[name] = decode_body(body)
        return found
    binary = BINARY_BODIES.get(endpoint.method)
    if endpoint.verb == "GET" or binary:
        for name, text in query:
            if name not in params or name in found or name == binary:
                raise refused(f"query.{name}", f"only the parameters {_names(endpoint)}", "an unknown one")
            found[name] = rpc.from_query(text, hints[name], f"query.{name}")
        if binary:
            found[binary] = bodies.unpack_tables(body)
    elif endpoint.method in BODY_TYPES:
        found["body"] = wire.decode(_object(body), BODY_TYPES[endpoint.method])
        return found
    else:
        for name, value in _object(body).items():
            if name not in params or name in endpoint.path_params:
                raise refused(f"body.{name}", f"only the fields {_names(endpoint)}", "an unknown field")
            decode = FIELD_DECODERS.get((endpoint.method, name)) or wire.decoder(hints[name])
            found[name] = decode(value, f"body.{name}")
    missing = [n for n, p in params.items() if p.default is inspect.Parameter.empty and n not in found]
    if missing:
        raise refused(f"body.{missing[0]}", "a value (it is required)", "nothing")
    return found


def _media(content_type: str | None) -> str:
    return (content_type or "").partition(";")[0].strip().lower()


def _object(body: bytes) -> dict[str, Any]:
    try:
        data = wire.loads(body or b"{}")
    except wire.WireError as exc:
        raise RequestError(str(exc), 400) from None
    if not isinstance(data, dict):
        raise refused("body", "a JSON object of the arguments", data)
    return data


def _names(endpoint: rpc.Endpoint) -> str:
    return ", ".join(n for n in endpoint.signature.parameters if n not in endpoint.path_params) or "(none)"


def answer(
    endpoint: rpc.Endpoint, ctx: RequestContext, arguments: dict[str, Any], *, quiet: bool = False
) -> Response:
    """Call the store and answer with its result (a blocking call: run it off the event loop);
    `quiet` (`prefers_quiet`): with 204 and no result, once the call has succeeded."""
    special = SPECIAL.get(endpoint.method)
    try:
        if special is not None:
            result = special(ctx, arguments)
        else:
            result = getattr(ctx.store, endpoint.method)(**arguments)
    except CAUGHT as exc:
        raise _refused_data(exc) or exc from exc.__cause__
    if quiet:
        return Response(status_code=204, headers={"preference-applied": rpc.RETURN_MINIMAL})
    media = rpc.BINARY_RESULTS.get(endpoint.method)
    if media == rpc.NPY:
        return Response(bodies.npy_bytes(result), media_type=media)
    if media == rpc.ARROW:
        return Response(bodies.arrow_bytes(result), media_type=media)
    return Response(wire.dumps(result), media_type=rpc.JSON)


_WRITES = frozenset({Right.WRITE, Right.PREDICT, Right.MAINTAIN, Right.ADMIN})
"""The rights of the calls that change the store: reads, a search sent as a POST among them,
answer in full whatever the request prefers."""


def prefers_quiet(endpoint: rpc.Endpoint, prefer: str | None) -> bool:
    """Whether a call's answer leaves its result out: a write whose request's `Prefer` header
    asks for `return=minimal` (RFC 7240; other preferences beside it are ignored). A read's
    result is what it was sent for."""
    if not prefer or endpoint.verb == "GET" or endpoint.right not in _WRITES:
        return False
    return any(part.split(";")[0].strip().lower() == rpc.RETURN_MINIMAL for part in prefer.split(","))


def _refusals() -> tuple[tuple[type[Exception], ...], tuple[type[Exception], ...]]:
    """The errors by which SQLAlchemy and the drivers say the database refused the data itself:
    (conflicts with stored rows, values a column cannot hold)."""
    conflicts: list[type[Exception]] = [SqlIntegrityError, sqlite3.IntegrityError]
    values: list[type[Exception]] = [SqlDataError, sqlite3.DataError]
    try:
        import psycopg
    except ImportError:
        pass
    else:
        conflicts.append(psycopg.IntegrityError)
        values.append(psycopg.DataError)
    return tuple(conflicts), tuple(values)


CONFLICTS, BAD_VALUES = _refusals()
REFUSALS = CONFLICTS + BAD_VALUES
CAUGHT: tuple[type[Exception], ...] = (StoreError, *REFUSALS)


def _refused_data(exc: Exception) -> PlinthError | None:
    """The 4xx a store failure stands for when the database refused the data itself (a taken id,
    a value its column cannot hold): sending it again cannot help, so it is not a 503 (nor,
    where the store let the database's own error through, a 500)."""
    cause = exc if isinstance(exc, REFUSALS) else exc.__cause__
    reason = getattr(cause, "orig", None) or cause
    if isinstance(cause, CONFLICTS):
        return ConflictError(f"The store refused this write: it conflicts with what it holds ({reason}).")
    if isinstance(cause, BAD_VALUES):
        return InvalidInput(f"The store refused a value of this request: {reason}.")
    return None


# methods that need more than a call --------------------------------------------------------------
def _create_run(ctx: RequestContext, arguments: dict[str, Any]) -> Any:
    return ctx.store.create_run(**{**arguments, "user": ctx.principal.name})


def _create_runs(ctx: RequestContext, arguments: dict[str, Any]) -> Any:
    specs: list[NewRun] = arguments["specs"]
    return ctx.store.create_runs([dataclasses.replace(s, user=ctx.principal.name) for s in specs])


def _write_metrics(ctx: RequestContext, arguments: dict[str, Any]) -> None:
    ctx.store.write_metrics(arguments["points"], skip_written=True)


def _search_runs(ctx: RequestContext, arguments: dict[str, Any]) -> Any:
    check_filter(arguments.get("where"))
    check_order(arguments.get("order_by", ()))
    return ctx.store.search_runs(**arguments)


def _count_runs(ctx: RequestContext, arguments: dict[str, Any]) -> Any:
    check_filter(arguments.get("where"))
    return ctx.store.count_runs(**arguments)


def _sweep_prediction_blobs(ctx: RequestContext, arguments: dict[str, Any]) -> Any:
    min_age_s = arguments.get("min_age_s", 0.0)
    if not 0 <= min_age_s <= MAX_AGE_S:
        raise InvalidInput(f"min_age_s must be between 0 and {MAX_AGE_S:.0f} seconds, not {min_age_s}.")
    return ctx.store.sweep_prediction_blobs(min_age_s=min_age_s)


def _verify_audit(ctx: RequestContext, arguments: dict[str, Any]) -> Any:
    anchor: AuditHead | None = arguments.get("anchor")
    if anchor is not None:  # held to what `plinth audit anchor` writes, as a file would be
        AuditHead.from_json(json.dumps(dataclasses.asdict(anchor)), "The anchor sent")
    return ctx.store.verify_audit(anchor)


def _create_model_version(ctx: RequestContext, arguments: dict[str, Any]) -> Any:
    name: str = arguments["name"]
    body: rpc.VersionRequest = arguments["body"]

    def seal(version: int) -> SealedManifest:
        if version != body.version:
            raise ConflictError(
                f"Version {body.version} of model {name!r} is no longer next ({version} is); "
                "seal the manifest for that number and send it again."
            )
        return body.sealed

    new = NewModelVersion(
        name=name,
        flavor=body.flavor,
        seal=seal,
        files=body.files,
        signature=body.signature,
        environment=body.environment,
        run_id=body.run_id,
        description=body.description,
        source=body.source,
    )
    return ctx.store.create_model_version(new)


def _referenced_digests(ctx: RequestContext, arguments: dict[str, Any]) -> Any:
    if ctx.principal.superuser:  # blobs are shared: collecting garbage needs every workspace's references
        return ctx.state.stores.referenced_digests()
    return ctx.store.referenced_digests()


SPECIAL: Mapping[str, Handler] = {
    "create_run": _create_run,
    "create_runs": _create_runs,
    "write_metrics": _write_metrics,
    "search_runs": _search_runs,
    "count_runs": _count_runs,
    "create_model_version": _create_model_version,
    "verify_audit": _verify_audit,
    "sweep_prediction_blobs": _sweep_prediction_blobs,
    "referenced_digests": _referenced_digests,
}


# the OpenAPI document ----------------------------------------------------------------------------
def _openapi(endpoint: rpc.Endpoint) -> dict[str, Any]:
    """Parameters, request body and answer of a route, for `/openapi.json`."""
    hints = endpoint.hints
    sig = endpoint.signature.parameters
    doc: dict[str, Any] = {}
    parameters = [
        {"name": n, "in": "path", "required": True, "schema": wire.schema(hints.get(n, str))}
        for n in endpoint.path_params
    ]
    binary = BINARY_BODIES.get(endpoint.method)
    rest = [n for n in sig if n not in endpoint.path_params and n != binary]
    if endpoint.verb == "GET" or binary:
        parameters += [
            {
                "name": n,
                "in": "query",
                "required": sig[n].default is inspect.Parameter.empty,
                "schema": wire.schema(hints[n]),
            }
            for n in rest
        ]
    if binary:
        doc["requestBody"] = {
            "required": True,
            "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}},
        }
    elif endpoint.verb != "GET":
        schema = (
            wire.schema(BODY_TYPES[endpoint.method])
            if endpoint.method in BODY_TYPES
            else wire.object_schema(
                {n: hints[n] for n in rest}, [n for n in rest if sig[n].default is inspect.Parameter.empty]
            )
        )
        content: dict[str, Any] = {rpc.JSON: {"schema": schema}}
        for method, media in MEDIA_BODIES:
            if method == endpoint.method:
                content[media] = {"schema": {"type": "string", "format": "binary"}}
        doc["requestBody"] = {"required": True, "content": content}
    if parameters:
        doc["parameters"] = parameters
    media = rpc.BINARY_RESULTS.get(endpoint.method, rpc.JSON)
    answer = {"type": "string", "format": "binary"} if media != rpc.JSON else wire.schema(hints["return"])
    doc["responses"] = {
        "200": {"description": "The method's result.", "content": {media: {"schema": answer}}}
    }
    return doc
