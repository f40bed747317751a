"""The notebook's drawing pieces: ticks, charts with gaps, sparklines, histograms, bars, DAGs, tables."""

from __future__ import annotations

import itertools
import math
import re
import xml.etree.ElementTree as ET

import pytest
from notebook_markup import Chart, charts, checked, table_rows, text_of

from plinth.notebook import graph, svg
from plinth.notebook.html import Table, esc, number

NS = {"s": "http://www.w3.org/2000/svg"}


def chart_of(drawing: str) -> Chart:
    """The one chart image `drawing` is, its SVG decoded from the data: URI."""
    [found] = charts(drawing)
    assert drawing.startswith("<img ") and drawing.count("<") == 1  # an image and nothing else
    return found


def parsed(drawing: str) -> ET.Element:
    return chart_of(drawing).svg


def test_a_chart_is_an_image_of_its_svg_with_size_and_words() -> None:
    found = chart_of(
        svg.line_chart([0, 1, 2], [0.5, 0.25, 0.125], width=300, height=120, label="loss by step")
    )
    assert found.attrs["class"] == "chart"
    assert (found.attrs["width"], found.attrs["height"]) == ("300", "120")
    assert (found.svg.get("width"), found.svg.get("height")) == ("300", "120")
    assert found.alt == "loss by step: 3 points; min 0.125 at 2, max 0.500 at 0, last 0.125 at 2"
    line = chart_of(svg.sparkline([1.0, None, 3.0], label="requests"))
    assert line.attrs["class"] == "chart inline" and line.alt == "requests: 3 values from 1 to 3, last 3"


@pytest.mark.parametrize(
    ("low", "high"), [(0.0, 1.0), (0.033, 0.97), (-3.0, 0.001), (100.0, 1e5), (1e7, 3e7)]
)
def test_ticks_are_round_and_inside_the_range(low: float, high: float) -> None:
    ticks = svg.nice_ticks(low, high, 4)
    assert 2 <= len(ticks) <= 9
    assert all(low - 1e-9 <= t <= high + 1e-9 for t in ticks)
    steps = {round(b - a, 9) for a, b in itertools.pairwise(ticks)}
    assert len(steps) == 1
    mantissa = steps.pop() / 10 ** math.floor(math.log10(ticks[1] - ticks[0]))
    assert round(mantissa, 6) in (1, 2, 2.5, 5)


def test_tick_labels_have_the_decimals_the_step_needs() -> None:
    ticks = svg.nice_ticks(0.033, 1.0, 4)
    assert [svg.tick_label(t, ticks) for t in ticks] == ["0.25", "0.50", "0.75", "1.00"]


def test_a_line_chart_breaks_at_non_finite_values() -> None:
    drawing = svg.line_chart([0, 1, 2, 3, 4, 5], [1.0, 2.0, math.nan, 3.0, math.inf, 2.0])
    root = parsed(drawing)
    assert len(root.findall("s:path", NS)) == 1  # steps 0-1; 3 and 5 are lone points
    assert len(root.findall("s:circle", NS)) == 3  # the two lone points and the last point's mark
    labels = [t.text for t in root.findall("s:text", NS)]
    assert "0" in labels and "5" in labels  # x ticks


def test_a_chart_without_finite_values_says_so() -> None:
    found = chart_of(svg.line_chart([0, 1], [math.nan, math.nan], label="loss"))
    assert [t.text for t in found.all("text")] == ["no finite values"]
    assert found.alt == "loss: 2 points, none finite"


def test_a_long_series_keeps_each_columns_extremes() -> None:
    n = 200_000
    ys = [math.sin(i / 1000) for i in range(n)]
    ys[123_457] = 50.0  # one spike in the middle
    drawing = svg.line_chart(list(range(n)), ys, width=300)
    path = parsed(drawing).find("s:path", NS)
    assert "max 50 at 123457" in chart_of(drawing).alt
    assert path is not None
    points = re.findall(r"[ML]([\d.]+) ([\d.]+)", path.get("d", ""))
    assert len(points) <= 2 * 300
    assert min(float(y) for _, y in points) == pytest.approx(10.0, abs=0.2)  # the spike reaches the top


