"""Alert rules: the grammar, rules files, evaluation against the store, webhooks and the watcher."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import partial
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import orjson
import pandas as pd
import pytest
from click.testing import CliRunner
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

import plinth
from plinth.cli.monitor.watch import watch as watch_command
from plinth.core.entities import PredictionLog
from plinth.core.errors import InvalidInput, NotFound
from plinth.core.ids import new_id, now_ms
from plinth.monitoring.alerts import AlertEvent, check_alerts, evaluate, load_rules, parse_rule, watch
from plinth.monitoring.webhooks import Webhook, WebhookPolicy, deliver
from plinth.tracking.context import Backend, open_backend

pytestmark = pytest.mark.usefixtures("logs_in")

HOUR = 3_600_000
PETAL = "petal length (cm)"


@dataclass
class Receiver:
    """A webhook on 127.0.0.1 that keeps every POSTed JSON body."""

    url: str
    posts: list[dict[str, Any]] = field(default_factory=list)
    content_types: list[str] = field(default_factory=list)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    found = Receiver("")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            found.posts.append(json.loads(body))
            found.content_types.append(self.headers["Content-Type"])
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    found.url = f"http://127.0.0.1:{server.server_port}/hook"
    yield found
    server.shutdown()
    server.server_close()
    thread.join()


def iris_model() -> tuple[pd.DataFrame, LogisticRegression]:
    frame = load_iris(as_frame=True).frame
    features = frame.drop(columns="target")
    model = LogisticRegression(max_iter=500).fit(features, frame["target"])
    with plinth.start_run(experiment="iris") as run:
        run.log_dataset(frame, name="iris-train", role="train")
        run.log_model(model, name="iris-clf", input_example=features.head(3))
    return features, model


def serve(be: Backend, model: LogisticRegression, rows: pd.DataFrame, at_ms: int) -> list[str]:
    """Log one request per row, as the server would, starting at `at_ms`."""
    logs = []
    for i, (_, row) in enumerate(rows.iterrows()):
        part = row.to_frame().T
        body = orjson.dumps({"instances": part.to_dict(orient="records")}).decode()
        out = orjson.dumps(model.predict(part), option=orjson.OPT_SERIALIZE_NUMPY).decode()
        logs.append(
            PredictionLog(new_id(), "iris-clf", 1, "primary", at_ms + i, 2.0, None, body, out, 200, 1)
        )
    be.store.write_prediction_logs(logs)
    return [x.request_id for x in logs]


def traffic(be: Backend, at_ms: int, *, count: int, errors: int = 0, latency_ms: float = 2.0) -> None:
    """`count` requests from `at_ms`, the first `errors` of them failed."""
    logs = [
        PredictionLog(
            new_id(),
            "iris-clf",
            1,
            "primary",
            at_ms + i,
            latency_ms,
            None,
            "{}",
            "[0]" if i >= errors else "boom",
            500 if i < errors else 200,
            1,
        )
        for i in range(count)
    ]
    be.store.write_prediction_logs(logs)


def shifted_rows(features: pd.DataFrame, seed: int) -> pd.DataFrame:
    rows = features.sample(300, replace=True, random_state=seed).reset_index(drop=True)
    rows[PETAL] = rows[PETAL] + 2.5
    return rows


def alert_actions(be: Backend, rule: str) -> list[str]:
    return [e.action for e in be.store.audit_events() if e.entity_id.startswith(f"{rule}:")]


def test_drift_fires_once_after_two_windows_and_resolves(tracking: Backend, receiver: Receiver) -> None:
    features, model = iris_model()
    base = now_ms() - 10 * HOUR
    for hour in range(3):
        serve(tracking, model, shifted_rows(features, hour), base + hour * HOUR)
    serve(tracking, model, features.sample(300, replace=True, random_state=9), base + 3 * HOUR)
    rule = parse_rule(
        "drift(feature=*) > 0.2 for 2 windows",
        model="iris-clf",
        name="iris-drift",
        webhook=receiver.url,
        allow_private=True,
    )

    assert check_alerts([rule], now_ms=base + HOUR) == []
    assert receiver.posts == []
    [fired] = check_alerts([rule], now_ms=base + 2 * HOUR)
    assert (fired.status, fired.target, fired.delivered, fired.error) == ("firing", PETAL, True, None)
    assert check_alerts([rule], now_ms=base + 3 * HOUR) == []
    [resolved] = check_alerts([rule], now_ms=base + 4 * HOUR)
    assert (resolved.status, resolved.target) == ("resolved", PETAL)

    assert [p["status"] for p in receiver.posts] == ["firing", "resolved"]
    assert receiver.content_types == ["application/json"] * 2
    first = receiver.posts[0]
    assert first["incident_id"] == fired.incident_id == resolved.incident_id
    assert (first["rule"], first["model"], first["metric"], first["op"]) == (
        "iris-drift",
        "iris-clf",
        "drift",
        ">",
    )
    assert first["value"] > 0.2 and first["threshold"] == 0.2
    assert first["window"] == {"start_ms": base + HOUR, "end_ms": base + 2 * HOUR}
    assert receiver.posts[1]["value"] <= 0.2 and receiver.posts[1]["opened_ms"] == first["opened_ms"]
    assert alert_actions(tracking, "iris-drift") == ["alert.fire", "alert.resolve"]
    assert plinth.verify_audit().ok


def test_an_open_incident_is_not_fired_again_after_a_restart(tracking: Backend, receiver: Receiver) -> None:
    features, model = iris_model()
    base = now_ms() - 5 * HOUR
    serve(tracking, model, shifted_rows(features, 1), base)
    rule = parse_rule(
        f'drift(feature="{PETAL}") > 0.2', model="iris-clf", webhook=receiver.url, allow_private=True
    )
    [fired] = check_alerts(rule, now_ms=base + HOUR)
    assert fired.status == "firing"

    restarted = open_backend(tracking.settings)
    try:
        assert evaluate(restarted.store, [rule], now_ms=base + HOUR) == []
        [state] = restarted.store.alert_states(rule.name)
    finally:
        restarted.close()
    assert (state.firing, state.incident_id, state.breaches) == (True, fired.incident_id, 2)
    assert len(receiver.posts) == 1


def test_accuracy_fires_only_once_labels_show_it(tracking: Backend, receiver: Receiver) -> None:
    features, model = iris_model()
    at = now_ms() - 30 * 60_000
    ids = serve(tracking, model, features, at)
    rule = parse_rule(
        "accuracy < 0.9", model="iris-clf", name="iris-accuracy", webhook=receiver.url, allow_private=True
    )
    assert check_alerts(rule) == []  # no labels yet: no data, no alert
    wrong = (model.predict(features) + 1) % 3
    plinth.log_labels("iris-clf", list(zip(ids, wrong.tolist(), strict=True)))
    [fired] = check_alerts(rule)
    assert (fired.status, fired.target, fired.value) == ("firing", "iris-clf", 0.0)
    assert receiver.posts[0]["metric"] == "accuracy"


def test_error_rate_percent_and_p99_latency(tracking: Backend, receiver: Receiver) -> None:
    iris_model()
    base = now_ms() - 3 * HOUR
    traffic(tracking, base, count=200, errors=10, latency_ms=80.0)
    traffic(tracking, base + HOUR, count=200, errors=1, latency_ms=5.0)
    rules = [
        parse_rule(
            "error_rate > 1%", model="iris-clf", name="errors", webhook=receiver.url, allow_private=True
        ),
        parse_rule(
            "p99_latency_ms > 50", model="iris-clf", name="latency", webhook=receiver.url, allow_private=True
        ),
        parse_rule("throughput_rps < 0.01", model="iris-clf", name="traffic"),
    ]
    assert rules[0].threshold == 0.01
    fired = check_alerts(rules, now_ms=base + HOUR)
    assert {(e.rule, e.status) for e in fired} == {("errors", "firing"), ("latency", "firing")}
    assert {e.rule: e.value for e in fired}["errors"] == pytest.approx(0.05)
    resolved = check_alerts(rules, now_ms=base + 2 * HOUR)
    assert {(e.rule, e.status) for e in resolved} == {("errors", "resolved"), ("latency", "resolved")}
    [quiet] = check_alerts(rules, now_ms=base + 3 * HOUR)  # no requests: throughput is zero
    assert (quiet.rule, quiet.status, quiet.value, quiet.webhook) == ("traffic", "firing", 0.0, False)
    assert [p["rule"] for p in receiver.posts] == ["errors", "latency", "errors", "latency"]


def test_a_webhook_that_is_down_does_not_stop_the_evaluation(tracking: Backend) -> None:
    iris_model()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{sock.getsockname()[1]}/hook"
    at = now_ms() - 60_000
    traffic(tracking, at, count=10, errors=5)
    rules = [
        parse_rule("error_rate > 10%", model="iris-clf", name="down", webhook=closed, allow_private=True),
        parse_rule("error_rate > 10%", model="iris-clf", name="audit-only"),
    ]
    quick = partial(deliver, policy=WebhookPolicy(timeout_s=2, attempts=2, backoff_s=0.01))
    down, audited = evaluate(tracking.store, rules, notify=quick)
    assert (down.status, down.webhook, down.delivered) == ("firing", True, False)
    assert down.error is not None and "2 attempts" in down.error and "127.0.0.1" not in down.error
    assert (audited.status, audited.webhook, audited.error) == ("firing", False, None)
    [event] = [e for e in tracking.store.audit_events() if e.action == "alert.fire" and "down" in e.entity_id]
    detail = json.loads(event.after or "{}")
    assert (detail["delivered"], detail["error"]) == (False, down.error)


def test_a_rule_that_cannot_be_evaluated_is_reported_and_the_others_run(tracking: Backend) -> None:
    iris_model()
    traffic(tracking, now_ms() - 60_000, count=10, errors=10)
    rules = [
        parse_rule("error_rate > 1%", model="no-such-model", name="ghost"),
        parse_rule("mae > 1", model="iris-clf", name="wrong-task"),
        parse_rule("error_rate > 1%", model="iris-clf", name="real"),
    ]
    events = check_alerts(rules)
    assert [(e.rule, e.status) for e in events] == [("ghost", "error"), ("real", "firing")]
    assert "No registered model 'no-such-model'" in (events[0].error or "")
    with pytest.raises(InvalidInput, match="unique"):
        check_alerts([rules[0], rules[0]])


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("dirft(feature=*) > 0.2", "unknown metric 'dirft'; use one of drift, js, drift_share"),
        ("drift > 0.2", r"write drift\(feature=NAME\) or drift\(feature=\*\)"),
        ("accuracy(feature=x) < 0.9", "takes no"),
        ("drift(column=x) > 0.2", "the only selector is feature="),
        ("drift(feature=petal length (cm)) > 0.2", "quote a name holding parentheses"),
        ("accuracy == 0.9", "one of >= <= > <"),
        ("accuracy < high", "expected a number"),
        ("p99_latency_ms > 5%", "not a share"),
        ("accuracy < 0.9 for two windows", "for N windows"),
        ("accuracy < 0.9 sometimes", "unexpected 'sometimes'"),
        ("", "the condition is empty"),
    ],
)
def test_bad_conditions_say_what_to_write(text: str, message: str) -> None:
    with pytest.raises(InvalidInput, match=message) as info:
        parse_rule(text, model="iris-clf", name="r1")
    assert "'r1'" in str(info.value)


@pytest.mark.parametrize(
    ("text", "metric", "selector", "op", "threshold", "count"),
    [
        ("drift(feature=*) > 0.2 for 2 windows", "drift", "*", ">", 0.2, 2),
        (f'js(feature="{PETAL}") >= .1', "js", PETAL, ">=", 0.1, 1),
        ("js( feature = sepal width ) <= 1e-1 for 1 window", "js", "sepal width", "<=", 0.1, 1),
        ("error_rate > 1%", "error_rate", None, ">", 0.01, 1),
        ("r2<-0.5", "r2", None, "<", -0.5, 1),
    ],
)
def test_conditions(
    text: str, metric: str, selector: str | None, op: str, threshold: float, count: int
) -> None:
    rule = parse_rule(text, model="m")
    assert (rule.metric, rule.selector, rule.op, rule.threshold, rule.for_windows) == (
        metric,
        selector,
        op,
        pytest.approx(threshold),
        count,
    )


def test_a_rules_file_lists_every_problem(tmp_path: Path) -> None:
    path = tmp_path / "rules.toml"
    path.write_text(
        """
