"""Alert evaluation: rules checked against the store, one notice per incident, state in the store.

Each evaluation computes every rule's metric over the window that ends now (per feature for
`feature=*`) and updates the rule's state for that target in the store:

* a breach adds one to the target's consecutive breaches; when they reach the rule's
  `for N windows` and no incident is open, an incident opens: the notice is POSTed to the
  webhook and the state is saved with an `alert.fire` audit event;
* while the incident stays open, breaches are counted and nothing is sent again;
* a value that does not breach closes an open incident (`alert.resolve`, a resolved notice)
  and resets the count;
* no data (no requests in the window, no labels yet) changes nothing.

Because the state lives in the store, a restarted watcher neither re-fires an open incident
nor forgets one. The notice is POSTed before the state is saved, so a watcher that dies between
the two sends it again rather than never: delivery is at least once.

Rules are written in the grammar of `plinth.monitoring.alert_rules`.
"""

from __future__ import annotations

import json
import logging
import math
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

from plinth.core.entities import AlertState
from plinth.core.errors import InvalidInput, NotFound, PlinthError
from plinth.core.ids import new_id
from plinth.core.ids import now_ms as clock_ms
from plinth.core.units import parse_duration
from plinth.monitoring import ops as _ops
from plinth.monitoring import performance as _performance
from plinth.monitoring import served
from plinth.monitoring.alert_rules import (
    METRICS,
    AlertRule,
    RuleSet,
    load_rules,
    parse_rule,
)
from plinth.monitoring.webhooks import Webhook, deliver
from plinth.monitoring.windows import Window
from plinth.store.base import Store
from plinth.tracking.context import backend

__all__ = [
    "AlertEvent",
    "AlertRule",
    "RuleSet",
    "check_alerts",
    "evaluate",
    "load_rules",
    "parse_rule",
    "watch",
]

log = logging.getLogger("plinth.monitoring")

Notify = Callable[[Webhook, Mapping[str, Any]], str | None]
"""Sends one notice to a webhook; returns None when delivered, else why not (never its URL)."""

Status = Literal["firing", "resolved", "error"]

_LATENCY = {
    "p50_latency_ms": "latency_p50_ms",
    "p95_latency_ms": "latency_p95_ms",
    "p99_latency_ms": "latency_p99_ms",
}


