"""The audit log with its chain's status, erasure receipts and costs, in Chromium."""

from __future__ import annotations

import re
from dataclasses import replace
from typing import Any

import pytest
from sqlalchemy import text

import plinth
from plinth.core.entities import PredictionLog
from plinth.core.ids import new_id, now_ms
from plinth.core.settings import Settings
from plinth.tracking.context import backend
from team_servers import ThreadServer
from ui.conftest import sign_in


def ready(page: Any) -> None:
    page.wait_for_selector("main[data-page][data-ready=true]")


def runs(count: int, experiment: str = "iris") -> list[str]:
    ids = []
    for i in range(count):
        with plinth.start_run(experiment=experiment, params={"i": i}) as run:
            ids.append(run.id)
    return ids


def logged_run(experiment: str, cpu: float, hours: float) -> None:
    """A run with the resource-hours a sampled run would have logged."""
    with plinth.start_run(experiment, system_metrics=False, tags={"plinth.cpu": cpu}) as run:
        run.log_metrics(
            {"system/wall_hours": hours, "system/cpu_hours": cpu * hours, "system/memory_gib_hours": hours}
        )


def audit_rows(page: Any) -> Any:
    return page.locator("[data-testid=audit-table] tbody tr")


def test_audit_page_shows_the_chain_intact_newest_first_and_filters(
    page: Any, ui_server: ThreadServer
) -> None:
    ids = runs(3)
    page.goto(ui_server.url + "/audit")
    ready(page)
    status = page.locator("[data-testid=chain-status]")
    status.and_(page.locator("[data-ok]")).wait_for()
    found = re.search(r"Chain intact: (\d+) events verified", status.inner_text())
    assert found and int(found.group(1)) == plinth.verify_audit().events
    seqs = [int(s) for s in audit_rows(page).evaluate_all("rs => rs.map(r => r.dataset.seq)")]
    assert seqs == sorted(seqs, reverse=True) and len(seqs) == int(found.group(1))

    page.locator("input[name=entity]").fill(ids[1])
    page.locator("select[name=action]").select_option("run.create")
    page.get_by_role("button", name="Apply").click()
    page.wait_for_url("**entity=*")
    ready(page)
    page.wait_for_function(
        "() => document.querySelectorAll('[data-testid=audit-table] tbody tr').length === 1"
    )
    cells = audit_rows(page).first.locator("td").all_inner_texts()
    assert cells[3] == "run.create" and ids[1] in cells[4]
    assert page.locator("[data-testid=event-count]").inner_text().startswith("1\u20131 of 1 events")


def test_audit_page_names_where_the_chain_breaks(page: Any, ui_server: ThreadServer) -> None:
    runs(3)
    engine = backend().store.engine  # type: ignore[attr-defined]
    with engine.begin() as conn:
        conn.execute(text("UPDATE audit_events SET actor = 'mallory' WHERE seq = 3"))
    page.goto(ui_server.url + "/audit")
    status = page.locator("[data-testid=chain-status][data-ok=false]")
    status.wait_for()
    assert "Chain broken at event 3" in status.inner_text()


def test_erasures_page_lists_the_receipt(page: Any, ui_server: ThreadServer) -> None:
    at = now_ms()
    backend().store.write_prediction_logs(
        [
            PredictionLog(new_id(), "d", 1, "primary", at, 1.0, subject, '{"instances": [[1, 2]]}', "[6]")
            for subject in ["alice", "bob", "alice"]
        ]
    )
    receipt = plinth.erase_subject("alice")
    page.goto(ui_server.url + "/erasures")
    row = page.locator("[data-testid=erasures-table] tbody tr").first
    row.wait_for()
    assert page.locator("[data-testid=erasures-table] tbody tr").count() == 1
    cells = row.locator("td").all_inner_texts()
    assert cells[1] == "tester" and cells[2] == "erasure"
    assert row.locator("[data-testid=receipt-subject]").inner_text() == "alice"
    assert (cells[4], cells[5]) == ("2", "0")
    assert cells[6].startswith(receipt.digest[:16])


def test_erasures_page_says_when_older_receipts_are_left_to_the_audit_log(
    page: Any, ui_server: ThreadServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    from plinth.server.views import governance

    monkeypatch.setattr(governance, "RECEIPTS_SHOWN", 2)
    for subject in ["alice", "bob", "carol"]:
        plinth.erase_subject(subject)
    page.goto(ui_server.url + "/erasures")
    note = page.locator("[data-testid=more-receipts]")
    note.wait_for()
    subjects = page.locator("[data-testid=receipt-subject]").all_inner_texts()
    assert subjects == ["carol", "bob"]  # the newest two
    assert note.inner_text().startswith("The newest 2 of 3 receipts; the 1 older ones are in the audit log")


@pytest.mark.parametrize("where", ["/audit", "/erasures"])
def test_a_viewer_is_told_the_audit_pages_are_not_allowed(
    page: Any, ui_server_factory: Any, where: str
) -> None:
    server = ui_server_factory(local=False)
    sign_in(page, server, server.issue("vera", "viewer"))
    page.goto(server.url + where)
    refusal = page.locator("[data-testid=not-allowed]")
    refusal.wait_for()
    assert refusal.inner_text().startswith("Not allowed") and "viewer" in refusal.inner_text()
    assert page.locator("[data-testid=audit-table], [data-testid=erasures-table]").count() == 0
    assert page.request.get(server.url + "/api/v1/ui/audit").status == 403


def test_costs_page_groups_runs_by_experiment_and_by_user(
    page: Any, ui_server_factory: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = Settings.from_env()
    plinth.configure(replace(settings, user="alice"))
    logged_run("train", cpu=4, hours=2.0)
    plinth.configure(replace(settings, user="bob"))
    logged_run("train", cpu=2, hours=1.0)
    logged_run("eval", cpu=1, hours=3.0)
    monkeypatch.setenv("PLINTH_PRICE_CPU_HOUR", "0.5")
    server = ui_server_factory()
    page.goto(server.url + "/costs")
    ready(page)
    table = page.locator("[data-testid=costs-table]")
    table.wait_for()
    assert table.locator("tbody tr").evaluate_all("rs => rs.map(r => r.dataset.group)") == ["train", "eval"]
    assert table.locator("tr[data-group=train] td").all_inner_texts()[1:4] == ["2", "3", "10"]
    chart = page.locator("[data-testid=costs-chart]")
    assert chart.get_attribute("data-measure") == "cost"
    assert chart.locator("[data-value]").all_inner_texts() == ["5.00", "1.50"]

    page.locator("select[name=by]").select_option("user")
    page.wait_for_url("**by=user*")
    table.locator("tr[data-group=alice]").wait_for()
    assert table.locator("tbody tr").evaluate_all("rs => rs.map(r => r.dataset.group)") == ["alice", "bob"]
    assert table.locator("tr[data-group=bob] td").all_inner_texts()[-1] == "2.50"
    assert page.locator("th[data-column=group]").inner_text() == "user"
