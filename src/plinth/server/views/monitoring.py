"""Views of deployments: the served models with prediction logs, and each one's monitoring.

A deployment here is what prediction logs are keyed by: a registered model's name (its aliases
are what servers follow). The list answers traffic, errors, latency and open alerts per model
over a window (`plinth.monitoring.queries.operations`, which reads the logs' stats rows only).
A deployment's page is its monitoring report (`plinth.monitoring.report.build_report`, one read
of the window's logs) shaped for charts, with its alert incidents. Every answer is aggregates;
the recent requests themselves (inputs, outputs, subject ids) need Right.RAW.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import orjson
from fastapi import APIRouter, Query, Response

from plinth.core.access import Right
from plinth.core.entities import AlertState
from plinth.core.errors import InvalidInput, NotFound
from plinth.core.windows import Window, period_ms
from plinth.monitoring import queries
from plinth.monitoring.report import EVERY_CHOICES, MAX_WINDOWS, Report, build_report, render_html
from plinth.monitoring.served import ModelDrift
from plinth.server.config import ServerConfig
from plinth.server.context import RequestContext
from plinth.server.views.common import RAW, READ, needs, view_router
from plinth.store.base import Store

WINDOWS = {"1h": "1h", "24h": "24h", "7d": "7d", "all": None}
"""The windows the pages offer: the last hour, day or week, or every log."""
DEFAULT_WINDOW = "7d"
FINE_EVERY = ("1s", "2s", "5s", "10s", "15s", "30s")
"""Chart windows shorter than the report's shortest, for traffic that lasted minutes."""
MAX_INCIDENTS = 100
MAX_REQUESTS = 200
REPORT_CSP = "sandbox; default-src 'none'; style-src 'unsafe-inline'; img-src data:"
"""The downloaded report's policy: should a browser show it under this origin, it runs nothing."""


def router(config: ServerConfig) -> APIRouter:
    """`GET /ui/deployments`, and a deployment's monitoring, recent requests and report."""
    router = view_router()

    @router.get("/deployments", openapi_extra=needs(Right.READ))
    def deployments(window: str = DEFAULT_WINDOW, ctx: RequestContext = READ) -> Response:
        """Every model with prediction logs: traffic, errors, latency and open alerts in `window`."""
        span = parse_window(window)
        rows = [deployment_row(ctx.store, name, aliases, span) for name, aliases in logged_models(ctx.store)]
        return _json({"window": _window(window, span), "deployments": rows})

    @router.get("/deployments/{name:path}/monitoring", openapi_extra=needs(Right.READ))
    def monitoring(name: str, window: str = DEFAULT_WINDOW, ctx: RequestContext = READ) -> Response:
        """One deployment's monitoring over `window`: charts' series, drift, performance, alerts.

        Raises (answered by the app's error table): NotFound for a model that is not registered;
        InvalidInput for an unknown window.
        """
        span = parse_window(window)
        store = ctx.store
        aliases = _registered(store, name).aliases
        page: dict[str, Any] = {
            "name": name,
            "window": _window(window, span),
            "aliases": aliases,
            "raw_allowed": ctx.principal.may(ctx.workspace, Right.RAW),
            "alerts": alert_incidents(store, name),
        }
        try:
            found = monitoring_report(store, name, span)
        except InvalidInput as exc:  # no logs in the window: the page says so and keeps its selector
            return _json({**page, "empty": str(exc)})
        return _json({**page, "empty": None, **report_page(found)})

    @router.get("/deployments/{name:path}/requests", openapi_extra=needs(Right.RAW))
    def requests(
        name: str,
        window: str = DEFAULT_WINDOW,
        limit: int = Query(50, ge=1, le=MAX_REQUESTS),
        ctx: RequestContext = RAW,
    ) -> Response:
        """The newest logged requests of `window`, raw: inputs, outputs, subject ids, labels."""
        span = parse_window(window)
        _registered(ctx.store, name)
        rows = recent_requests(ctx.store, name, span, limit)
        return _json({"name": name, "window": _window(window, span), "requests": rows})

    @router.get("/deployments/{name:path}/report", openapi_extra=needs(Right.READ))
    def report_file(name: str, window: str = DEFAULT_WINDOW, ctx: RequestContext = READ) -> Response:
        """The monitoring report as a self-contained HTML file, to download (never shown inline)."""
        span = parse_window(window)
        _registered(ctx.store, name)
        page = render_html(monitoring_report(ctx.store, name, span))
        filename = "".join(c if c.isalnum() or c in "-_." else "-" for c in name) + "-monitoring.html"
        headers = {
            "content-security-policy": REPORT_CSP,
            "content-disposition": f'attachment; filename="{filename}"',
            "x-content-type-options": "nosniff",
        }
        return Response(page, media_type="text/html; charset=utf-8", headers=headers)

    return router


