"""The compare view opened by its address in Chromium: curves, params diff, metrics, parallel coordinates."""

from __future__ import annotations

from typing import Any

from playwright.sync_api import expect

import plinth
from team_servers import ThreadServer

OPTIMIZERS = ["adam", "sgd", "adam", "rmsprop", "sgd"]
WAIT = 15_000  # ms, as the page fixture waits: the browser shares the machine with other tests


def fill() -> tuple[list[str], list[str]]:
    """Five runs to compare (lr and optimizer differ, batch and seed do not) and two others."""
    chosen = []
    for i, optimizer in enumerate(OPTIMIZERS):
        params = {"lr": str(0.1 / 10**i), "optimizer": optimizer, "batch": "64", "seed": "7"}
        with plinth.start_run(experiment="sweep", name=f"run-{i}", params=params) as run:
            for step in range(10):
                acc = 0.5 + 0.04 * i + 0.001 * step
                run.log_metrics({"loss": 1.0 / (step + 1 + i), "acc": acc}, step=step)
                if i < 3:
                    run.log_metric("val_acc", 0.4 + 0.05 * i, step=step)
            chosen.append(run.id)
    others = []
    for name in ("unchosen-a", "unchosen-b"):
        with plinth.start_run(experiment="sweep", name=name, params={"lr": "9", "batch": "1"}) as run:
            run.log_metric("loss", 9.0)
            others.append(run.id)
    return chosen, others


def open_compare(page: Any, server: ThreadServer, ids: list[str]) -> None:
    page.goto(f"{server.url}/compare?runs={','.join(ids)}")
    page.wait_for_selector("main[data-page=compare][data-ready=true]")


def charts_ready(page: Any, count: int) -> None:
    expect(page.locator("[data-testid=chart][data-ready=true]")).to_have_count(count, timeout=WAIT)


def series_per_metric(page: Any) -> dict[str, int]:
    found = {}
    for card in page.locator("[data-testid=charts] [data-metric]").all():
        found[card.get_attribute("data-metric")] = int(
            card.locator("[data-testid=chart]").get_attribute("data-series")
        )
    return found


def test_curves_overlay_only_the_chosen_runs(page: Any, ui_server: ThreadServer) -> None:
    chosen, _ = fill()
    open_compare(page, ui_server, chosen)
    charts_ready(page, 3)
    assert series_per_metric(page) == {"acc": 5, "loss": 5, "val_acc": 3}
    header = page.locator("[data-testid=compare-runs] li")
    assert header.evaluate_all("items => items.map(i => i.dataset.runId)") == chosen
    assert header.first.inner_text().split() == ["run-0", "in", "sweep", "FINISHED"]
    assert page.locator("h1").inner_text() == "Compare 5 runs"
    text = page.locator("main").inner_text()
    assert "unchosen" not in text and "run-4" in text


def test_chart_controls_keep_every_series(page: Any, ui_server: ThreadServer) -> None:
    chosen, _ = fill()
    open_compare(page, ui_server, chosen[:2])
    charts_ready(page, 3)
    page.locator("input[name=x-axis][value=time]").check()
    page.locator("input[name=log-scale]").check()
    page.locator("input[name=smoothing]").fill("0.6")
    charts_ready(page, 3)
    assert series_per_metric(page) == {"acc": 2, "loss": 2, "val_acc": 2}
    assert "time since start" in page.locator("[data-metric=loss]").inner_text()

    page.locator("[data-testid=metric-picker] summary").click()
    page.locator("input[name=metric][value=acc]").uncheck()
    charts_ready(page, 2)
    assert set(series_per_metric(page)) == {"loss", "val_acc"}


def test_params_diff_shows_only_differing_params_until_asked(page: Any, ui_server: ThreadServer) -> None:
    chosen, _ = fill()
    open_compare(page, ui_server, chosen)
    rows = page.locator("[data-testid=params-table] tbody tr")
    rows.first.wait_for()
    shown = rows.evaluate_all("rs => rs.map(r => [r.dataset.param, r.dataset.differs])")
    assert shown == [["lr", "true"], ["optimizer", "true"]]
    assert page.locator("[data-testid=params-count]").inner_text() == "2 of 4 params differ"
    assert rows.nth(1).inner_text().split()[-5:] == OPTIMIZERS

    page.locator("input[name=only-differing]").uncheck()
    expect(rows).to_have_count(4, timeout=WAIT)
    every = dict(rows.evaluate_all("rs => rs.map(r => [r.dataset.param, r.dataset.differs])"))
    assert every == {"batch": "false", "lr": "true", "optimizer": "true", "seed": "false"}
    assert rows.filter(has_text="batch").inner_text().split()[1:] == ["64"] * 5


