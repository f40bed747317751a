"""The online model server: `create_app(...)` gives an ASGI app (FastAPI) that `plinth serve` runs."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import orjson
from fastapi import FastAPI, Request
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST

from plinth.core.access import Right
from plinth.core.collector import quiet_gc
from plinth.core.entities import PredictionLog
from plinth.core.errors import AccessError, InvalidInput, ModelFailed, NotFound, PlinthError, StoreError
from plinth.core.http import RequestError, status_for
from plinth.core.identity import Principal
from plinth.core.ids import new_id, now_ms
from plinth.core.settings import Settings
from plinth.core.validation import MAX_ID, id_problem
from plinth.registry.bundle import BundleSource
from plinth.serving.auth import Guard, acting, challenge, guard_for
from plinth.serving.body import JSON, read_json
from plinth.serving.deployment import Deployment, ServedVersion, open_sources
from plinth.serving.logger import PredictionLogger
from plinth.serving.metrics import Metrics
from plinth.serving.options import ServeOptions
from plinth.serving.schemas import (
    ID_HEADERS,
    LABELS_BODY,
    PREDICT_BODY,
    ErrorBody,
    LabelsResponse,
    PredictResponse,
    ReadyBody,
)
from plinth.tracking.context import Backend

if TYPE_CHECKING:
    from plinth.registry.source import ModelSource

log = logging.getLogger("plinth.serving")


@dataclass
class ServerState:
    """Everything the routes share: `source` gives the models, `be` (when a store is open) takes
    prediction logs, labels and audit events."""

    source: ModelSource
    be: Backend | None
    options: ServeOptions
    metrics: Metrics
    primary: dict[str, Deployment] = field(default_factory=dict)
    canary: dict[str, tuple[Deployment, float]] = field(default_factory=dict)
    shadow: dict[str, Deployment] = field(default_factory=dict)
    logger: PredictionLogger | None = None
    guard: Guard | None = None  # set when tokens are required (`plinth serve --auth`)
    ready: bool = False
    watch_error: str | None = None
    tasks: set[asyncio.Task[None]] = field(default_factory=set)

    def deployments(self) -> list[Deployment]:
        """Every deployment, primary first."""
        return [*self.primary.values(), *(d for d, _ in self.canary.values()), *self.shadow.values()]

    def degraded(self) -> dict[str, str]:
        """What works only in part, and why; empty while everything does."""
        out: dict[str, str] = {}
        trouble = self.logger.trouble if self.logger is not None else None
        if trouble is not None:
            out["prediction_logs"] = trouble
        audit = "; ".join(d.audit_error for d in self.deployments() if d.audit_error)
        if audit:
            out["audit"] = audit
        watch = [d.refusal for d in self.deployments() if d.refusal]
        if self.watch_error is not None:
            watch.append(self.watch_error)
        if watch:
            out["alias_watch"] = "; ".join(watch)
        return out


def create_app(
    refs: Sequence[str], settings: Settings | None = None, options: ServeOptions | None = None
) -> FastAPI:
    """An ASGI app serving `refs` (e.g. ["iris-clf@champion"]) from the store in `settings`.

    Models are loaded when the app starts (its lifespan); `/readyz` answers 200 once they are.
    With `options.auth`, predict and labels need a token with the predict right in the
    model's workspace, /v1/models the load right and /metrics the read right (see
    `plinth.serving.auth`).

    With `options.bundle`, models are read from that folder and `refs` may be empty (the baked
    model by name). A store is opened only when `settings.store_url` names one: then prediction
    logs, labels and audit go there; without one nothing is logged and labels are refused.

    Raises:
        ConfigError: a bundle with `options.auth` and no store named (tokens live in a store).
        NotFound, IntegrityError: no bundle at `options.bundle`, or a corrupted one.
    """
    settings = settings or Settings.from_env()
    options = options or ServeOptions(alias_poll_s=settings.alias_poll_s)
    source, be = open_sources(settings, options)
    if isinstance(source, BundleSource):
        refs = list(refs) or [source.version.name]
    state = ServerState(source, be, options, Metrics())
    if options.auth:
        state.guard = guard_for(settings, options.auth_cache_s)
    _plan(state, refs)

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        await asyncio.to_thread(_load_all, state)
        quiet_gc()
        if be is not None:
            state.logger = PredictionLogger(
                be.store,
                options.log_queue,
                on_drop=state.metrics.dropped_logs.inc,
                on_failure=state.metrics.write_failures.labels("prediction_logs").inc,
            )
        state.ready = True
        # a bundle never moves: nothing to watch
        watcher = asyncio.create_task(_watch(state)) if options.bundle is None else None
        try:
            yield
        finally:
            if watcher is not None:
                watcher.cancel()
            if state.logger is not None:
                state.logger.close()
            if state.guard is not None:
                state.guard.close()
            if be is not None:
                be.close()

    otel = settings.opentelemetry
    app = FastAPI(
        title="plinth model server",
        version="1",
        description="Predictions from registered models, validated against their signatures.",
        lifespan=lifespan,
        # FastAPI's own OpenTelemetry layer asks for the global providers on every request: only
        # when asked for (PLINTH_OPENTELEMETRY), as the server counts and times requests itself
        telemetry={"tracing": otel, "metrics": otel, "logs": otel},
    )
    app.state.plinth = state
    _routes(app, state)
    return app


def _plan(state: ServerState, refs: Sequence[str]) -> None:
    observe = _observer(state)
    failures = state.metrics.write_failures
    audit = state.be.store if state.be is not None else None

    def deploy(ref: str) -> Deployment:
        return Deployment(
            ref,
            state.source,
            state.options,
            observe,
            audit=audit,
            on_write_failure=lambda writer: failures.labels(writer).inc(),
        )

    for ref in refs:
        deployment = deploy(ref)
        state.primary[deployment.name] = deployment
    if state.options.canary is not None:
        ref, share = state.options.canary
        deployment = deploy(ref)
        state.canary[deployment.name] = (deployment, share)
    if state.options.shadow is not None:
        deployment = deploy(state.options.shadow)
        state.shadow[deployment.name] = deployment


def _observer(state: ServerState) -> Any:
    def observe(name: str, version: int, rows: int) -> None:
        state.metrics.batch.labels(name, str(version)).observe(rows)

    return observe


def _load_all(state: ServerState) -> None:
    for deployment in state.deployments():
        served = deployment.load()
        log.info("serving %s as version %s", deployment.ref, served.version)


async def _watch(state: ServerState) -> None:
    while True:
        await asyncio.sleep(state.options.alias_poll_s)
        problems = []
        for deployment in state.deployments():
            if not deployment.watches:
                continue
            try:
                outcome = await deployment.refresh()
            except Exception as exc:  # the store may be briefly unreachable; keep serving
                log.warning("could not check %s: %s", deployment.ref, exc)
                problems.append(f"could not check {deployment.ref}: {type(exc).__name__}: {exc}"[:500])
                continue
            if outcome is not None:
                state.metrics.swaps.labels(deployment.name, outcome).inc()
        state.watch_error = "; ".join(problems) or None


def _routes(app: FastAPI, state: ServerState) -> None:
    @app.post(
        "/v1/models/{name:path}/predict",
        summary="Predict with a served model",
        openapi_extra={"requestBody": PREDICT_BODY, "parameters": ID_HEADERS},
        responses={
            200: {"model": PredictResponse},
            400: {"model": ErrorBody},
            404: {"model": ErrorBody},
            413: {"model": ErrorBody},
            415: {"model": ErrorBody},
            422: {"model": ErrorBody},
            500: {"model": ErrorBody, "description": "The model failed on this request"},
        },
    )
    async def predict(name: str, request: Request) -> Response:
        try:
            await _caller(state, request, Right.PREDICT)
        except Exception as exc:  # a refused caller is answered before its body is read
            return _refusal(exc, name, state)
        return await _predict(state, name, request)

    @app.post(
        "/v1/models/{name:path}/labels",
        summary="Store delayed labels (ground truth) for requests a served model answered",
        openapi_extra={"requestBody": LABELS_BODY},
        responses={
            200: {"model": LabelsResponse},
            400: {"model": ErrorBody},
            404: {"model": ErrorBody},
            413: {"model": ErrorBody},
            415: {"model": ErrorBody},
            422: {"model": ErrorBody},
            503: {"model": ErrorBody, "description": "The store could not take the labels"},
        },
    )
    async def labels(name: str, request: Request) -> Response:
        try:
            caller = await _caller(state, request, Right.PREDICT)
        except Exception as exc:
            return _refusal(exc, name, state)
        return await _labels(state, name, request, caller)

    @app.get("/healthz", summary="The process is up")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get(
        "/readyz",
        summary="Every served model is loaded; `degraded` names what works only in part, and why",
        responses={200: {"model": ReadyBody}, 503: {"model": ErrorBody}},
    )
    async def readyz() -> Response:
        if state.ready and all(d.current is not None for d in state.deployments()):
            # a replica whose logging or audit fails still answers predictions: it stays in service
            return Response(orjson.dumps({"status": "ready", "degraded": state.degraded()}), media_type=JSON)
        return Response(b'{"error":"models are still loading"}', status_code=503, media_type=JSON)

    @app.get("/metrics", summary="Prometheus metrics", response_class=Response)
    async def metrics(request: Request) -> Response:
        try:
            await _caller(state, request, Right.READ)
        except Exception as exc:
            return _refusal(exc, "/metrics", state)
        return Response(state.metrics.render(), media_type=CONTENT_TYPE_LATEST)

    @app.get("/v1/models", summary="What is served, and which versions", response_model=None)
    async def models(request: Request) -> list[dict[str, Any]] | Response:
        try:
            await _caller(state, request, Right.LOAD)
        except Exception as exc:
            return _refusal(exc, "/v1/models", state)
        return [_describe(d, role) for role, d in _roles(state)]


async def _caller(state: ServerState, request: Request, right: Right) -> Principal | None:
    """Who asks, once their token holds `right` here; None when the server takes no tokens."""
    return None if state.guard is None else await state.guard.check(request, right)


def _roles(state: ServerState) -> list[tuple[str, Deployment]]:
    out = [("primary", d) for d in state.primary.values()]
    out += [("canary", d) for d, _ in state.canary.values()]
    return out + [("shadow", d) for d in state.shadow.values()]


def _describe(deployment: Deployment, role: str) -> dict[str, Any]:
    current = deployment.current
    mv = current.model.model_version if current else None
    return {
        "name": deployment.name,
        "ref": deployment.ref,
        "role": role,
        "version": mv.version if mv else None,
        "flavor": mv.flavor if mv else None,
        "signature": mv.signature if mv else None,
        "last_error": deployment.last_error,
    }


async def _predict(state: ServerState, name: str, request: Request) -> Response:
    started = time.perf_counter()
    deployment = state.primary.get(name)
    ids: tuple[str | None, str | None] = (None, None)
    try:
        if deployment is None or deployment.current is None:
            raise _not_served(state, name)
        ids = _header_ids(request)
        doc = await read_json(request, state.options.max_body_bytes)
        subject = _subject(doc, ids[1])
        route, deployment = _route(state, name, deployment)
        served = deployment.current
        assert served is not None
        output = _output(doc, served.model.has_proba)
        part = served.parser.rows(doc)
        answer = await _answer(served, part, output)
    except Exception as exc:  # refusals by the table; a fault outside the error tree is a logged 500
        return _refuse(state, name, deployment, ids, started, exc)
    request_id = ids[0] or new_id()
    predictions = answer.tolist()
    body = orjson.dumps(
        {"predictions": predictions, "model": name, "version": served.version, "request_id": request_id},
        option=orjson.OPT_SERIALIZE_NUMPY,
    )
    latency = time.perf_counter() - started
    version = str(served.version)
    state.metrics.requests.labels(name, version, route, "200").inc()
    state.metrics.latency.labels(name, version).observe(latency)
    inputs = _inputs_json(doc)
    _log(state, request_id, name, served.version, route, latency, subject, inputs, predictions, len(part))
    shadow = state.shadow.get(name)
    if shadow is not None and shadow.current is not None:
        task = asyncio.get_running_loop().create_task(
            _shadow(state, shadow, doc, output, request_id, subject, inputs)
        )
        state.tasks.add(task)  # held until done: the loop keeps only a weak reference
        task.add_done_callback(state.tasks.discard)
    return Response(body, media_type=JSON)


def _not_served(state: ServerState, name: str) -> NotFound:
    names = ", ".join(sorted(state.primary)) or "none"
    return NotFound(f"Model {name!r} is not served here; served: {names}.")


async def _answer(served: ServedVersion, part: Any, output: str) -> Any:
    """The model's answer for one request's rows; whatever the model raises is a ModelFailed."""
    try:
        return await served.predict(part, len(part), output)
    except Exception as exc:
        raise ModelFailed(f"The model failed on this request: {type(exc).__name__}: {exc}") from exc


def _header_ids(request: Request) -> tuple[str | None, str | None]:
    """The x-request-id and x-subject-id headers, checked; None where absent or empty."""
    found: list[str | None] = []
    problems: list[dict[str, str]] = []
    for header in ("x-request-id", "x-subject-id"):
        value = request.headers.get(header) or None
        problem = None if value is None else id_problem(value)
        if problem is not None:
            problems.append({"field": header, "expected": problem, "got": f"{value!r:.60}"})
        found.append(value)
    if problems:
        fields = " and ".join(p["field"] for p in problems)
        raise RequestError(
            f"{fields}: not a valid id ({problems[0]['expected']}); send 1 to {MAX_ID} printable "
            "characters, such as a UUID, or leave the header out.",
            400,
            problems,
        )
    return found[0], found[1]


def _subject(doc: dict[str, Any], header: str | None) -> str | None:
    """The body's "subject_id" (a whole number is taken as its digits), else the header's."""
    subject = doc.get("subject_id")
    if subject is None:
        return header
    if isinstance(subject, int) and not isinstance(subject, bool):
        subject = str(subject)
    problem = id_problem(subject)
    if problem is not None:
        raise RequestError(
            f'"subject_id" is not a valid id ({problem}); send 1 to {MAX_ID} printable characters.',
            422,
            [{"field": "subject_id", "expected": problem, "got": f"{subject!r:.60}"}],
        )
    return str(subject)


async def _labels(state: ServerState, name: str, request: Request, caller: Principal | None) -> Response:
    """Labels for a model served here: validated whole (nothing stored on any bad one), audited
    as the caller when the server takes tokens."""
    from starlette.concurrency import run_in_threadpool

    from plinth.monitoring.labels import log_labels

    try:
        if name not in state.primary:
            raise _not_served(state, name)
        if state.be is None:
            raise StoreError(
                "This server serves a model bundle with no store, and labels are kept in a store: "
                "restart it with PLINTH_STORE set to the store its predictions should be logged in."
            )
        doc = await read_json(request, state.options.max_body_bytes)
        items = doc.get("labels")
        if not isinstance(items, list) or not items:
            raise RequestError('The body needs "labels": a list of {"request_id", "label"} objects.', 400)
        rows = []
        for i, item in enumerate(items):
            if not isinstance(item, dict) or "request_id" not in item or "label" not in item:
                raise RequestError(f'labels[{i}] must be an object with "request_id" and "label".', 422)
            rows.append((item["request_id"], item["label"], item.get("subject_id")))
        stored = await run_in_threadpool(log_labels, acting(state.be.store, caller), name, rows)
    except Exception as exc:  # refusals by the table; a fault outside the error tree is a logged 500
        return _refusal(exc, name)
    return Response(orjson.dumps({"model": name, "stored": stored}), media_type=JSON)


def _refusal(exc: Exception, name: str, state: ServerState | None = None) -> Response:
    """The error response, its status from the one table (`status_for`); a 5xx is logged.

    After a 413 the connection closes, so the rest of the body is not read. A refused token
    is counted (with `state`) and answered with how to authenticate or when to retry.
    """
    status = status_for(exc)
    if status >= 500:
        where = name if name.startswith("/") else f"model {name}"  # a route, or a model's name
        log.error("a request to %s answered %s: %s", where, status, _reason(exc), exc_info=_unforeseen(exc))
    if state is not None and isinstance(exc, AccessError):
        state.metrics.auth_refusals.labels(str(status)).inc()
    problems = exc.problems if isinstance(exc, InvalidInput) else []
    doc = {"error": _reason(exc), "problems": problems}
    try:
        body = orjson.dumps(doc)
    except (TypeError, RecursionError):  # text orjson refuses (a lone surrogate) goes out escaped
        body = json.dumps(doc, default=str).encode()
    headers = {"connection": "close"} if status == 413 else challenge(exc)
    return Response(body, status_code=status, media_type=JSON, headers=headers)


def _reason(exc: Exception) -> str:
    if _unforeseen(exc):
        return f"The server failed on this request: {type(exc).__name__}: {exc}"
    return str(exc)


def _unforeseen(exc: Exception) -> bool:
    """True for an exception outside the error tree: a fault of the server, logged with its traceback."""
    return not isinstance(exc, PlinthError)


def _route(state: ServerState, name: str, primary: Deployment) -> tuple[str, Deployment]:
    canary = state.canary.get(name)
    if canary is not None and canary[0].current is not None and random.random() < canary[1]:
        return "canary", canary[0]
    return "primary", primary


def _output(doc: dict[str, Any], has_proba: bool) -> str:
    output = doc.get("output", "predict")
    if output not in ("predict", "proba"):
        raise RequestError(f'"output" must be "predict" or "proba", got {output!r:.60}.', 422)
    if output == "proba" and not has_proba:
        raise RequestError('This model gives no probabilities; leave "output" out to get predictions.', 422)
    return str(output)


def _refuse(
    state: ServerState,
    name: str,
    deployment: Deployment | None,
    ids: tuple[str | None, str | None],
    started: float,
    exc: Exception,
) -> Response:
    """The refusal, counted and logged (with the ids the headers gave, once they passed their check)."""
    status = status_for(exc)
    state.metrics.requests.labels(name, "", "primary", str(status)).inc()
    served = deployment.current if deployment is not None else None
    if state.logger is not None and served is not None:  # errors count in the model's error rate
        state.logger.put(
            PredictionLog(
                ids[0] or new_id(),
                name,
                served.version,
                "primary",
                now_ms(),
                (time.perf_counter() - started) * 1000.0,
                ids[1],
                "{}",
                _reason(exc)[:1000],
                status,
                0,
            )
        )
    return _refusal(exc, name)


def _inputs_json(doc: dict[str, Any]) -> str:
    payload = (
        {"instances": doc["instances"]}
        if "instances" in doc
        else {k: doc.get(k) for k in ("columns", "data")}
    )
    try:
        return orjson.dumps(payload).decode()
    except (TypeError, RecursionError):  # nested past orjson's depth, or numbers past 64 bits
        try:
            return json.dumps(payload, default=repr)
        except (ValueError, RecursionError):
            return '"the inputs could not be written as JSON"'


def _log(
    state: ServerState,
    request_id: str,
    name: str,
    version: int,
    route: str,
    latency: float,
    subject: Any,
    inputs: str,
    predictions: Any,
    n_rows: int = 1,
) -> None:
    if state.logger is None:
        return
    state.logger.put(
        PredictionLog(
            request_id,
            name,
            version,
            route,
            now_ms(),
            latency * 1000.0,
            None if subject is None else str(subject),
            inputs,
            orjson.dumps(predictions, option=orjson.OPT_SERIALIZE_NUMPY).decode(),
            200,
            n_rows,
        )
    )


async def _shadow(
    state: ServerState,
    shadow: Deployment,
    doc: dict[str, Any],
    output: str,
    request_id: str,
    subject: Any,
    inputs: str,
) -> None:
    started = time.perf_counter()
    served = shadow.current
    if served is None:
        return
    try:
        part = served.parser.rows(doc)
        answer = await served.predict(part, len(part), output)
    except Exception as exc:  # a shadow never affects the caller; its failure is logged
        log.warning("shadow %s failed on request %s: %s", shadow.ref, request_id, exc)
        state.metrics.requests.labels(shadow.name, str(served.version), "shadow", "error").inc()
        return
    state.metrics.requests.labels(shadow.name, str(served.version), "shadow", "200").inc()
    latency = time.perf_counter() - started
    try:
        _log(
            state,
            request_id,
            shadow.name,
            served.version,
            "shadow",
            latency,
            subject,
            inputs,
            answer.tolist(),
            len(part),
        )
    except Exception as exc:  # an answer that cannot be logged is a lost log: counted, never raised
        log.error("the shadow answer of %s to request %s cannot be logged: %s", shadow.ref, request_id, exc)
        state.metrics.dropped_logs.inc()
