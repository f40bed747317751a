"""The lineage page: a model version's graph from its data to its predictions, and one request's path."""

from __future__ import annotations

from typing import Any

from team_servers import ThreadServer
from ui.conftest import sign_in
from ui.test_deployments_page import MODEL, scenario


def ready(page: Any) -> None:
    page.wait_for_selector("main[data-page=lineage][data-ready=true]")


def kinds(page: Any) -> list[str]:
    rows = page.locator("[data-testid=lineage-nodes] tbody tr")
    return sorted(rows.evaluate_all("rs => rs.map(r => r.dataset.kind)"))


def graph_kinds(page: Any) -> list[str]:
    nodes = page.locator("[data-testid=lineage-graph] g[data-node-id]")
    return sorted(nodes.evaluate_all("gs => gs.map(g => g.dataset.kind)"))


def test_a_model_version_runs_from_its_dataset_to_its_labels(page: Any, ui_server: ThreadServer) -> None:
    found = scenario()
    page.goto(ui_server.url + "/lineage")
    ready(page)
    page.locator("select[name=kind]").select_option("model")
    page.locator("input[name=id]").fill(f"{MODEL}/1")
    page.get_by_role("button", name="Show lineage").click()
    page.wait_for_url("**/lineage?kind=model&id=churn%2F1&direction=both")
    page.locator("[data-testid=lineage-nodes]").wait_for()
    expected = ["dataset", "deployment", "labels", "model", "predictions", "run"]
    assert kinds(page) == expected
    assert graph_kinds(page) == expected
    graph = page.locator("[data-testid=lineage-graph]").inner_text()
    for text in ("churn-train/1", "churn/1", "churn@champion", "logreg", "run · churn-training"):
        assert text in graph
    edges = page.locator("[data-testid=lineage-edges]").inner_text()
    assert "dataset churn-train/1\tconsumed by\trun logreg" in edges
    assert "model churn/1\tdeployed as\tdeployment churn@champion" in edges
    assert page.locator("tr[data-root=true]").get_attribute("data-kind") == "model"

    page.locator("[data-testid=lineage-nodes] tr[data-kind=run] a").click()
    page.wait_for_url(f"**/runs/{found.run_id}")


def test_a_node_of_the_graph_opens_its_own_lineage(page: Any, ui_server: ThreadServer) -> None:
    scenario()
    page.goto(ui_server.url + f"/lineage?kind=model&id={MODEL}@champion&direction=up")
    ready(page)
    assert kinds(page) == ["dataset", "model", "run"]
    page.locator("[data-testid=lineage-graph] g[data-kind=dataset]").click()
    page.wait_for_url("**/lineage?kind=dataset&id=churn-train%2F1")
    ready(page)
    assert page.locator("tr[data-root=true]").get_attribute("data-kind") == "dataset"
    assert "model" in kinds(page) and "predictions" in kinds(page)


def test_a_single_request_shows_its_path(page: Any, ui_server_factory: Any) -> None:
    found = scenario()
    request = found.served[0]  # served and labeled
    server = ui_server_factory(local=False)
    sign_in(page, server, server.issue("aldo", "auditor"))
    page.goto(server.url + f"/lineage?kind=request&id={request}")
    ready(page)
    assert kinds(page) == ["dataset", "label", "model", "predictions", "request", "run"]
    root = page.locator("[data-testid=lineage-nodes] tr[data-root=true]")
    assert root.get_attribute("data-kind") == "request" and "subject user-0" in root.inner_text()
    edges = page.locator("[data-testid=lineage-edges]").inner_text()
    assert f"predictions churn/1\tincludes\trequest {request}" in edges
    assert f"request {request}\tlabeled by\tlabel {request}" in edges

    page.context.clear_cookies()
    sign_in(page, server, server.issue("vera", "viewer"))
    page.reload()
    ready(page)
    assert "request" in kinds(page)
    assert "user-0" not in page.locator("main").inner_text()  # subject ids need the raw right


def test_a_wrong_kind_or_an_unknown_id_says_what_to_do(
    page: Any, ui_server: ThreadServer, console: Any
) -> None:
    found = scenario()
    console.allow("status of 4(04|22)")
    page.goto(ui_server.url + f"/lineage?kind=request&id={found.run_id}")
    ready(page)
    assert "No logged request" in page.locator("[data-testid=error]").inner_text()
    page.goto(ui_server.url + f"/lineage?kind=dataset&id={MODEL}/1")
    ready(page)
    assert "kind=model" in page.locator("[data-testid=error]").inner_text()
