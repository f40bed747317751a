"""Flow runs in Chromium: the list, a run's graph, Gantt, steps and output, and resume."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from playwright.sync_api import expect

import plinth
from team_servers import ThreadServer
from ui.conftest import sign_in

RESOURCES = Path(__file__).parent.parent / "resources"
sys.path.insert(0, str(RESOURCES))
import flows_example as ex  # noqa: E402


def open_run(page: Any, server: ThreadServer, run_id: str) -> None:
    page.goto(f"{server.url}/flows/{run_id}")
    page.locator("main[data-page=flow-run][data-ready=true]").wait_for()


def nodes(page: Any) -> Any:
    return page.locator("[data-testid=flow-dag] g[data-node-id]")


def step_row(page: Any, call: str) -> Any:
    return page.locator(f"[data-testid=steps-table] tr[data-call='{call}']")


def test_the_list_shows_runs_and_filters_by_flow_and_status(
    page: Any, ui_server: ThreadServer, tmp_path: Path
) -> None:
    ex.pipeline.run(lr=0.2)
    ex.pipeline.run(lr=0.2)
    ex.flaky_flow.run(marker=str(tmp_path / "m"), fail_times=5, raise_on_failure=False)
    page.goto(ui_server.url + "/flows")
    rows = page.locator("[data-testid=flow-runs-table] tbody tr[data-flow-run-id]")
    rows.first.wait_for()
    assert rows.count() == 3
    assert page.locator("[data-testid=flow-run-count]").inner_text() == "3 flow runs"
    failed = rows.filter(has_text="flaky_flow")
    assert "FAILED" in failed.inner_text() and "0/1" in failed.inner_text()
    second = rows.filter(has_text="example-train").first  # newest first: the run with cache hits
    assert "FINISHED" in second.inner_text() and "6/6 (4 cached)" in second.inner_text()
    assert "tester" in second.inner_text() and "manual" in second.inner_text()

    page.locator("select[name=status]").select_option("FAILED")
    page.wait_for_url("**status=FAILED*")
    expect(rows).to_have_count(1)
    assert "flaky_flow" in rows.first.inner_text()
    page.locator("select[name=status]").select_option("")
    page.locator("select[name=flow]").select_option("example-train")
    page.wait_for_url("**flow=example-train*")
    expect(rows).to_have_count(2)
    rows.first.get_by_role("link", name="example-train").click()
    page.wait_for_url("**/flows/*")
    page.locator("main[data-page=flow-run][data-ready=true]").wait_for()


def test_a_run_page_draws_the_graph_timing_steps_and_output(page: Any, ui_server: ThreadServer) -> None:
    ex.pipeline.run(lr=0.2)
    second = ex.pipeline.run(lr=0.2)
    open_run(page, ui_server, second.id)
    nodes(page).first.wait_for()
    calls = ["load#0", *[f"train#{i}" for i in range(4)], "pick_best#0"]
    assert sorted(nodes(page).evaluate_all("ns => ns.map(n => n.dataset.nodeId)")) == sorted(calls)
    train = page.locator("[data-testid=flow-dag] g[data-node-id='train#2']")
    assert train.get_attribute("data-status") == "CACHED"
    assert "CACHED" in train.locator("text").all_text_contents()[1]
    assert "FINISHED" in page.locator("g[data-node-id='load#0']").text_content()
    assert page.locator("[data-testid=flow-dag] g.edge").count() == 8  # load -> 4 trains -> pick_best
    assert page.locator("g.edge[data-from='train#1'][data-to='pick_best#0']").count() == 1

    bars = page.locator("[data-testid=gantt] .gantt-bar")
    assert sorted(bars.evaluate_all("bs => bs.map(b => b.dataset.call)")) == sorted(calls)
    assert "cache hit" in page.locator("[data-testid=gantt]").inner_text()

    assert step_row(page, "train#0").locator("[data-testid=cache-hit]").inner_text() == "hit"
    assert "FINISHED" in step_row(page, "load#0").inner_text()

    nodes(page).filter(has_text="load#0").first.click()  # a node of the graph shows its output
    log = page.locator("[data-testid=step-log][data-call='load#0'] [data-testid=step-log-text]")
    log.wait_for()
    assert "loading seed 0" in log.inner_text()


def test_retries_show_as_attempts(page: Any, ui_server: ThreadServer, tmp_path: Path) -> None:
    result = ex.flaky_flow.run(marker=str(tmp_path / "m"), fail_times=1)
    open_run(page, ui_server, result.id)
    row = step_row(page, "flaky#0")
    cells = row.locator("td").all_inner_texts()
    assert cells[1:4] == ["FINISHED", "2", "1"]  # status, attempts, retries
    assert "2 attempts" in page.locator("g[data-node-id='flaky#0']").text_content()


def test_a_failed_run_shows_the_resume_command_when_the_server_may_not_resume(
    page: Any, ui_server: ThreadServer, tmp_path: Path, console: Any
) -> None:
    failed = ex.stages.run(marker=str(tmp_path / "fixed"), raise_on_failure=False)
    open_run(page, ui_server, failed.id)
    assert page.locator("[data-testid=resume-command]").inner_text() == f"plinth flows resume {failed.id}"
    assert page.locator("[data-testid=resume]").count() == 0
    broken = page.locator("[data-testid=flow-dag] g[data-node-id='stage#3']")
    assert broken.get_attribute("data-status") == "FAILED" and "FAILED" in broken.text_content()
    assert page.locator("g.edge[data-from='stage#2'][data-to='stage#3']").count() == 1
    assert "stage 3 is broken" in step_row(page, "stage#3").inner_text()

    console.allow("status of 403")
    refused = page.request.post(
        f"{ui_server.url}/api/v1/ui/flow-runs/{failed.id}/resume", headers={"x-requested-with": "tests"}
    )
    assert refused.status == 403 and "allow_resume" in refused.json()["error"]["message"]


def test_a_viewer_gets_the_command_even_where_the_server_resumes(
    page: Any, ui_server_factory: Any, tmp_path: Path
) -> None:
    failed = ex.stages.run(marker=str(tmp_path / "fixed"), raise_on_failure=False)
    server = ui_server_factory(local=False, allow_resume=True)
    sign_in(page, server, server.issue("vera", "viewer"))
    open_run(page, server, failed.id)
    assert page.locator("[data-testid=resume-command]").inner_text() == f"plinth flows resume {failed.id}"
    assert "right to write" in page.locator(".resume-help").inner_text()
    assert page.locator("[data-testid=resume]").count() == 0


def test_resume_from_the_page_runs_the_flow_to_the_end(
    page: Any, ui_server_factory: Any, tmp_path: Path, console: Any
) -> None:
    server = ui_server_factory(allow_resume=True)
    marker = tmp_path / "fixed"
    failed = ex.stages.run(marker=str(marker), raise_on_failure=False)
    open_run(page, server, failed.id)
    assert page.locator("[data-testid=resume-command]").count() == 0
    marker.write_text("fixed")  # what broke stage 3 is mended
    page.locator("[data-testid=resume]").click()
    page.wait_for_url(lambda url: url.rstrip("/").split("/")[-1] not in ("", failed.id))
    resumed_id = page.url.rstrip("/").split("/")[-1]
    page.locator("[data-testid=flow-run-overview] [data-status=FINISHED]").wait_for(timeout=60_000)
    assert plinth.get_run(resumed_id).status is plinth.RunStatus.FINISHED
    assert step_row(page, "stage#4").get_attribute("data-status") == "FINISHED"
    assert step_row(page, "stage#0").get_attribute("data-status") == "CACHED"
    assert page.locator("g[data-node-id='stage#4']").get_attribute("data-status") == "FINISHED"

    open_run(page, server, failed.id)
    page.locator("[data-testid=resumed-by]").get_by_role("link").click()
    page.wait_for_url(f"**/flows/{resumed_id}")
    console.allow("status of 409")
    again = page.request.post(
        f"{server.url}/api/v1/ui/flow-runs/{resumed_id}/resume", headers={"x-requested-with": "tests"}
    )
    assert again.status == 409 and "FINISHED" in again.json()["error"]["message"]
