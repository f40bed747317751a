"""The monitoring report: one self-contained HTML page with a summary and four plotly charts."""

from __future__ import annotations

import json
import os
import re
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import orjson
import pandas as pd
import pytest
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

import plinth
from plinth.core.entities import PredictionLog
from plinth.core.errors import InvalidInput
from plinth.core.ids import new_id, now_ms
from plinth.core.windows import Window
from plinth.monitoring import report_html
from plinth.monitoring.report import build_report, choose_every, report, write_html
from plinth.tracking.context import Backend

pytestmark = pytest.mark.usefixtures("logs_in")

HOUR = 3_600_000
SHIFTED = "petal length (cm)"
CHARTS = ("drift", "predictions", "performance", "latency")


def iris_model(
    name: str = "iris-clf", rename: dict[str, str] | None = None
) -> tuple[pd.DataFrame, LogisticRegression]:
    frame = load_iris(as_frame=True).frame.rename(columns=rename or {})
    features = frame.drop(columns="target")
    model = LogisticRegression(max_iter=500).fit(features, frame["target"])
    with plinth.start_run(experiment="iris") as run:
        run.log_dataset(frame, name="iris-train", role="train")
        run.log_model(model, name=name, input_example=features.head(3))
    return features, model


def serve_logs(
    be: Backend, model: LogisticRegression, rows: pd.DataFrame, *, at_ms: int, name: str = "iris-clf"
) -> list[str]:
    """Log what the server would have logged for `rows`, one row per request, a minute apart."""
    ids, logs = [], []
    for i in range(len(rows)):
        part = rows.iloc[i : i + 1]
        request_id = new_id()
        ids.append(request_id)
        logs.append(
            PredictionLog(
                request_id,
                name,
                1,
                "primary",
                at_ms + i * 1000,
                2.0 + i % 7,
                None,
                orjson.dumps({"instances": part.to_dict(orient="records")}).decode(),
                orjson.dumps(model.predict(part), option=orjson.OPT_SERIALIZE_NUMPY).decode(),
                200,
                1,
            )
        )
    be.store.write_prediction_logs(logs)
    return ids


def shifted_traffic(
    be: Backend, *, name: str = "iris-clf", rename: dict[str, str] | None = None
) -> list[str]:
    """Calm traffic 5 h ago, the same with one feature shifted 2 h ago; returns the request ids."""
    features, model = iris_model(name, rename)
    rng = np.random.default_rng(7)
    calm = features.sample(300, replace=True, random_state=1).reset_index(drop=True)
    shifted = features.sample(300, replace=True, random_state=2).reset_index(drop=True)
    column = (rename or {}).get(SHIFTED, SHIFTED)
    shifted[column] = shifted[column] + 2.5 + rng.normal(0, 0.1, len(shifted))
    base = now_ms() - 5 * HOUR
    return serve_logs(be, model, calm, at_ms=base, name=name) + serve_logs(
        be, model, shifted, at_ms=base + 3 * HOUR, name=name
    )


