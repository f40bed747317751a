"""The deployments list and a deployment's monitoring page, clicked through in Chromium.

The scenario is built with the public API as the demo builds its own: a model trained on a
logged dataset and registered, predictions logged from elsewhere two and one hours ago
(the first batch from a broken system, so accuracy drops and then recovers), then live
traffic through the serving app with feature `b` shifted and a few malformed requests,
delayed labels, and alert rules checked at those times.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import pytest
from playwright.sync_api import expect
from sklearn.linear_model import LogisticRegression
from starlette.testclient import TestClient

import plinth
from plinth.core.settings import Settings
from plinth.serving.app import create_app
from team_servers import ThreadServer
from ui.conftest import sign_in

MODEL = "churn"
FEATURES = ("a", "b", "c")
SERVED = 150
MALFORMED = 10
HOUR_MS = 3_600_000


@dataclass(frozen=True)
class Scenario:
    """What the test filled the store with."""

    run_id: str
    served: list[str]  # request ids of the live traffic, in order
    logged: int  # requests logged in all, malformed ones included


def frame(rng: np.random.Generator, rows: int, shift_b: float = 0.0) -> pd.DataFrame:
    data = {name: rng.normal(0.0, 1.0, rows) for name in FEATURES}
    data["b"] = data["b"] + shift_b
    return pd.DataFrame(data)


def truth(x: pd.DataFrame) -> np.ndarray:
    return (x["a"] + x["b"] > 0).astype(int).to_numpy()


def scenario() -> Scenario:
    """Train, register, log and serve traffic, label it and check alert rules (see the module)."""
    rng = np.random.default_rng(7)
    train = frame(rng, 800)
    train["y"] = truth(train)
    with plinth.start_run(experiment="churn-training", name="logreg") as run:
        run.log_dataset(train, name="churn-train", role="train")
        model = LogisticRegression().fit(train[list(FEATURES)], train["y"])
        run.log_metrics({"train_accuracy": float(model.score(train[list(FEATURES)], train["y"]))})
    x = train[list(FEATURES)]
    plinth.register_model(MODEL, model, input_example=x[:5], run_id=run.id)
    plinth.set_alias(MODEL, "champion", version=1)

    now = int(time.time() * 1000)
    labels: dict[str, int] = {}
    for hours_ago, broken in ((2, True), (1, False)):
        batch = frame(rng, 300)
        predicted = model.predict(batch)
        outputs = 1 - predicted if broken else predicted  # the first system answered the opposite
        moment = now - hours_ago * HOUR_MS
        ids = plinth.log_predictions(
            f"{MODEL}/1", batch, outputs, timestamps=[moment + i for i in range(300)]
        )
        labels.update(zip(ids, truth(batch).tolist(), strict=True))

    shifted = frame(rng, SERVED, shift_b=4.0)
    served = serve(shifted)
    labels.update(zip(served[:100], truth(shifted)[:100].tolist(), strict=True))
    plinth.log_labels(MODEL, labels)

    accuracy = plinth.parse_rule("accuracy < 0.8", model=MODEL, name="churn accuracy")
    plinth.check_alerts([accuracy], now_ms=now - 2 * HOUR_MS + 30 * 60_000)  # the broken batch: fires
    plinth.check_alerts([accuracy], now_ms=now - HOUR_MS + 30 * 60_000)  # the fixed one: resolves
    drift = plinth.parse_rule("drift(feature=*) > 0.2", model=MODEL, name="churn drift", window="10m")
    plinth.check_alerts([drift])  # the live traffic: feature b fires
    return Scenario(run.id, served, 600 + SERVED + MALFORMED)


def serve(rows: pd.DataFrame) -> list[str]:
    """Send `rows` one per request to the serving app, then malformed requests; the ids answered."""
    ids = []
    with TestClient(create_app([f"{MODEL}@champion"], Settings.from_env())) as client:
        for i, row in enumerate(rows.to_dict(orient="records")):
            body = {"instances": [row], "subject_id": f"user-{i % 20}"}
            answer = client.post(f"/v1/models/{MODEL}/predict", json=body)
            assert answer.status_code == 200, answer.text
            ids.append(answer.json()["request_id"])
        for _ in range(MALFORMED):
            bad = client.post(f"/v1/models/{MODEL}/predict", json={"instances": [{"a": 1.0}]})
            assert bad.status_code == 422
    return ids


def ready(page: Any) -> None:
    page.wait_for_selector("main[data-page][data-ready=true]")


def test_the_list_shows_the_deployment_with_its_traffic(page: Any, ui_server: ThreadServer) -> None:
    found = scenario()
    page.goto(ui_server.url + "/deployments")
    ready(page)
    row = page.locator(f"[data-testid=deployments-table] tr[data-deployment='{MODEL}']")
    assert row.locator("[data-column=requests]").inner_text() == f"{found.logged:,}"
    assert "champion" in row.inner_text()
    assert row.locator("[data-column=open_alerts]").inner_text() == "1 FIRING"
    page.locator("select[name=window]").select_option("1h")
    page.wait_for_url("**/deployments?window=1h")
    ready(page)
    assert row.locator("[data-column=requests]").inner_text() == f"{SERVED + MALFORMED:,}"
    row.get_by_role("link", name=MODEL).click()
    page.wait_for_url(f"**/deployments/{MODEL}?window=1h")
    ready(page)


def test_the_deployment_page_shows_traffic_drift_performance_and_alerts(
    page: Any, ui_server: ThreadServer
) -> None:
    found = scenario()
    page.goto(ui_server.url + f"/deployments/{MODEL}")
    ready(page)
    summary = page.locator("[data-testid=summary]").inner_text()
    assert f"{found.logged:,}" in summary and "champion" in summary
    charts = {
        name: page.locator(f"[data-testid=chart-{name}] [data-testid=chart]")
        for name in ("requests", "latency", "drift", "performance")
    }
    for chart in charts.values():
        chart.and_(page.locator("[data-ready=true]")).wait_for()
    assert charts["requests"].get_attribute("data-series") == "2"  # requests, errors
    assert charts["latency"].get_attribute("data-series") == "2"  # p50, p99
    assert charts["drift"].get_attribute("data-series") == str(len(FEATURES))

    drift = page.locator("[data-testid=drift-table]")
    assert drift.locator("tr[data-feature=b] [data-column=status]").inner_text() == "DRIFTED"
    for calm in ("a", "c"):
        assert drift.locator(f"tr[data-feature={calm}] [data-column=status]").inner_text() == "ok"

    accuracy = page.locator("[data-testid=performance] [data-metric=accuracy]").inner_text()
    assert 0.0 < float(accuracy) < 1.0  # 300 wrong, 400 right
    incidents = page.locator("[data-testid=incidents]")
    firing = incidents.locator("tr[data-status=firing]")
    assert firing.count() == 1 and "churn drift" in firing.inner_text() and "b" in firing.inner_text()
    resolved = incidents.locator("tr[data-status=resolved]")
    assert resolved.count() == 1 and "churn accuracy" in resolved.inner_text()
    # the local user may read them; the table loads on its own after the page is ready
    expect(page.locator("[data-testid=recent-requests]")).to_have_count(1)

    page.locator("select[name=window]").select_option("1h")
    page.wait_for_url("**window=1h")
    # the last hour holds the live traffic only (the logged batches are older)
    expect(page.locator("[data-testid=summary]")).to_contain_text(
        re.compile(rf"Requests{SERVED + MALFORMED:,}Errors")  # its text, without spaces
    )


def test_a_viewer_sees_aggregates_and_an_auditor_the_raw_requests(
    page: Any, ui_server_factory: Any, console: Any
) -> None:
    found = scenario()
    server = ui_server_factory(local=False)
    sign_in(page, server, server.issue("vera", "viewer"))
    page.goto(server.url + f"/deployments/{MODEL}")
    ready(page)
    page.locator("[data-testid=drift-table]").wait_for()
    assert page.locator("[data-testid=recent-requests]").count() == 0
    assert "subject" not in page.locator("main").inner_text().lower()
    raw = page.request.get(server.url + f"/api/v1/ui/deployments/{MODEL}/requests")
    assert raw.status == 403

    page.context.clear_cookies()
    sign_in(page, server, server.issue("aldo", "auditor"))
    page.goto(server.url + f"/deployments/{MODEL}")
    table = page.locator("[data-testid=recent-requests]")
    table.locator("tbody tr").first.wait_for()
    newest = table.locator("tbody tr[data-status='200']").first
    assert newest.get_attribute("data-request-id") == found.served[-1]
    assert "user-" in newest.inner_text()
    assert table.locator("tbody tr[data-status='422']").count() == MALFORMED


def test_an_unknown_deployment_and_window_say_so(page: Any, ui_server: ThreadServer, console: Any) -> None:
    console.allow("status of 4(04|22)")
    page.goto(ui_server.url + "/deployments/nobody")
    error = page.locator("[data-testid=error]")
    error.wait_for()
    assert "nobody" in error.inner_text()
    answer = page.request.get(ui_server.url + "/api/v1/ui/deployments?window=3w")
    assert answer.status == 422 and "1h, 24h, 7d, all" in answer.text()


def test_the_report_downloads_under_a_policy_that_runs_nothing(page: Any, ui_server: ThreadServer) -> None:
    scenario()
    answer = page.request.get(ui_server.url + f"/api/v1/ui/deployments/{MODEL}/report?window=all")
    assert answer.ok
    assert answer.headers["content-security-policy"].startswith("sandbox")
    assert answer.headers["content-disposition"].startswith("attachment")
    assert "Monitoring report: churn" in answer.text()


@pytest.mark.parametrize("window", ["1h", "24h", "7d", "all"])
def test_every_window_answers(page: Any, ui_server: ThreadServer, window: str) -> None:
    page.goto(ui_server.url + f"/deployments?window={window}")
    ready(page)
    assert page.locator("select[name=window]").input_value() == window
    assert "No model has logged predictions" in page.locator("main").inner_text()