def test_summary_names_extremes_last_and_gaps() -> None:
    found = svg.summarize([0, 1, 2, 3], [0.5, math.nan, 0.1, 0.3])
    assert (found.points, found.gaps) == (4, 1)
    assert found.min == (2.0, 0.1) and found.max == (0.0, 0.5) and found.last == (3.0, 0.3)


def test_a_sparkline_skips_missing_values() -> None:
    root = parsed(svg.sparkline([1.0, 2.0, None, 4.0, 5.0]))
    assert len(root.findall("s:polyline", NS)) == 2
    assert svg.sparkline([None, None]) == ""


def test_a_histogram_draws_density_over_uneven_bins() -> None:
    root = parsed(svg.histogram([0.0, 1.0, 3.0], [10, 10], width=300, height=42))
    bars = root.findall("s:rect", NS)
    widths = [float(b.get("width", 0)) for b in bars]
    heights = [float(b.get("height", 0)) for b in bars]
    assert widths[1] == pytest.approx(2 * widths[0])  # the second bin is twice as wide ...
    assert heights[0] == pytest.approx(2 * heights[1])  # ... so, holding as many, half as dense
    assert len(parsed(svg.histogram([5.0, 5.0], [7])).findall("s:rect", NS)) == 1  # a constant column
    assert svg.histogram([0.0, 1.0], [1, 2]) == ""  # counts that do not fit the edges


def test_bars_mark_threshold_and_reference() -> None:
    drawing = svg.bars(["a", "b<c"], [0.5, 0.1], reference=[0.4, 0.2], threshold=0.2, marked=frozenset({"a"}))
    root = parsed(drawing)
    fills = [r.get("fill") for r in root.findall("s:rect", NS)]
    assert fills == ["#b42318", "#98a2b3", "#2f6fb3", "#98a2b3"]
    assert root.find("s:line", NS) is not None
    assert "b<c" in [t.text for t in root.findall("s:text", NS)]
    assert chart_of(drawing).alt == "a 0.500 (marked), b<c 0.100; threshold 0.200"
    assert 'alt="a 0.500 (marked), b&lt;c 0.100; threshold 0.200"' in drawing  # escaped


def test_a_dag_is_layered_by_longest_path_and_cycles_are_dropped() -> None:
    nodes = [graph.Node(i, i, "FINISHED") for i in ("a", "b", "c", "d")]
    edges = [("a", "b"), ("b", "c"), ("a", "c"), ("c", "d"), ("d", "b"), ("x", "a")]
    placed, kept, width, _ = graph.layout(nodes, edges)
    assert ("d", "b") not in kept and ("x", "a") not in kept  # a cycle's closing edge, an unknown node
    x = {p.node.id: p.x for p in placed}
    assert x["a"] < x["b"] < x["c"] < x["d"]  # c sits right of b, its deepest parent
    drawing = graph.draw(nodes, edges, label="flow f")
    root = parsed(drawing)
    assert len(root.findall("s:g[@class='edge']", NS)) == len(kept)
    assert float(root.get("width", 0)) == pytest.approx(width, abs=1)
    assert chart_of(drawing).alt == "flow f: 4 nodes, 4 edges; a FINISHED, b FINISHED, c FINISHED, d FINISHED"
    assert graph.draw([], []) == ""


def test_siblings_follow_their_parents_order() -> None:
    nodes = [graph.Node(i, i) for i in ("p1", "p2", "c2", "c1")]
    placed, *_ = graph.layout(nodes, [("p1", "c1"), ("p2", "c2")])
    y = {p.node.id: p.y for p in placed}
    assert y["p1"] < y["p2"] and y["c1"] < y["c2"]  # no crossing


def test_a_table_folds_rows_past_fifty_and_escapes_cells() -> None:
    rows = Table(("name", "value"), numeric=frozenset({1}), name="t")
    for i in range(60):
        rows.add([esc(f"<row {i}>"), number(i / 3)], key=str(i))
    html = rows.render()
    shown = table_rows(html, "t")
    assert len(shown) == 60 and shown[0][1] == ["<row 0>", "0"] and shown[1][1][1] == "0.333"
    assert html.index("10 more rows") < html.index("row 50")  # the rest under a <details>
    assert "&lt;row 0&gt;" in html
    assert "5 more rows not shown" in text_of(rows.render(shown=55, folded=0))
    checked(html)