def parse_window(key: str) -> Window:
    """The window a page names: '1h', '24h', '7d' back from now, or 'all'.

    Raises:
        InvalidInput: any other key.
    """
    if key not in WINDOWS:
        raise InvalidInput(f"window must be one of {', '.join(WINDOWS)}, got {key!r:.40}.")
    since = WINDOWS[key]
    return Window() if since is None else Window.parse(since=since)


def recent_requests(store: Store, name: str, span: Window, limit: int) -> list[dict[str, Any]]:
    """The newest `limit` requests of `span`, newest first, each with its label (None if none yet).

    Only the window's tail is decoded: the stats rows (no inputs or outputs) say where the last
    requests begin, twice as many kept to spare shadow answers, which are left out.
    """
    stats = store.prediction_stats(name, since_ms=span.start_ms, until_ms=span.end_ms)
    if not stats:
        return []
    since = int(stats[-min(len(stats), 2 * limit)][0])
    logs = store.prediction_logs(name, since_ms=since, until_ms=span.end_ms)
    answered = [log for log in logs if log.route != "shadow"][-limit:]
    labels = store.window_labels(name, since_ms=since, until_ms=span.end_ms)
    return [{**log._asdict(), "label": labels.get(log.request_id)} for log in reversed(answered)]


def logged_models(store: Store) -> list[tuple[str, dict[str, int]]]:
    """(name, aliases) of each registered model some version of which has prediction logs."""
    found = []
    for model in store.list_registered_models():
        versions = range(1, model.latest_version + 1)
        if any(store.prediction_counts(model.name, v)[0] for v in versions):
            found.append((model.name, dict(model.aliases)))
    return found


def deployment_row(store: Store, name: str, aliases: dict[str, int], span: Window) -> dict[str, Any]:
    """One row of the deployments list: the model's operations in `span` and its open alerts."""
    ops = queries.operations(store, name, span)
    firing = [s for s in model_states(store, name) if s.firing]
    return {
        "name": name,
        "aliases": aliases,
        "versions": [w.version for w in ops.versions],
        **{k: v for k, v in ops.overall.to_dict().items() if k not in ("start_ms", "end_ms", "version")},
        "open_alerts": len(firing),
    }


def monitoring_report(store: Store, name: str, span: Window) -> Report:
    """`build_report` over `span`, in windows short enough to draw traffic that lasted minutes.

    The report picks windows of a minute or more; when its logs fit in fewer windows than a
    chart reads well with, it is built again with windows of seconds.

    Raises:
        InvalidInput: no prediction log of `name` in `span`.
    """
    found = build_report(store, name, span)
    busy = [w for w in found.traffic if w.requests]
    if not busy or len(found.traffic) >= MAX_WINDOWS // 4:
        return found
    first, last = int(busy[0].start_ms or 0), int(busy[-1].end_ms or 0) - 1
    every = choose_every(first, last)
    if period_ms(every) >= period_ms(found.every):
        return found
    return build_report(store, name, span.cut(every))