def test_latest_metrics_mark_the_best_run(page: Any, ui_server: ThreadServer) -> None:
    chosen, _ = fill()
    open_compare(page, ui_server, chosen)
    table = page.locator("[data-testid=metrics-table]")
    table.wait_for()
    best = table.locator("[data-best=true]")
    marked = {
        row: table.locator(f"tr[data-metric-row={row}] td").evaluate_all(
            "cells => cells.slice(1).map(c => c.querySelector('[data-best]') !== null)"
        )
        for row in ("acc", "loss", "val_acc")
    }
    # acc rises with i (best: the last run); loss falls with i (lower is better: the last run too)
    assert marked["acc"] == [False, False, False, False, True]
    assert marked["loss"] == [False, False, False, False, True]
    assert marked["val_acc"] == [False, False, True, False, False]
    assert best.count() == 3


def test_parallel_coordinates_recolour_by_the_chosen_metric(page: Any, ui_server: ThreadServer) -> None:
    chosen, _ = fill()
    open_compare(page, ui_server, chosen)
    chart = page.locator("[data-testid=parallel]")
    chart.wait_for()
    assert chart.get_attribute("data-runs") == "5"
    assert chart.get_attribute("data-axes") == "3"
    axes = page.locator("[data-testid=parallel-axes] li")
    assert axes.evaluate_all("items => items.map(i => [i.dataset.axis, i.dataset.kind])") == [
        ["lr", "numeric"],
        ["optimizer", "categorical"],
        ["acc", "numeric"],
    ]
    assert chart.get_attribute("data-color-by") == "acc"
    by_acc = chart.get_attribute("data-colors").split(",")
    assert len(set(by_acc)) == 5

    page.locator("select[name=parallel-metric]").select_option("loss")
    expect(chart).to_have_attribute("data-color-by", "loss", timeout=WAIT)
    by_loss = chart.get_attribute("data-colors").split(",")
    assert by_loss != by_acc and by_loss[-1] == by_acc[0]  # lowest loss is the highest acc
    assert "run-4: " in page.locator("[data-testid=parallel-runs]").inner_text()

    page.locator("select[name=parallel-metric]").select_option("val_acc")
    expect(chart).to_have_attribute("data-color-by", "val_acc", timeout=WAIT)
    assert chart.get_attribute("data-colors").split(",")[3:] == ["#b0b7c3"] * 2  # no val_acc: grey


def test_more_than_fifty_runs_is_refused_with_a_clear_message(
    page: Any, ui_server: ThreadServer, console: Any
) -> None:
    ids = []
    for i in range(51):
        with plinth.start_run(experiment="many", params={"i": str(i)}) as run:
            ids.append(run.id)
    console.allow("status of 422")
    open_compare(page, ui_server, ids)
    error = page.locator("[data-testid=error]")
    assert "51 runs were chosen; compare shows at most 50" in error.inner_text()
    assert page.locator("[data-testid=chart]").count() == 0


def test_an_unknown_run_id_is_named(page: Any, ui_server: ThreadServer, console: Any) -> None:
    chosen, _ = fill()
    console.allow("status of 404")
    open_compare(page, ui_server, [chosen[0], "no-such-run"])
    error = page.locator("[data-testid=error]")
    assert "'no-such-run'" in error.inner_text()
    assert chosen[0] not in error.inner_text()


def test_the_view_reads_series_cut_down_on_the_server(page: Any, ui_server: ThreadServer) -> None:
    with plinth.start_run(experiment="long") as run:
        run.log_metric_points("loss", [float(i % 100) for i in range(10_000)], steps=list(range(10_000)))
    answer = page.request.get(f"{ui_server.url}/api/v1/ui/compare?runs={run.id}&points=500").json()
    series = answer["series"][run.id]["loss"]
    assert 250 <= len(series["step"]) <= 500
    assert len(series["value"]) == len(series["time"]) == len(series["step"])
    assert min(series["value"]) == 0.0 and max(series["value"]) == 99.0  # the extremes stay
    assert series["step"][0] == 0 and series["step"][-1] == 9_999


def test_no_runs_chosen_says_how_to_choose(page: Any, ui_server: ThreadServer) -> None:
    page.goto(f"{ui_server.url}/compare")
    page.wait_for_selector("main[data-page=compare][data-ready=true]")
    assert "No runs chosen" in page.locator("main").inner_text()


def test_metrics_past_the_first_dozen_load_when_picked(page: Any, ui_server: ThreadServer) -> None:
    ids = []
    for i in range(2):
        with plinth.start_run(experiment="wide") as run:
            for k in range(14):
                run.log_metric_points(f"m{k:02d}", [float(i + k + s) for s in range(5)], steps=list(range(5)))
            ids.append(run.id)
    open_compare(page, ui_server, ids)
    charts_ready(page, 12)
    picker = page.locator("[data-testid=metric-picker] summary")
    assert picker.inner_text() == "Metrics (12 of 14 shown)"
    picker.click()
    page.locator("input[name=metric][value=m13]").check()
    charts_ready(page, 13)
    assert series_per_metric(page)["m13"] == 2
    assert "m12" not in series_per_metric(page)