@dataclass(frozen=True)
class AlertEvent:
    """An incident opened ("firing") or closed ("resolved"), or a rule that could not be evaluated.

    Attributes:
        status: "firing", "resolved", or "error" (the rule failed; `error` says why; not sent).
        rule: The rule's name.
        model: The model it watches.
        target: The feature (for per-feature metrics) or the model's name.
        metric: The rule's metric.
        value: The value that breached (firing) or no longer breaches (resolved).
        threshold: The rule's threshold.
        op: The rule's comparison.
        incident_id: The incident's id (the same on its firing and resolved events).
        opened_ms: When the incident opened.
        time_ms: When this evaluation ran.
        window: The data window the value was computed on.
        when: The rule's condition as written.
        webhook: Whether a webhook was configured for the rule.
        delivered: Whether the webhook accepted the notice.
        error: Why delivery failed, or why the rule could not be evaluated; None when all went well.
    """

    status: Status
    rule: str
    model: str
    target: str
    metric: str
    value: float | None
    threshold: float
    op: str
    incident_id: str | None
    opened_ms: int | None
    time_ms: int
    window: Window
    when: str = ""
    webhook: bool = False
    delivered: bool = False
    error: str | None = None

    def payload(self) -> dict[str, Any]:
        """The JSON body POSTed to the webhook."""
        return {
            "status": self.status,
            "rule": self.rule,
            "model": self.model,
            "target": self.target,
            "metric": self.metric,
            "value": self.value,
            "threshold": self.threshold,
            "op": self.op,
            "when": self.when,
            "incident_id": self.incident_id,
            "opened_ms": self.opened_ms,
            "time_ms": self.time_ms,
            "window": {"start_ms": self.window.start_ms, "end_ms": self.window.end_ms},
        }

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form: the payload plus the delivery outcome (what the audit event records)."""
        return {**self.payload(), "webhook": self.webhook, "delivered": self.delivered, "error": self.error}


def evaluate(
    store: Store,
    rules: RuleSet | Sequence[AlertRule],
    *,
    now_ms: int | None = None,
    notify: Notify = deliver,
) -> list[AlertEvent]:
    """Evaluate `rules` once at `now_ms` (default: now); return the incidents opened and closed.

    A rule that cannot be evaluated (unknown model, no reference, store unreachable) gives an
    "error" event and leaves its state alone; the other rules still run. A failed webhook
    delivery (a target refused by its address included) is logged, recorded in the audit event
    and reported in the event's `error`.

    Raises:
        InvalidInput: two rules share a name.
    """
    ruleset = rules if isinstance(rules, RuleSet) else RuleSet(tuple(rules))
    _check_unique(ruleset.rules)
    run = _Evaluation(store, clock_ms() if now_ms is None else int(now_ms), notify)
    events: list[AlertEvent] = []
    for rule in ruleset.rules:
        events.extend(run.rule(rule, rule.webhook or ruleset.webhook))
    return events


def check_alerts(
    rules_or_path: RuleSet | Sequence[AlertRule] | AlertRule | str | Path, *, now_ms: int | None = None
) -> list[AlertEvent]:
    """Evaluate alert rules (a rules file's path, a RuleSet or rules) once on the default backend.

    Example:
        >>> rule = plinth.parse_rule("error_rate > 1%", model="iris-clf", webhook="https://hooks.example.com/x")
        >>> for event in plinth.check_alerts([rule]):
        ...     print(event.status, event.target, event.value)
    """
    if isinstance(rules_or_path, str | Path):
        rules: RuleSet | Sequence[AlertRule] = load_rules(rules_or_path)
    elif isinstance(rules_or_path, AlertRule):
        rules = [rules_or_path]
    else:
        rules = rules_or_path
    return evaluate(backend().store, rules, now_ms=now_ms)


def watch(
    path: str | Path,
    *,
    every: str | float | None = None,
    once: bool = False,
    stop: threading.Event | None = None,
    report: Callable[[list[AlertEvent]], None] | None = None,
) -> None:
    """Evaluate the rules file at `path` now and then every period until `stop` is set or Ctrl-C.

    Args:
        path: TOML rules file.
        every: Evaluation period ('1m', seconds); default the file's `every`.
        once: Evaluate once and return.
        stop: Set it (from another thread) to end the loop.
        report: Called with each evaluation's events.

    Raises:
        NotFound, InvalidInput: the file is missing or has problems (before any evaluation).
    """
    ruleset = load_rules(path)
    period = _period(every, ruleset)
    stop = stop or threading.Event()
    started = time.monotonic()
    ticks = 0
    try:
        while True:
            events = evaluate(backend().store, ruleset)
            if report is not None:
                report(events)
            if once:
                return
            # A fixed schedule: an evaluation that overruns skips the ticks it missed.
            ticks = max(ticks + 1, int((time.monotonic() - started) / period) + 1)
            if stop.wait(max(started + ticks * period - time.monotonic(), 0.0)):
                return
    except KeyboardInterrupt:
        return


def _period(every: str | float | None, ruleset: RuleSet) -> float:
    seconds = parse_duration(every) if every is not None else ruleset.every_s
    if not seconds:
        raise InvalidInput(f"every={every!r} must be a period such as 30s or 1m.")
    return seconds


def _check_unique(rules: Sequence[AlertRule]) -> None:
    names = [r.name for r in rules]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise InvalidInput(f"Alert rule names must be unique; used more than once: {', '.join(twice)}.")


class _Evaluation:
    """One pass over the rules at one moment; each source's data is read once per model and window."""

    def __init__(self, store: Store, moment: int, notify: Notify) -> None:
        self.store = store
        self.moment = moment
        self.notify = notify
        self._sources: dict[tuple[str, str, int], Any] = {}
        self._models: set[str] | None = None

    def rule(self, rule: AlertRule, webhook: Webhook | None) -> list[AlertEvent]:
        span = Window(self.moment - rule.window_ms, self.moment)
        events: list[AlertEvent] = []
        try:
            values = self._values(rule, span)
            states = {s.target: s for s in self.store.alert_states(rule.name)}
            for target, value in values.items():
                event = self._step(rule, target, value, states.get(target), span, webhook)
                if event is not None:
                    events.append(event)
        except Exception as exc:  # a watcher must outlive one rule's failure
            if not isinstance(exc, PlinthError):
                log.exception("alert rule %r failed", rule.name)
            events.append(self._failed(rule, span, exc))
        return events

    # ---------------------------------------------------------------- metric values per target

    def _values(self, rule: AlertRule, span: Window) -> dict[str, float | None]:
        if self._models is None:
            self._models = {m.name for m in self.store.list_registered_models()}
        if rule.model not in self._models:
            raise NotFound(
                f"No registered model {rule.model!r}; fix the rule's model (`plinth models list`)."
            )
        source = METRICS[rule.metric]
        key = (source, rule.model, rule.window_ms)
        if key not in self._sources:
            self._sources[key] = _READERS[source](self.store, rule.model, span)
        found = self._sources[key]
        if source == "drift":
            return _drift_values(rule, found)
        if source == "performance":
            return {rule.model: _performance_value(rule, found)}
        return {rule.model: _ops_value(rule.metric, found)}

    # ---------------------------------------------------------------- state changes

    def _step(
        self,
        rule: AlertRule,
        target: str,
        value: float | None,
        state: AlertState | None,
        span: Window,
        webhook: Webhook | None,
    ) -> AlertEvent | None:
        if value is None or math.isnan(value):
            return None  # no data: neither a breach nor a recovery
        prior = state or AlertState(rule.name, target, 0, False, None, None, None, self.moment)
        if rule.breached(value):
            breaches = prior.breaches + 1
            if not prior.firing and breaches >= rule.for_windows:
                return self._fire(rule, target, value, breaches, span, webhook)
            self._save(replace(prior, breaches=breaches, value=value, updated_ms=self.moment))
            return None
        if prior.firing:
            return self._resolve(rule, prior, value, span, webhook)
        self._save(replace(prior, breaches=0, value=value, updated_ms=self.moment))
        return None

    def _fire(
        self, rule: AlertRule, target: str, value: float, breaches: int, span: Window, webhook: Webhook | None
    ) -> AlertEvent:
        incident = new_id()
        event = self._event("firing", rule, target, value, incident, self.moment, span)
        event = self._send(event, webhook)
        state = AlertState(rule.name, target, breaches, True, incident, self.moment, value, self.moment)
        self._save(state, "alert.fire", event)
        return event

    def _resolve(
        self, rule: AlertRule, prior: AlertState, value: float, span: Window, webhook: Webhook | None
    ) -> AlertEvent:
        event = self._event("resolved", rule, prior.target, value, prior.incident_id, prior.opened_ms, span)
        event = self._send(event, webhook)
        state = AlertState(rule.name, prior.target, 0, False, None, None, value, self.moment)
        self._save(state, "alert.resolve", event)
        return event

    def _send(self, event: AlertEvent, webhook: Webhook | None) -> AlertEvent:
        if webhook is None:
            return event
        problem = self.notify(webhook, event.payload())
        return replace(event, webhook=True, delivered=problem is None, error=problem)

    def _save(self, state: AlertState, action: str | None = None, event: AlertEvent | None = None) -> None:
        detail = json.dumps(event.to_dict()) if event is not None else None
        self.store.save_alert_state(state, action=action, detail=detail)

    def _event(
        self,
        status: Status,
        rule: AlertRule,
        target: str,
        value: float | None,
        incident: str | None,
        opened_ms: int | None,
        span: Window,
    ) -> AlertEvent:
        return AlertEvent(
            status,
            rule.name,
            rule.model,
            target,
            rule.metric,
            value,
            rule.threshold,
            rule.op,
            incident,
            opened_ms,
            self.moment,
            span,
            rule.when,
        )

    def _failed(self, rule: AlertRule, span: Window, exc: Exception) -> AlertEvent:
        why = str(exc) if isinstance(exc, PlinthError) else f"{type(exc).__name__}: {exc}"
        target = rule.selector or rule.model
        return replace(self._event("error", rule, target, None, None, None, span), error=why)


# --------------------------------------------------------------------------- reading the sources


def _read_drift(store: Store, model: str, span: Window) -> served.ModelDrift | None:
    # One part as long as the window: the window's drift, or none when it had no requests.
    whole = Window(span.start_ms, span.end_ms, every_ms=(span.end_ms or 0) - (span.start_ms or 0))
    found = served.drift_over_time(store, model, whole)
    return found[0] if found else None


def _read_performance(store: Store, model: str, span: Window) -> _performance.PerformanceReport:
    labels = store.window_labels(model, since_ms=span.start_ms, until_ms=span.end_ms)
    return _performance.performance_of(model, served.answered(store, model, span), labels, span)


def _read_ops(store: Store, model: str, span: Window) -> _ops.OpsReport:
    stats = store.prediction_stats(model, since_ms=span.start_ms, until_ms=span.end_ms)
    return _ops.operations(model, stats, span)


_READERS: dict[str, Callable[[Store, str, Window], Any]] = {
    "drift": _read_drift,
    "performance": _read_performance,
    "operations": _read_ops,
}


def _drift_values(rule: AlertRule, found: served.ModelDrift | None) -> dict[str, float | None]:
    if rule.metric in ("drift", "js"):
        if found is None:
            return {} if rule.selector == "*" else {str(rule.selector): None}
        features = {f.name: f.psi if rule.metric == "drift" else f.js_distance for f in found.report.features}
        if rule.selector == "*":
            return features
        if rule.selector not in features:
            raise InvalidInput(
                f"{rule.model} has no feature {rule.selector!r}; its features are "
                f"{', '.join(features)}. Fix the rule's feature=, or use feature=*."
            )
        return {str(rule.selector): features[str(rule.selector)]}
    if found is None:
        return {rule.model: None}
    if rule.metric == "drift_share":
        return {rule.model: found.report.drift_share}
    prediction = found.report.prediction
    if prediction is None:
        raise InvalidInput(
            f"{rule.model}'s reference {found.reference} has no target column to compare predictions with; "
            f"log the training data with its target column, or drop the prediction_drift rule."
        )
    return {rule.model: prediction.psi}


def _performance_value(rule: AlertRule, found: _performance.PerformanceReport) -> float | None:
    overall = found.overall
    if rule.metric == "coverage":
        return overall.coverage if overall.predictions else None
    if not overall.labeled:
        return None
    if rule.metric not in overall.metrics:
        raise InvalidInput(
            f"{rule.metric} is not measured for {rule.model}, a {found.task} model; "
            f"use one of {', '.join([*overall.metrics, 'coverage'])}."
        )
    return overall.metrics[rule.metric]


def _ops_value(metric: str, found: _ops.OpsReport) -> float | None:
    overall = found.overall
    if metric == "throughput_rps":
        return overall.throughput_rps  # no requests is a throughput of zero, not missing data
    if not overall.requests:
        return None
    if metric == "error_rate":
        return overall.error_rate
    value: float | None = getattr(overall, _LATENCY[metric])
    return value