every = "soon"
colour = "red"
[[rule]]
name = "a"
model = "iris-clf"
when = "accuracy < 0.9"
[[rule]]
name = "a"
model = "iris-clf"
when = "latency > 5"
window = "forever"
webhook = "ftp://host/x"
[[rule]]
model = "iris-clf"
when = "error_rate > 1%"
threshold = 3
"""
    )
    with pytest.raises(InvalidInput) as info:
        load_rules(path)
    text = str(info.value)
    for expected in (
        str(path),
        "unknown top-level key 'colour'",
        "every = 'soon' is not a period",
        "rule 2 ('a'): unknown metric 'latency'; use one of drift",
        "rule 2 ('a'): window 'forever' is not a period",
        "rule 2 ('a'): webhook 'ftp://host/x' is not an http(s) URL",
        'rule 3: name is missing; add e.g. name = "iris-drift"',
        "rule 3: unknown key 'threshold'",
    ):
        assert expected in text
    assert len(info.value.problems) == 7


def test_a_rules_file_that_is_not_toml_or_missing(tmp_path: Path) -> None:
    path = tmp_path / "rules.toml"
    path.write_text('[[rule]]\nname = "a\n')
    with pytest.raises(InvalidInput, match=r"not valid TOML.*line 2"):
        load_rules(path)
    with pytest.raises(NotFound, match="No rules file"):
        load_rules(tmp_path / "missing.toml")


def test_a_rules_file_sets_defaults(tmp_path: Path) -> None:
    path = tmp_path / "rules.toml"
    path.write_text(
        """