class Page(HTMLParser):
    """The parts of a page the tests look at: text by element id, links, scripts, event handlers."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.ids: dict[str, str] = {}
        self.links: list[str] = []
        self.scripts: list[str] = []
        self.handlers: list[str] = []
        self._open: list[tuple[str, str, list[str]]] = []
        self.feed(text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        self.links += [v for k, v in attrs if k in ("src", "href") and v]
        self.handlers += [k for k, _ in attrs if k.startswith("on")]
        if tag == "script":
            self.scripts.append("")
        if found.get("id"):
            self._open.append((tag, str(found["id"]), []))

    def handle_endtag(self, tag: str) -> None:
        if self._open and self._open[-1][0] == tag:
            _, key, parts = self._open.pop()
            self.ids[key] = "".join(parts)

    def handle_data(self, data: str) -> None:
        if self.lasttag == "script" and self.scripts:
            self.scripts[-1] += data
        for _, _, parts in self._open:
            parts.append(data)


def test_report_draws_drift_predictions_performance_and_latency(tracking: Backend, tmp_path: Path) -> None:
    ids = shifted_traffic(tracking)
    truth = {rid: 1 for rid in ids[:200]}  # labels arrive for the older requests only
    plinth.log_labels("iris-clf", truth)
    out = tmp_path / "out"
    out.mkdir()
    path = out / "report.html"

    found = report("iris-clf", since="7d", html=str(path))

    assert found.drift is not None and SHIFTED in found.drift.drifted_features
    # the shifted 5 minutes of traffic fall in one or two chart windows, by the clock's alignment
    assert any(SHIFTED in w.drifted_features for w in found.drift_windows[-2:])
    assert os.listdir(out) == ["report.html"]  # written through a temporary file, renamed
    text = path.read_text()
    page = Page(text)
    for chart in CHARTS:
        assert f"plinth-chart-{chart}" in page.ids
        assert re.search(rf'Plotly\.newPlot\(\s*"plinth-chart-{chart}"', text)
    drifted = page.ids["plinth-summary-drifted"]
    assert SHIFTED in drifted
    assert not {"sepal length (cm)", "sepal width (cm)", "petal width (cm)"} & set(
        re.split(r"[,;(]\s*", drifted)
    )
    assert "iris-train/1" in page.ids["plinth-summary-reference"]
    assert "labeled window" in page.ids["plinth-summary-metric"]
    assert not [link for link in page.links if link.startswith(("http:", "https:", "//"))]
    assert sum(len(script) > 1_000_000 for script in page.scripts) == 1  # plotly.js, inline, once


def test_a_model_without_labels_or_reference_still_gets_a_report(tracking: Backend, tmp_path: Path) -> None:
    frame = load_iris(as_frame=True).frame
    features = frame.drop(columns="target")
    model = LogisticRegression(max_iter=300).fit(features, frame["target"])
    with plinth.start_run(experiment="iris") as run:
        run.log_model(model, name="iris-clf", input_example=features.head(3))
    serve_logs(tracking, model, features.head(40), at_ms=now_ms() - HOUR)

    found = build_report(tracking.store, "iris-clf", Window.parse(since="1d"))
    write_html(found, tmp_path / "r.html")
    page = Page((tmp_path / "r.html").read_text())

    assert "No labels yet" in page.ids["plinth-section-performance"]
    assert "no labels yet" in page.ids["plinth-summary-metric"]
    assert "No drift" in page.ids["plinth-section-drift"] and "plinth-chart-drift" not in page.ids
    assert {"plinth-chart-predictions", "plinth-chart-latency"} <= set(page.ids)
    assert found.predictions is not None and found.predictions.reference is None


def drift_traces(text: str) -> list[dict[str, object]]:
    """The series of the drift chart, as plotly.js receives them."""
    start = text.index('"plinth-chart-drift",', text.index("Plotly.newPlot")) + len('"plinth-chart-drift",')
    traces, _ = json.JSONDecoder().raw_decode(text[start:].lstrip())
    return list(traces)


def test_drift_reads_most_moved_first_and_charts_the_top_few(
    tracking: Backend, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(report_html, "CHARTED", 2)  # iris has 4 features: keep 2 of them back
    monkeypatch.setattr(report_html, "LISTED", 2)
    shifted_traffic(tracking)
    path = tmp_path / "r.html"
    report("iris-clf", since="7d", html=str(path))
    text = path.read_text()
    page = Page(text)

    table = page.ids["plinth-section-drift"]
    assert table.index(SHIFTED) < min(table.index(f) for f in ("sepal length (cm)", "petal width (cm)"))
    assert "2 more features, none drifted" in table  # folded into a <details>, still in the page
    traces = drift_traces(text)
    assert traces[0]["name"] == SHIFTED
    assert [t.get("visible", True) for t in traces[:4]] == [True, True, "legendonly", "legendonly"]
    assert traces[-1]["name"] == "target (predictions)" and traces[-1].get("visible", True) is True


def test_no_logs_in_the_window_is_a_clear_error(tracking: Backend) -> None:
    iris_model()
    with pytest.raises(InvalidInput, match=r"No prediction logs of 'iris-clf' in .* widen the window"):
        report("iris-clf", since="1h")


def test_user_strings_are_escaped(tracking: Backend, tmp_path: Path) -> None:
    name = "<img src=x onerror=alert(1)>"
    shifted_traffic(tracking, name=name, rename={SHIFTED: "<b onmouseover=alert(2)>petal"})
    path = tmp_path / "r.html"
    report(name, html=str(path))
    text = path.read_text()
    assert "<img src=x" not in text and "<b onmouseover" not in text
    assert "&lt;img src=x onerror=alert(1)&gt;" in text
    page = Page(text)
    assert "<b onmouseover=alert(2)>petal" in page.ids["plinth-summary-drifted"]  # text, not a tag
    assert name in page.ids["plinth-summary-model"]
    assert page.handlers == []


def test_every_is_chosen_for_a_readable_number_of_windows() -> None:
    assert choose_every(0, 5 * HOUR) == "10m"
    assert choose_every(0, 7 * 24 * HOUR) == "6h"
    assert choose_every(0, 60_000) == "1m"


def test_cli_writes_the_report_and_prints_a_summary(tracking: Backend, tmp_path: Path) -> None:
    from click.testing import CliRunner

    from plinth.cli.monitor.report import monitor_report

    shifted_traffic(tracking)
    path = tmp_path / "report.html"
    result = CliRunner().invoke(
        monitor_report, ["iris-clf", "--since", "7d", "--every", "1h", "--html", str(path)]
    )
    assert result.exit_code == 0, result.output
    assert SHIFTED in result.output and "no labels yet" in result.output
    assert f"Wrote {path}" in result.output
    assert "plinth-chart-latency" in Page(path.read_text()).ids


def test_values_are_drawn_as_densities_against_the_reference_bins() -> None:
    from plinth.monitoring.drift import reference_from_profile
    from plinth.monitoring.report import prediction_distribution
    from plinth.tracking.profiles import profile_frame

    rng = np.random.default_rng(3)
    reference = reference_from_profile(profile_frame(pd.DataFrame({"y": rng.normal(0, 1, 2000)})))
    found = prediction_distribution(rng.normal(0.5, 1, 500), reference.columns["y"])
    assert (found.kind, found.target, found.rows) == ("values", "y", 500)
    assert found.reference is not None
    for edges, density in ((found.edges, found.current), (found.reference_edges, found.reference)):
        assert float(np.sum(np.diff(edges) * np.asarray(density))) == pytest.approx(1.0)
