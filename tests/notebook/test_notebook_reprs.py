"""What a notebook shows for runs, search results, histories, models, datasets, lineage and costs."""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import numpy as np
import pandas as pd
import pytest
from notebook_markup import charts, checked, table, table_rows, text_of, with_data

import plinth
from plinth.core.errors import ConfigError
from plinth.core.settings import Settings
from plinth.notebook import links, to_html
from plinth.tracking.context import Backend

UI = "http://127.0.0.1:5050"


@pytest.fixture
def ui() -> Iterator[str]:
    """Links point at a `plinth ui` on this machine for the test."""
    links.choose(UI)
    yield UI
    links.choose(None)


class Doubler:
    """A model of the plain-Python flavor."""

    def predict(self, frame: Any) -> Any:
        return frame["x"] * 2


def hrefs(html: str) -> list[str]:
    return [attrs["href"] for tag, attrs in checked(html).elements if tag == "a"]


def test_a_run_shows_status_params_latest_metrics_and_tags(tracking: Backend, ui: str, actor: str) -> None:
    params = {"lr": 0.01, "depth": 4}
    with plinth.start_run(
        experiment="iris",
        name="baseline",
        params=params,
        tags={"team": "vision", "plinth.origin": "notebook"},
    ) as run:
        run.log_metric("acc", 0.975312)
        run.log_metric("loss", 0.5, step=0)
        run.log_metric("loss", 0.25, step=1)
        live = to_html(run)
    assert with_data(live, "div", plinth="run", run_id=run.id, status="RUNNING")
    assert table(live, "metrics")["loss"] == ["loss", "0.250"]  # the active run flushes first

    html = to_html(plinth.get_run(run.id))
    assert with_data(html, "div", plinth="run", run_id=run.id, status="FINISHED")
    assert table(html, "params") == {"depth": ["depth", "4"], "lr": ["lr", "0.01"]}
    assert table(html, "metrics") == {"acc": ["acc", "0.975"], "loss": ["loss", "0.250"]}
    assert table(html, "tags") == {"team": ["team", "vision"]}
    bookkeeping = [key for key, _ in table_rows(html, "plinth-tags")]
    assert bookkeeping == ["plinth.origin"]
    assert html.index('data-table="tags"') < html.index('data-fold="plinth-tags"')  # the user's own first
    text = text_of(html)
    assert "baseline" in text and "iris" in text and actor in text and "FINISHED" in text
    assert f"{UI}/runs/{run.id}" in hrefs(html) and f"{UI}/experiments/iris" in hrefs(html)


def test_a_failed_run_shows_its_error(tracking: Backend) -> None:
    with pytest.raises(RuntimeError), plinth.start_run(experiment="iris") as run:
        raise RuntimeError("diverged <at step 3>")
    html = to_html(plinth.get_run(run.id))
    assert with_data(html, "div", plinth="run", status="FAILED")
    assert "diverged <at step 3>" in text_of(html) and "<at step" not in html  # escaped


def test_search_results_are_one_table_with_params_and_metrics_as_columns(tracking: Backend, ui: str) -> None:
    ids = []
    for lr in (0.1, 0.2, 0.3):
        with plinth.start_run(experiment="sweep", params={"lr": lr}) as run:
            run.log_metric("acc", lr * 3)
        ids.append(run.id)
    runs = plinth.search_runs(experiment="sweep", order_by="-metrics.acc")
    html = to_html(runs)
    rows = table_rows(html, "runs")
    assert [key for key, _ in rows] == runs.ids == ids[::-1]  # in the order the search returned
    header = [a for t, a in checked(html).elements if t == "th"]
    assert len(header) == 7  # run, name, status, started, duration, params.lr, metrics.acc
    assert "params.lr" in text_of(html) and "metrics.acc" in text_of(html)
    assert rows[0][1][0] == ids[2] and rows[0][1][5] == "0.3" and rows[0][1][6] == "0.900"
    assert {f"{UI}/runs/{i}" for i in ids} <= set(hrefs(html))
    assert to_html(list(runs)) == html  # a plain list of runs draws the same


def test_a_long_search_lists_fifty_runs_and_counts_the_rest(tracking: Backend) -> None:
    for i in range(53):
        with plinth.start_run(experiment="many", params={"i": i}, capture_env=False, system_metrics=False):
            pass
    html = to_html(plinth.search_runs(experiment="many"))
    assert len(table_rows(html, "runs")) == 50
    assert "3 more runs not shown" in text_of(html)
    assert with_data(html, "div", plinth="runs", count="53")


def test_a_metric_history_is_a_line_chart_with_gaps_and_extremes(tracking: Backend) -> None:
    with plinth.start_run(experiment="iris") as run:
        run.log_metric_points("loss", [1.0, 0.5, math.nan, 0.25, 0.125, 0.2], steps=[0, 1, 2, 3, 4, 5])
    html = to_html(plinth.metric_history(run.id, "loss"))
    assert with_data(html, "div", plinth="metric-history", run_id=run.id, key="loss", points="6")
    paths = [a["d"] for t, a in checked(html).elements if t == "path"]
    assert len(paths) == 2  # the NaN at step 2 splits the line
    facts = text_of(html)
    assert "6 points" in facts and "min 0.125 at step 4" in facts and "max 1 at step 0" in facts
    assert "last 0.200 at step 5" in facts and "1 not finite" in facts