webhook = "http://127.0.0.1:9/all"
allow_private = true
every = "30s"
[[rule]]
name = "drift"
model = "iris-clf"
when = "drift(feature=*) > 0.2 for 2 windows"
[[rule]]
name = "errors"
model = "iris-clf"
when = "error_rate > 1%"
window = "15m"
webhook = "http://127.0.0.1:9/own"
"""
    )
    rules = load_rules(path)
    assert rules.every_s == 30
    assert [(r.name, r.window_ms, r.webhook) for r in rules.rules] == [
        ("drift", HOUR, Webhook("http://127.0.0.1:9/all", allow_private=True)),
        ("errors", 15 * 60_000, Webhook("http://127.0.0.1:9/own", allow_private=True)),
    ]


def write_rules(tmp_path: Path, receiver: Receiver) -> Path:
    path = tmp_path / "rules.toml"
    path.write_text(
        f'webhook = "{receiver.url}"\nallow_private = true\n'
        '[[rule]]\nname = "errors"\nmodel = "iris-clf"\nwhen = "error_rate > 1%"\nwindow = "10m"\n'
    )
    return path


def test_watch_cli_prints_what_fires(tracking: Backend, receiver: Receiver, tmp_path: Path) -> None:
    iris_model()
    traffic(tracking, now_ms() - 60_000, count=20, errors=5)
    result = CliRunner().invoke(watch_command, [str(write_rules(tmp_path, receiver)), "--once"])
    assert result.exit_code == 0, result.output
    assert "FIRING" in result.output and "errors iris-clf/iris-clf: error_rate = 0.25" in result.output
    assert len(receiver.posts) == 1
    again = CliRunner().invoke(watch_command, [str(write_rules(tmp_path, receiver)), "--once"])
    assert "FIRING" not in again.output and len(receiver.posts) == 1

    helped = CliRunner().invoke(watch_command, ["--help"])
    assert "for N windows" in helped.output and "drift(feature=*) > 0.2 for 2 windows" in helped.output


def test_watch_runs_until_stopped(tracking: Backend, receiver: Receiver, tmp_path: Path) -> None:
    iris_model()
    traffic(tracking, now_ms() - 60_000, count=20, errors=5)
    stop = threading.Event()
    seen: list[list[AlertEvent]] = []

    def report(events: list[AlertEvent]) -> None:
        seen.append(events)
        if len(seen) == 2:
            stop.set()

    thread = threading.Thread(
        target=watch,
        args=(write_rules(tmp_path, receiver),),
        kwargs={"every": 0.01, "stop": stop, "report": report},
    )
    thread.start()
    thread.join(timeout=60)
    assert not thread.is_alive()
    assert [[e.status for e in events] for events in seen] == [["firing"], []]
