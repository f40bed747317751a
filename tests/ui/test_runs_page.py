"""The experiments list and an experiment's runs table, clicked through in Chromium."""

from __future__ import annotations

from typing import Any

import pytest
from playwright.sync_api import expect

import plinth
from plinth.cli.main import main
from team_servers import ThreadServer
from ui.conftest import sign_in

DASH = "\u2013"  # the run count reads "1\u201325 of 60 runs"


def fill(runs: int = 30) -> list[str]:
    ids = []
    for i in range(runs):
        params = {"lr": f"{0.01 * (i + 1):.2f}", "depth": str(i % 5)}
        with plinth.start_run(experiment="iris", params=params, tags={"team": "vision"}) as run:
            run.log_metrics({"acc": 0.5 + i / 100, "loss": 1.0 - i / 100})
            ids.append(run.id)
    plinth.start_run(experiment="empty").end()
    return ids


def rows(page: Any) -> Any:
    return page.locator("[data-testid=runs-table] tbody tr[data-run-id]")


def ready(page: Any) -> None:
    page.wait_for_selector("main[data-page][data-ready=true]")


def test_experiments_list_links_to_runs(page: Any, ui_server: ThreadServer) -> None:
    fill(3)
    page.goto(ui_server.url + "/")
    table = page.locator("[data-testid=experiments-table]")
    table.get_by_role("link", name="iris").wait_for()
    assert "3" in table.locator("tr", has_text="iris").inner_text()
    table.get_by_role("link", name="iris").click()
    page.wait_for_url("**/experiments/iris")
    rows(page).first.wait_for()
    assert rows(page).count() == 3
    expect(page.locator("[data-testid=run-count]")).to_have_text(f"1{DASH}3 of 3 runs")


def test_filter_applies_on_enter_and_a_bad_one_names_its_position(
    page: Any, ui_server: ThreadServer, console: Any
) -> None:
    fill(30)
    page.goto(ui_server.url + "/experiments/iris")
    rows(page).first.wait_for()
    box = page.locator("input[name=filter]")
    box.fill("metrics.acc >= 0.7")
    box.press("Enter")
    page.wait_for_url("**filter=metrics.acc*")
    page.wait_for_function("() => document.querySelectorAll('tr[data-run-id]').length === 10")
    expect(page.locator("[data-testid=run-count]")).to_have_text(f"1{DASH}10 of 10 runs")

    console.allow("status of 4(00|22)")
    box.fill("metrics.acc >= and")
    box.press("Enter")
    error = page.locator("[data-testid=filter-error]")
    error.wait_for()
    assert "position 15" in error.inner_text()
    assert "^" in error.inner_text()


def test_a_filtered_sorted_address_opens_directly(page: Any, ui_server: ThreadServer) -> None:
    fill(12)
    page.goto(ui_server.url + "/experiments/iris?filter=params.depth%20%3D%20'2'&order=metrics.acc")
    rows(page).first.wait_for()
    ready(page)
    assert rows(page).count() == 2
    accs = page.locator("[data-testid=runs-table] td.num").all_inner_texts()
    assert page.locator("input[name=filter]").input_value() == "params.depth = '2'"
    assert accs == sorted(accs, key=float) or len(accs) >= 2


def test_clicking_a_header_sorts_and_again_reverses(page: Any, ui_server: ThreadServer) -> None:
    fill(8)
    page.goto(ui_server.url + "/experiments/iris?columns=metrics.acc")
    rows(page).first.wait_for()
    header = page.locator("th[data-column='metrics.acc']")
    header.click()
    page.wait_for_url("**order=metrics.acc*")
    ready(page)
    up = [float(x) for x in page.locator("td.num").all_inner_texts()]
    assert up == sorted(up) and len(up) == 8
    assert header.get_attribute("aria-sort") == "ascending"
    header.click()
    page.wait_for_url("**order=-metrics.acc*")
    ready(page)
    header.and_(page.locator("[aria-sort=descending]")).wait_for()
    down = [float(x) for x in page.locator("td.num").all_inner_texts()]
    assert down == sorted(up, reverse=True)


def test_columns_are_chosen_from_params_metrics_and_tags(page: Any, ui_server: ThreadServer) -> None:
    fill(3)
    page.goto(ui_server.url + "/experiments/iris")
    rows(page).first.wait_for()
    page.locator("[data-testid=columns] summary").click()
    page.locator("input[name=column][value='tags.team']").check()
    page.wait_for_url("**columns=*tags.team*")
    cell = page.locator("th[data-column='tags.team']")
    cell.wait_for()
    assert page.locator("[data-testid=runs-table] tbody").inner_text().count("vision") == 3
    page.locator("input[name=column][value='params.lr']").uncheck()
    page.wait_for_function("() => !document.querySelector(\"th[data-column='params.lr']\")")


def test_selected_runs_go_to_compare(page: Any, ui_server: ThreadServer) -> None:
    ids = fill(5)
    page.goto(ui_server.url + "/experiments/iris")
    rows(page).first.wait_for()
    for run_id in ids[:2]:
        page.locator(f"tr[data-run-id='{run_id}'] input[name=select-run]").check()
    page.locator("[data-testid=compare]").click()
    page.wait_for_url("**/compare?runs=*")
    assert set(page.url.split("runs=")[1].split("%2C" if "%2C" in page.url else ",")) == set(ids[:2])