def test_a_model_version_shows_signature_aliases_tags_and_its_run(tracking: Backend, ui: str) -> None:
    frame = pd.DataFrame({"x": [1.0, 2.0], "city": ["a", "b"]})
    with plinth.start_run(experiment="churn") as run:
        run.log_model(Doubler(), name="churn", input_example=frame, description="doubles x")
    plinth.set_alias("churn", "champion", 1)
    plinth.set_model_version_tags("churn", 1, {"stage": "prod"})
    mv = plinth.get_model_version("churn", 1)
    html = to_html(mv)
    assert with_data(html, "div", plinth="model-version", model="churn", version="1")
    inputs = table(html, "signature-inputs")
    assert list(inputs) == ["x", "city"] and inputs["x"] == ["x", "float64"]
    assert table(html, "tags")["stage"] == ["stage", "prod"]
    text = text_of(html)
    assert "@champion" in text and "doubles x" in text and mv.flavor in text
    assert f"{UI}/runs/{run.id}" in hrefs(html) and f"{UI}/models/churn/versions/1" in hrefs(html)
    listed = to_html(plinth.list_model_versions("churn"))
    assert [k for k, _ in table_rows(listed, "models")] == ["churn/1"]
    assert with_data(to_html(plinth.list_models()[0]), "div", plinth="registered-model", model="churn")


def test_a_dataset_version_shows_its_profile_with_histograms(tracking: Backend, ui: str) -> None:
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(
        {
            "age": rng.normal(40, 10, 500),
            "city": rng.choice(["paris", "oslo"], 500),
            "score": [None] * 50 + [1.5] * 450,
        }
    )
    with plinth.start_run(experiment="data") as run:
        dataset = run.log_dataset(frame, name="people", role="train")
    html = to_html(dataset)
    assert with_data(html, "div", plinth="dataset", dataset="people/1")
    profile = table(html, "profile")
    assert list(profile) == ["age", "city", "score"]  # the dataset's own column order
    age = profile["age"]
    assert age[1] == "numeric" and float(age[4]) < 20 < 60 < float(age[5])  # min, max
    assert profile["score"][3] == "10%"  # missing
    assert "paris" in profile["city"][8] and "oslo" in profile["city"][8]
    [histogram] = [c for c in charts(html) if c.alt.startswith("age histogram:")]
    assert histogram.attrs["class"] == "chart inline" and len(histogram.all("rect")) >= 5  # its bins
    assert f"{UI}/lineage?kind=dataset&id=people%2F1" in hrefs(html)
    assert [k for k, _ in table_rows(to_html(plinth.list_datasets()), "datasets")] == ["people/1"]


def test_lineage_is_a_tree_each_way_from_its_root(tracking: Backend) -> None:
    frame = pd.DataFrame({"x": [1.0, 2.0, 3.0]})
    with plinth.start_run(experiment="lineage", name="trainer") as run:
        run.log_dataset(frame, name="inputs", role="train")
        run.log_model(Doubler(), name="doubler", input_example=frame)
    html = to_html(plinth.lineage(run.id))
    assert with_data(html, "div", plinth="lineage", root=f"run:{run.id}")
    items = [a["data-node"] for t, a in checked(html).elements if t == "li"]
    assert any(i.startswith("dataset_version:") for i in items) and any(
        i.startswith("model_version:") for i in items
    )
    text = text_of(html)
    assert text.index("Came from") < text.index("consumed dataset inputs/1") < text.index("Led to")
    assert text.index("Led to") < text.index("produced model doubler/1")


def test_costs_are_a_table_costliest_first(tracking: Backend) -> None:
    for experiment in ("small", "big", "big"):
        with plinth.start_run(experiment=experiment, capture_env=False, system_metrics=False):
            pass
    rows = plinth.costs(by="experiment", since=None)
    html = to_html(rows)
    assert [k for k, _ in table_rows(html, "costs")] == [r.group for r in rows]
    assert table(html, "costs")["big"][1] == "2"
    assert "No prices set" in text_of(html)
    assert with_data(to_html(rows[0]), "div", plinth="costs", groups="1")


def test_links_follow_the_store(tracking: Backend) -> None:
    with plinth.start_run(experiment="iris") as run:
        pass
    found = hrefs(to_html(plinth.get_run(run.id)))
    if tracking.settings.is_remote:  # a team server serves the UI at its root
        root = (tracking.settings.store_url or "").rstrip("/")
        assert f"{root}/runs/{run.id}" in found
    else:  # an embedded store has no UI until one is named
        assert found == []


def test_the_ui_of_a_team_server_is_its_address_without_credentials() -> None:
    remote = Settings(store_url="https://alice:s3cret@plinth.example.com:8443/api/v1/")
    assert links.ui_root(remote) == "https://plinth.example.com:8443"
    assert links.ui_root(Settings(store_url="postgresql://db/plinth")) is None


def test_a_ui_address_must_be_http() -> None:
    with pytest.raises(ConfigError, match="not an http"):
        links.choose("ftp://example.com")


def test_plinth_ui_url_names_the_ui(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PLINTH_UI_URL", "http://localhost:5050/")
    assert links.ui_root(Settings.from_env()) == "http://localhost:5050"