def choose_every(first_ms: int, last_ms: int) -> str:
    """The shortest window length, seconds included, that covers first..last in at most 48 windows."""
    for choice in (*FINE_EVERY, *EVERY_CHOICES):
        step = period_ms(choice)
        if (last_ms // step) - (first_ms // step) + 1 <= MAX_WINDOWS:
            return choice
    return EVERY_CHOICES[-1]


def report_page(found: Report) -> dict[str, Any]:
    """The parts of a monitoring report the deployment page draws, as series and rows."""
    ops = found.operations
    return {
        "every": found.every,
        "versions": list(found.versions),
        "summary": ops.overall.to_dict(),
        "per_version": [w.to_dict() for w in ops.versions],
        "traffic": traffic_series(found),
        "drift": drift_page(found),
        "performance": performance_page(found),
        "predictions": dataclasses.asdict(found.predictions) if found.predictions else None,
    }


def traffic_series(found: Report) -> dict[str, list[Any]]:
    """Requests, errors and latency percentiles per window, all versions together."""
    windows = found.traffic
    return {
        "x": [w.start_ms for w in windows],
        "requests": [w.requests for w in windows],
        "errors": [w.errors for w in windows],
        "error_rate": [w.error_rate if w.requests else None for w in windows],
        "p50": [w.latency_p50_ms for w in windows],
        "p99": [w.latency_p99_ms for w in windows],
    }


def drift_page(found: Report) -> dict[str, Any]:
    """Drift per feature per window (PSI), and the latest window's comparison of each feature."""
    whole, parts = found.drift, found.drift_windows
    if whole is None:
        return {"note": found.drift_note, "x": [], "series": [], "latest": [], "prediction": None}
    names = [f.name for f in whole.report.features]
    psi = {name: [_feature(part, name, "psi") for part in parts] for name in names}
    latest = parts[-1] if parts else whole
    overall = {f.name: f.psi for f in whole.report.features}
    rows = [{**f.to_dict(), "psi_window": overall.get(f.name)} for f in latest.report.features]
    return {
        "note": None,
        "reference": whole.reference,
        "reference_source": whole.reference_source,
        "thresholds": whole.report.thresholds.to_dict(),
        "x": [part.window.start_ms for part in parts],
        "series": [{"label": name, "y": psi[name]} for name in names],
        "latest_start_ms": latest.window.start_ms,
        "latest": sorted(rows, key=lambda r: (not r["drifted"], -(r["psi"] or 0.0))),
        "drifted": latest.drifted_features,
        "prediction": latest.report.prediction.to_dict() if latest.report.prediction else None,
    }


def performance_page(found: Report) -> dict[str, Any]:
    """Quality against delayed labels: the window's metrics, and each metric per window."""
    perf = found.performance
    names = sorted({k for w in (perf.overall, *perf.windows) for k in w.metrics})
    return {
        "task": perf.task,
        "overall": perf.overall.to_dict(),
        "x": [w.start_ms for w in perf.windows],
        "series": [{"label": k, "y": [w.metrics.get(k) for w in perf.windows]} for k in names]
        + [{"label": "label coverage", "y": [w.coverage if w.predictions else None for w in perf.windows]}],
    }


def model_states(store: Store, name: str) -> list[AlertState]:
    """The alert states of rules watching `name` (as their audit events, or their names, say)."""
    return [state for state, _events in _states_with_events(store, name)]


def alert_incidents(store: Store, name: str) -> list[dict[str, Any]]:
    """The incidents of `name`'s alert rules, newest first: firing or resolved, since when."""
    incidents: dict[str, dict[str, Any]] = {}
    for state, events in _states_with_events(store, name):
        for event in events:
            key = event.get("incident_id") or f"{state.rule}:{state.target}"
            entry = incidents.setdefault(key, _incident(state, event))
            if event.get("status") == "resolved":
                entry.update(
                    status="resolved", resolved_ms=event.get("time_ms"), last_value=event.get("value")
                )
        if state.firing and state.incident_id not in incidents:  # fired before its events were kept
            incidents[state.incident_id or state.rule] = {
                **_incident(state, {}),
                "opened_ms": state.opened_ms,
                "value": state.value,
            }
    found = sorted(incidents.values(), key=lambda x: -(x["opened_ms"] or 0))
    return found[:MAX_INCIDENTS]


def _incident(state: AlertState, event: dict[str, Any]) -> dict[str, Any]:
    return {
        "incident_id": event.get("incident_id") or state.incident_id,
        "status": "firing",
        "rule": state.rule,
        "target": state.target,
        "metric": event.get("metric"),
        "when": event.get("when"),
        "threshold": event.get("threshold"),
        "value": event.get("value"),
        "opened_ms": event.get("opened_ms") or event.get("time_ms"),
        "resolved_ms": None,
        "last_value": None,
    }


def _states_with_events(store: Store, name: str) -> list[tuple[AlertState, list[dict[str, Any]]]]:
    """Each alert state watching `name`, with its firing and resolved notices, oldest first.

    A state does not name its model; its audit events do (each notice records the rule's
    model). A state without events yet belongs to `name` when its target or rule names it.
    """
    out = []
    for state in store.alert_states():
        events = _notices(store, f"{state.rule}:{state.target}")
        models = {event.get("model") for event in events}
        if name in models or (not events and (state.target == name or state.rule.startswith(f"{name}: "))):
            out.append((state, [event for event in events if event.get("model") == name]))
    return out


def _notices(store: Store, entity_id: str) -> list[dict[str, Any]]:
    notices = []
    for event in store.audit_events(entity_id=entity_id):
        if event.action in ("alert.fire", "alert.resolve") and event.after:
            try:
                detail = json.loads(event.after)
            except ValueError:
                continue
            if isinstance(detail, dict):
                notices.append(detail)
    return notices


def _feature(part: ModelDrift, name: str, field: str) -> float | None:
    for feature in part.report.features:
        if feature.name == name:
            value = getattr(feature, field)
            return None if value is None else float(value)
    return None


def _registered(store: Store, name: str) -> Any:
    """The registered model `name`.

    Raises:
        NotFound: no such model, naming where to look.
    """
    for model in store.list_registered_models():
        if model.name == name:
            return model
    raise NotFound(f"No registered model {name!r}; the deployments page lists the served ones.")


def _window(key: str, span: Window) -> dict[str, Any]:
    return {"key": key, "start_ms": span.start_ms, "end_ms": span.end_ms, "choices": list(WINDOWS)}


def _json(doc: dict[str, Any]) -> Response:
    """`doc` as JSON; NaN and infinities become null (orjson writes them so)."""
    return Response(orjson.dumps(doc, option=orjson.OPT_SERIALIZE_NUMPY), media_type="application/json")
