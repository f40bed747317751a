"""What a notebook shows for drift, performance, operations and the monitoring report of a model."""

from __future__ import annotations

import pytest
from IPython.core.interactiveshell import InteractiveShell
from notebook_markup import checked, table, table_rows, text_of, with_data
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

import plinth
import plinth.notebook
from plinth.core.ids import now_ms
from plinth.notebook import to_html
from plinth.tracking.context import Backend

HOUR = 3_600_000
MOVED = "petal length (cm)"


@pytest.fixture
def served(tracking: Backend) -> None:
    """An iris classifier whose logged inputs drift in their last hour, with labels for the first."""
    frame = load_iris(as_frame=True).frame
    features, target = frame.drop(columns="target"), frame["target"]
    model = LogisticRegression(max_iter=500).fit(features, target)
    with plinth.start_run(experiment="iris") as run:
        run.log_dataset(frame, name="iris-train", role="train")
        run.log_model(model, name="iris-clf", input_example=features.head(3))
    base = now_ms() - 5 * HOUR
    calm = features.sample(300, replace=True, random_state=1).reset_index(drop=True)
    shifted = features.sample(300, replace=True, random_state=2).reset_index(drop=True)
    shifted[MOVED] += 2.5
    ids = plinth.log_predictions(
        "iris-clf", calm, model.predict(calm), timestamps=[base + i for i in range(300)]
    )
    plinth.log_predictions("iris-clf", shifted, model.predict(shifted), timestamps=[base + 3 * HOUR] * 300)
    truth = target.sample(300, replace=True, random_state=1).tolist()
    plinth.log_labels("iris-clf", dict(zip(ids, truth, strict=True)))


def test_drift_lists_the_drifted_feature_first(served: None) -> None:
    found = plinth.drift("iris-clf", since="3h")
    html = to_html(found)
    assert with_data(html, "div", plinth="model-drift", model="iris-clf", drifted=MOVED)
    rows = table_rows(html, "drift")
    assert rows[0][0] == MOVED and rows[0][1][1] == "DRIFTED"
    assert [r[1][1] for r in rows[1:4]] == ["OK"] * 3
    drifted_rows = [a for t, a in checked(html).elements if t == "tr" and a.get("class") == "drifted"]
    assert [a["data-key"] for a in drifted_rows] == [MOVED, "target"]  # the predictions row comes last
    assert "target (predictions)" in text_of(html)
    bars = [a for t, a in checked(html).elements if t == "rect" and a.get("fill") == "#b42318"]
    assert len(bars) == 1  # the drifted feature's bar is red
    text = text_of(html)
    assert "1 of 4 features drifted" in text and "iris-train/1" in text and "300" in text
    assert table_rows(to_html(found.report), "drift")[0][0] == MOVED
    assert with_data(to_html(found.report.features[0]), "div", plinth="feature-drift")


def test_drift_over_time_draws_a_line_per_feature(served: None) -> None:
    parts = plinth.drift_over_time("iris-clf", since="6h", every="1h")
    html = to_html(parts)
    assert with_data(html, "div", plinth="drift-over-time", windows=str(len(parts)))
    rows = table(html, "drift-over-time")
    assert next(iter(rows)) == MOVED and rows[MOVED][1] == f"1/{len(parts)}"
    assert len([a for t, a in checked(html).elements if t == "polyline"]) >= 4


def test_performance_and_operations(served: None) -> None:
    quality = plinth.performance("iris-clf", since="6h", every="1h")
    html = to_html(quality)
    assert with_data(html, "div", plinth="performance", model="iris-clf")
    accuracy = table(html, "performance")["accuracy"]
    assert accuracy[3] != "—"  # the latest window that has labels
    assert accuracy[1] == f"{quality.overall.metrics['accuracy']:#.3g}".rstrip(".")
    assert "300 of 600 predictions labeled (50%)" in text_of(html)
    ops = to_html(plinth.operations("iris-clf", since="6h", every="1h"))
    assert with_data(ops, "div", plinth="operations", model="iris-clf")
    assert table(ops, "versions")["1"][1] == "600"
    assert "not measured" in text_of(ops)  # logged from elsewhere: no latency


def test_the_monitoring_report_renders_inline_without_script(served: None) -> None:
    report = plinth.monitoring_report("iris-clf", since="6h")
    shell = InteractiveShell.instance()
    try:
        plinth.notebook.register(shell)
        data, _ = shell.display_formatter.format(report)
    finally:
        plinth.notebook.unregister(shell)
        InteractiveShell.clear_instance()
    html = data["text/html"]
    assert html == to_html(report)
    assert with_data(html, "div", plinth="monitoring-report", model="iris-clf", drifted=MOVED)
    assert table_rows(html, "drift")[0][0] == MOVED
    text = text_of(html)
    for expected in ("Drifted features", MOVED, "iris-train/1", "Accuracy", "Label coverage", "Operations"):
        assert expected in text
    assert "plotly" not in html.lower()
