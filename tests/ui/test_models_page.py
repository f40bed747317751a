"""The models list, a model's versions, a version's page, and moving an alias, in Chromium."""

from __future__ import annotations

from typing import Any

import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

import plinth
from team_servers import ThreadServer
from ui.conftest import sign_in

FEATURES = ["sepal_length", "sepal_width"]


def fill() -> list[str]:
    """Two versions of `iris`, each logged by its own run that consumed a dataset; @prod -> v1."""
    frame = pd.DataFrame({"sepal_length": [5.1, 6.2, 4.9, 6.7], "sepal_width": [3.5, 2.9, 3.0, 3.1]})
    labels = [0, 1, 0, 1]
    runs = []
    for c in (0.5, 1.0):
        with plinth.start_run(experiment="iris", params={"C": c}) as run:
            run.log_dataset(frame.assign(label=labels), name="iris-train")
            model = LogisticRegression(C=c).fit(frame, labels)
            run.log_model(model, name="iris", input_example=frame.head(2), description=f"C={c}")
            runs.append(run.id)
    plinth.set_alias("iris", "prod", 1)
    return runs


def ready(page: Any) -> None:
    page.wait_for_selector("main[data-page][data-ready=true]")


def test_models_list_shows_the_model_its_latest_version_and_alias(page: Any, ui_server: ThreadServer) -> None:
    fill()
    page.goto(ui_server.url + "/models")
    row = page.locator("[data-testid=models-table] tr[data-model=iris]")
    row.wait_for()
    text = row.inner_text()
    assert "v2" in text and "sklearn" in text
    assert row.locator("[data-alias=prod]").inner_text().split() == ["@prod", "→", "v1"]
    row.get_by_role("link", name="iris").click()
    page.wait_for_url("**/models/iris")
    versions = page.locator("[data-testid=versions-table] tr[data-version]")
    versions.first.wait_for()
    assert versions.evaluate_all("rs => rs.map(r => r.dataset.version)") == ["2", "1"]
    assert "@prod" in page.locator("tr[data-version='1']").inner_text()
    assert "unsigned" in page.locator("tr[data-version='1']").inner_text()


def test_version_page_shows_signature_environment_files_and_lineage(
    page: Any, ui_server: ThreadServer
) -> None:
    runs = fill()
    page.goto(ui_server.url + "/models/iris/versions/1")
    ready(page)
    inputs = page.locator("[data-testid=signature-inputs]")
    assert inputs.locator("tbody td:first-child").all_inner_texts() == FEATURES
    assert inputs.locator("tbody td:nth-child(2)").all_inner_texts() == ["float64", "float64"]
    assert (
        page.locator("[data-testid=version-summary] [data-testid=source-run]").get_attribute("href")
        == f"/runs/{runs[0]}"
    )
    assert "scikit-learn==" in page.locator("[data-testid=environment] pre").inner_text()
    assert page.locator("[data-testid=files-table] tbody tr").count() >= 1
    lineage = page.locator("[data-testid=lineage]")
    assert lineage.locator("[data-testid=lineage-run]").get_attribute("href") == f"/runs/{runs[0]}"
    assert lineage.locator("[data-dataset]").get_attribute("data-dataset") == "iris-train/1"
    assert (
        lineage.locator("[data-testid=lineage-link]").get_attribute("href")
        == "/lineage?kind=model&id=iris%2F1"
    )
    assert "@prod" in page.locator("[data-testid=version-summary]").inner_text()


def test_a_maintainer_moves_an_alias_after_confirming_and_the_audit_log_shows_it(
    page: Any, ui_server_factory: Any
) -> None:
    fill()
    server = ui_server_factory(local=False)
    sign_in(page, server, server.issue("mia", "maintainer"))
    page.goto(server.url + "/models/iris")
    ready(page)
    mover = page.locator("[data-testid=alias-mover]")
    assert mover.locator("select[name=alias]").input_value() == "prod"
    mover.locator("select[name=version]").select_option("2")

    mover.locator("[data-testid=move-alias]").click()  # cancelling moves nothing
    dialog = page.get_by_role("dialog")
    dialog.wait_for()
    dialog.get_by_role("button", name="Cancel").click()
    dialog.wait_for(state="hidden")
    assert plinth.get_model_version("iris@prod").version == 1

    mover.locator("[data-testid=move-alias]").click()
    dialog.wait_for()
    assert "@prod" in dialog.inner_text()
    assert dialog.locator("[data-testid=from-version]").inner_text() == "version 1"
    assert dialog.locator("[data-testid=to-version]").inner_text() == "version 2"
    dialog.locator("[data-testid=confirm-move]").click()
    page.locator("[data-testid=alias-moved]").wait_for()
    assert plinth.get_model_version("iris@prod").version == 2
    page.locator("tr[data-version='2']", has_text="@prod").wait_for()

    sign_in(page, server, server.issue("ada", "auditor"))
    page.goto(server.url + "/audit?action=model.alias.set")
    event = page.locator("[data-testid=audit-table] tr[data-action='model.alias.set']").first
    event.wait_for()
    cells = event.locator("td").all_inner_texts()
    assert cells[2].startswith("mia") and "iris" in cells[4] and cells[5] == "prod=1" and cells[6] == "prod=2"


def test_a_stale_confirmation_moves_nothing(page: Any, ui_server_factory: Any, console: Any) -> None:
    fill()
    server = ui_server_factory(local=False)
    sign_in(page, server, server.issue("mia", "maintainer"))
    page.goto(server.url + "/models/iris/versions/2")
    ready(page)
    page.locator("[data-testid=move-alias]").click()
    dialog = page.get_by_role("dialog")
    dialog.wait_for()
    plinth.set_alias("iris", "prod", 2)  # someone else moves it while the dialog is open
    plinth.set_alias("iris", "prod", 1)
    plinth.set_alias("iris", "prod", 2)
    console.allow("status of 409")
    dialog.locator("[data-testid=confirm-move]").click()
    assert "someone moved it meanwhile" in dialog.get_by_role("alert").inner_text()


@pytest.mark.parametrize("where", ["/models/iris", "/models/iris/versions/1"])
def test_a_viewer_sees_no_alias_control_and_may_not_move_one(
    page: Any, ui_server_factory: Any, where: str
) -> None:
    fill()
    server = ui_server_factory(local=False)
    sign_in(page, server, server.issue("vera", "viewer"))
    page.goto(server.url + where)
    ready(page)
    assert page.locator("[data-testid=alias-mover], [data-testid=move-alias]").count() == 0
    assert page.get_by_role("button", name="Move alias").count() == 0
    refused = page.request.put(
        server.url + "/api/v1/ui/models/iris/aliases/prod",
        data={"version": 2, "expected": 1},
        headers={"x-requested-with": "plinth-ui"},
    )
    assert refused.status == 403
    assert plinth.get_model_version("iris@prod").version == 1