def test_pages_through_many_runs(page: Any, ui_server: ThreadServer) -> None:
    fill(60)
    page.goto(ui_server.url + "/experiments/iris?page_size=25")
    rows(page).first.wait_for()
    assert rows(page).count() == 25
    first_page = set(rows(page).evaluate_all("rs => rs.map(r => r.dataset.runId)"))
    page.locator("[data-testid=next-page]").click()
    page.wait_for_url("**page=2*")
    ready(page)
    second = set(rows(page).evaluate_all("rs => rs.map(r => r.dataset.runId)"))
    assert len(second) == 25 and not first_page & second
    page.goto(ui_server.url + "/experiments/iris?page_size=25&page=3")
    ready(page)
    expect(page.locator("[data-testid=run-count]")).to_have_text(f"51{DASH}60 of 60 runs")


def test_an_unknown_page_says_so(page: Any, ui_server: ThreadServer) -> None:
    page.goto(ui_server.url + "/flows/no/such/page")
    page.locator("main[data-page=not-found]").wait_for()
    assert page.title() == "plinth"
    assert page.request.get(ui_server.url + "/no-such-section").status == 404


def test_a_team_server_asks_for_a_token_and_refuses_a_bad_one(
    page: Any, ui_server_factory: Any, console: Any
) -> None:
    fill(2)
    server = ui_server_factory(local=False)
    console.allow("status of 401")
    page.goto(server.url + "/experiments/iris")
    page.locator("main[data-page=login]").wait_for()
    page.locator("input[name=token]").fill("plt_not-a-token")
    page.get_by_role("button", name="Sign in").click()
    assert "token" in page.locator("[data-testid=login-error]").inner_text().lower()
    page.locator("input[name=token]").fill(server.issue("vera", "viewer"))
    page.get_by_role("button", name="Sign in").click()
    rows(page).first.wait_for()
    assert page.locator("[data-testid=role]").inner_text() == "viewer"


def test_a_session_cookie_signs_in_the_api_too(page: Any, ui_server_factory: Any) -> None:
    server = ui_server_factory(local=False)
    sign_in(page, server, server.issue("vera", "viewer"))
    answer = page.request.get(server.url + "/api/v1/ui/me")
    assert answer.json()["name"] == "vera"
    refused = page.request.post(server.url + "/api/v1/runs/search", data={})
    assert refused.status == 403  # a cookie alone may not write or post: X-Requested-With is required


def test_pages_carry_a_strict_content_security_policy(page: Any, ui_server: ThreadServer) -> None:
    answer = page.request.get(ui_server.url + "/experiments")
    policy = answer.headers["content-security-policy"]
    assert "script-src 'self'" in policy and "object-src 'none'" in policy
    assert "text/html" in answer.headers["content-type"]
    assert page.request.get(ui_server.url + "/favicon.ico").ok


@pytest.mark.parametrize("host", ["0.0.0.0", "192.168.1.10", "example.com", "::"])
def test_plinth_ui_refuses_a_non_loopback_host(host: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["ui", "--host", host, "--port", "5999"]) == 2
    said = capsys.readouterr().err
    assert "not a loopback address" in said and "plinth server" in said


def test_plinth_ui_refuses_a_team_server_store_and_a_busy_port(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], ui_server: ThreadServer
) -> None:
    monkeypatch.setenv("PLINTH_STORE", ui_server.url)
    assert main(["ui", "--port", "5999"]) == 2
    assert "open its address in a browser" in capsys.readouterr().err
    monkeypatch.delenv("PLINTH_STORE")
    busy = int(ui_server.url.rsplit(":", 1)[1])
    assert main(["ui", "--port", str(busy)]) == 2
    assert f"Port {busy} on 127.0.0.1 is in use" in capsys.readouterr().err


def test_hostile_names_show_as_text_and_their_addresses_open(page: Any, ui_server: ThreadServer) -> None:
    params = {"p<b>": "<script>alert(1)</script>"}
    with plinth.start_run(
        experiment="team/a b%25?x", name="<img src=x onerror=alert(1)>", params=params
    ) as run:
        run.log_metrics({"m": 1.0})
    page.goto(ui_server.url + "/")
    page.get_by_role("link", name="team/a b%25?x").click()
    rows(page).first.wait_for()
    assert "<img src=x onerror=alert(1)>" in rows(page).first.inner_text()
    page.goto(page.url)
    rows(page).first.locator("a").click()
    page.locator("main[data-page=run][data-ready=true]").wait_for()
    assert "<script>alert(1)</script>" in page.locator("main").inner_text()


def test_the_workspace_picker_switches_what_every_page_reads(page: Any, ui_server_factory: Any) -> None:
    fill(2)
    server = ui_server_factory(local=False)
    with server.client() as admin:
        admin.post("/api/v1/workspaces", json={"name": "vision"}).raise_for_status()
        made = admin.post(
            "/api/v1/experiments", json={"name": "detector"}, headers={"x-plinth-workspace": "vision"}
        )
        made.raise_for_status()
    sign_in(page, server, server.admin_token)
    page.goto(server.url + "/experiments")
    table = page.locator("[data-testid=experiments-table]")
    table.get_by_role("link", name="iris").wait_for()
    page.locator("select[data-testid=workspace]").select_option("vision")
    table.get_by_role("link", name="detector").wait_for()
    assert table.get_by_role("link", name="iris").count() == 0
    page.goto(server.url + "/experiments/detector")  # the choice holds for addresses opened directly
    page.locator("main[data-page=runs][data-ready=true]").wait_for()
    expect(page.locator("[data-testid=run-count]")).to_have_text("0 runs")
