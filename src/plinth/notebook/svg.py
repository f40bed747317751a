"""SVG charts built as strings: a line chart with axes, sparklines, histograms and bars.

Pure Python (no matplotlib, no plotly, no script). Each chart is drawn as a standalone,
well-formed XML `<svg>` document with its own `xmlns`, and handed to the notebook as an `<img>`
whose `src` is that document as a base64 `data:` URI, with an `alt` text saying in words what it
shows. JupyterLab's sanitizer (an untrusted notebook) removes inline `<svg>` elements but keeps
`<img>` and does not check the scheme of its `src`, so the charts survive there, in a saved HTML
file and in VS Code alike. Values that are not finite (NaN, inf) leave gaps in lines.
"""

from __future__ import annotations

import base64
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from plinth.core.units import format_number
from plinth.notebook.html import esc
from plinth.notebook.style import ACCENT, GRID, INK, MUTED

FONT = 'font-family="system-ui, sans-serif"'
MAX_POINTS_PER_PX = 2
"""A line keeps at most this many points per pixel of width (each pixel column's min and max)."""


@dataclass(frozen=True)
class Summary:
    """What a line chart states beside its picture: extremes and the last value, with their x."""

    points: int
    gaps: int
    min: tuple[float, float] | None  # (x, y)
    max: tuple[float, float] | None
    last: tuple[float, float] | None


def _num(value: float) -> str:
    """A coordinate with one decimal, the shortest that keeps lines smooth."""
    return f"{value:.1f}"


def _text(
    x: float, y: float, content: str, *, anchor: str = "start", fill: str = MUTED, size: int = 10
) -> str:
    """A `<text>` element at (x, y) holding `content` (escaped here)."""
    return (
        f'<text x="{_num(x)}" y="{_num(y)}" text-anchor="{anchor}" fill="{fill}" {FONT} '
        f'font-size="{size}">{esc(content)}</text>'
    )


def standalone(width: float, height: float, body: str) -> str:
    """A standalone SVG document of `width` x `height` pixels holding `body` (SVG elements)."""
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0f}" height="{height:.0f}" '
        f'viewBox="0 0 {width:.0f} {height:.0f}">{body}</svg>'
    )


def image(drawing: str, width: float, height: float, alt: str, *, inline: bool = False) -> str:
    """`drawing` (an SVG document) as an `<img>` with a base64 `data:` URI and `alt` as its text.

    `inline` images sit in a line of text or a table cell (sparklines, small histograms); the
    others are blocks that shrink to the output's width.
    """
    data = base64.b64encode(drawing.encode()).decode("ascii")
    css = "chart inline" if inline else "chart"
    return (
        f'<img class="{css}" src="data:image/svg+xml;base64,{data}" alt="{esc(alt)}" '
        f'width="{width:.0f}" height="{height:.0f}">'
    )


def _svg(width: int, height: int, body: str, alt: str, *, inline: bool = False) -> str:
    return image(standalone(width, height, body), width, height, alt, inline=inline)


def _said(label: str, words: str) -> str:
    """An alt text: the chart's label, then what it shows."""
    return f"{label}: {words}" if label else words


def nice_ticks(low: float, high: float, count: int = 5) -> list[float]:
    """About `count` round values (1, 2, 2.5 or 5 times a power of ten) from `low` to `high`."""
    if not (math.isfinite(low) and math.isfinite(high)):
        return []
    if high <= low:
        return [low]
    raw = (high - low) / count
    if not math.isfinite(raw) or raw <= 0:
        return [low, high]
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if raw <= m * magnitude * (1 + 1e-9))
    first = math.ceil(low / step - 1e-9)
    ticks = []
    for i in range(first, first + 4 * count):
        value = i * step
        if value > high + step * 1e-9:
            break
        ticks.append(0.0 if abs(value) < step * 1e-9 else value)
    return ticks


def tick_label(value: float, ticks: Sequence[float]) -> str:
    """A tick's text with as many decimals as the tick spacing needs ('0.25', '1e+06' for huge)."""
    step = abs(ticks[1] - ticks[0]) if len(ticks) > 1 else abs(value) or 1.0
    if abs(value) >= 1e6 or (0 < step < 1e-4):
        return f"{value:.3g}"
    decimals = 0
    while decimals < 6 and abs(step * 10**decimals - round(step * 10**decimals)) > 1e-6:
        decimals += 1
    text = f"{value:.{decimals}f}"
    return "0" if text.strip("-0.") == "" else text


def reduce_points(
    xs: Sequence[float] | np.ndarray, ys: Sequence[float] | np.ndarray, buckets: int
) -> list[tuple[float, float]]:
    """At most 2 points per bucket of consecutive points: its min and max (at its first and last x).

    A bucket without a finite value becomes one NaN point, so a gap stays a gap.
    """
    x, y = np.asarray(xs, dtype="float64"), np.asarray(ys, dtype="float64")
    n = len(x)
    if n <= 2 * buckets:
        return list(zip(x.tolist(), y.tolist(), strict=True))
    starts = np.arange(buckets) * n // buckets
    stops = np.append(starts[1:], n) - 1
    present = np.isfinite(y)
    lows = np.minimum.reduceat(np.where(present, y, np.inf), starts)
    highs = np.maximum.reduceat(np.where(present, y, -np.inf), starts)
    out: list[tuple[float, float]] = []
    for a, b, low, high in zip(
        x[starts].tolist(), x[stops].tolist(), lows.tolist(), highs.tolist(), strict=True
    ):
        if math.isinf(low):
            out.append((a, math.nan))
        else:
            out.extend(((a, low), (b, high)))
    return out


def summarize(xs: Sequence[float], ys: Sequence[float]) -> Summary:
    """Extremes and last finite value of a series, with how many points were not finite."""
    x, y = np.asarray(xs, dtype="float64"), np.asarray(ys, dtype="float64")
    kept = np.flatnonzero(np.isfinite(y))
    if not kept.size:
        return Summary(len(y), len(y), None, None, None)
    low = int(kept[np.argmin(y[kept])])
    high = int(kept[np.argmax(y[kept])])
    last = int(kept[-1])

    def point(i: int) -> tuple[float, float]:
        return float(x[i]), float(y[i])

    return Summary(len(y), len(y) - kept.size, point(low), point(high), point(last))


def _segments(points: Iterable[tuple[float, float]]) -> list[list[tuple[float, float]]]:
    """Runs of consecutive finite points (a non-finite value ends a run)."""
    runs: list[list[tuple[float, float]]] = [[]]
    for x, y in points:
        if math.isfinite(y) and math.isfinite(x):
            runs[-1].append((x, y))
        elif runs[-1]:
            runs.append([])
    return [r for r in runs if r]


def _scale(low: float, high: float, start: float, stop: float) -> tuple[float, float]:
    """(factor, offset) mapping [low, high] onto [start, stop]; a flat range maps to the middle."""
    span = high - low
    if not math.isfinite(span) or span <= 0:
        return 0.0, (start + stop) / 2
    factor = (stop - start) / span
    return factor, start - low * factor


def _domain(values: Sequence[float]) -> tuple[float, float]:
    low, high = min(values), max(values)
    if high == low:
        pad = abs(low) * 0.1 or 1.0
        return low - pad, high + pad
    return low, high


def line_chart(
    xs: Sequence[float], ys: Sequence[float], *, width: int = 520, height: int = 200, label: str = ""
) -> str:
    """A line chart of `ys` over `xs` (sorted), with axis ticks and the last point marked.

    Non-finite values leave gaps; series longer than the chart is wide keep each pixel
    column's min and max, so spikes survive.
    """
    left, right, top, bottom = 56, 12, 10, 26
    plot_w, plot_h = width - left - right, height - top - bottom
    points = reduce_points(list(xs), list(ys), max(1, plot_w * MAX_POINTS_PER_PX // 2))
    runs = _segments(points)
    if not runs:
        empty = _text(width / 2, height / 2, "no finite values", anchor="middle")
        return _svg(width, height, empty, _said(label, f"{len(ys)} points, none finite"))
    x_low, x_high = _domain([p[0] for r in runs for p in r])
    y_low, y_high = _domain([p[1] for r in runs for p in r])
    x_ticks, y_ticks = nice_ticks(x_low, x_high, 6), nice_ticks(y_low, y_high, 4)
    fx, ox = _scale(x_low, x_high, left, left + plot_w)
    fy, oy = _scale(y_low, y_high, top + plot_h, top)
    parts = [_grid(y_ticks, fy, oy, left, plot_w), _x_axis(x_ticks, fx, ox, top + plot_h)]
    for run in runs:
        coords = [(x * fx + ox, y * fy + oy) for x, y in run]
        if len(coords) == 1:
            parts.append(
                f'<circle cx="{_num(coords[0][0])}" cy="{_num(coords[0][1])}" r="2" fill="{ACCENT}"/>'
            )
            continue
        path = " ".join(f"{'M' if i == 0 else 'L'}{_num(x)} {_num(y)}" for i, (x, y) in enumerate(coords))
        parts.append(
            f'<path d="{path}" fill="none" stroke="{ACCENT}" stroke-width="1.6" stroke-linejoin="round"/>'
        )
    last_x, last_y = runs[-1][-1]
    parts.append(
        f'<circle cx="{_num(last_x * fx + ox)}" cy="{_num(last_y * fy + oy)}" r="3" fill="{ACCENT}"/>'
    )
    return _svg(width, height, "".join(parts), _said(label, describe(summarize(xs, ys))))


def describe(found: Summary) -> str:
    """A line's summary in words: '8 points; min 0.1 at 3, max 0.9 at 7, last 0.9 at 7'."""
    words = [f"{found.points} point{'s' if found.points != 1 else ''}"]
    extremes = [
        f"{name} {format_number(point[1])} at {format_number(point[0])}"
        for name, point in (("min", found.min), ("max", found.max), ("last", found.last))
        if point is not None
    ]
    if extremes:
        words.append(", ".join(extremes))
    if found.gaps:
        words.append(f"{found.gaps} not finite")
    return "; ".join(words)


def _grid(ticks: Sequence[float], fy: float, oy: float, left: int, plot_w: int) -> str:
    out = []
    for tick in ticks:
        y = tick * fy + oy
        out.append(
            f'<line x1="{left}" x2="{left + plot_w}" y1="{_num(y)}" y2="{_num(y)}" stroke="{GRID}"/>'
            + _text(left - 6, y + 3.5, tick_label(tick, ticks), anchor="end")
        )
    return "".join(out)


def _x_axis(ticks: Sequence[float], fx: float, ox: float, base: float) -> str:
    start, stop = (ticks[0] * fx + ox, ticks[-1] * fx + ox) if ticks else (0.0, 0.0)
    out = [
        f'<line x1="{_num(start)}" x2="{_num(stop)}" y1="{_num(base)}" y2="{_num(base)}" stroke="{MUTED}"/>'
    ]
    for tick in ticks:
        x = tick * fx + ox
        out.append(
            f'<line x1="{_num(x)}" x2="{_num(x)}" y1="{_num(base)}" y2="{_num(base + 4)}" stroke="{MUTED}"/>'
            + _text(x, base + 15, tick_label(tick, ticks), anchor="middle")
        )
    return "".join(out)


def sparkline(values: Sequence[float | None], *, width: int = 110, height: int = 22, label: str = "") -> str:
    """A small line of `values` in order (None and non-finite values are gaps), its last point marked."""
    ys = [v if v is not None else math.nan for v in values]
    runs = _segments(enumerate(ys))
    if not runs:
        return ""
    fx, ox = _scale(0, max(len(ys) - 1, 1), 2, width - 3)
    y_low, y_high = _domain([y for r in runs for _, y in r])
    fy, oy = _scale(y_low, y_high, height - 3, 3)
    parts = []
    for run in runs:
        coords = " ".join(f"{_num(x * fx + ox)},{_num(y * fy + oy)}" for x, y in run)
        parts.append(f'<polyline points="{coords}" fill="none" stroke="{ACCENT}" stroke-width="1.3"/>')
    x, y = runs[-1][-1]
    parts.append(f'<circle cx="{_num(x * fx + ox)}" cy="{_num(y * fy + oy)}" r="1.8" fill="{ACCENT}"/>')
    found = summarize(range(len(ys)), ys)
    words = f"{found.points} values"
    if found.min is not None and found.max is not None and found.last is not None:
        low, high, last = (format_number(p[1]) for p in (found.min, found.max, found.last))
        words += f" from {low} to {high}, last {last}"
    return _svg(width, height, "".join(parts), _said(label, words), inline=True)


def histogram(
    edges: Sequence[float],
    counts: Sequence[float],
    *,
    densities: bool = False,
    width: int = 110,
    height: int = 22,
    label: str = "",
) -> str:
    """Bars over `edges` (len(counts) + 1 of them), each as tall as its density (count per unit width).

    Bins of different widths (a profile's quantile bins) are drawn at their real width, so the
    picture is the distribution's shape rather than a row of equal counts. With `densities`,
    `counts` already are densities.
    """
    if len(counts) == 0 or len(edges) != len(counts) + 1 or not all(map(math.isfinite, edges)):
        return ""
    total = edges[-1] - edges[0]
    if total <= 0 or not math.isfinite(total):  # a constant column: one full bar
        full = f'<rect x="0" y="2" width="{width}" height="{height - 2}" fill="{ACCENT}"/>'
        return _svg(width, height, full, _said(label, f"every value {format_number(edges[0])}"), inline=True)
    heights = (
        list(counts)
        if densities
        else [c / (b - a) if b > a else 0.0 for c, a, b in zip(counts, edges, edges[1:], strict=False)]
    )
    top = max(heights) or 1.0
    fx, ox = _scale(edges[0], edges[-1], 0, width)
    bars = []
    for density, a, b in zip(heights, edges, edges[1:], strict=False):
        h = (height - 2) * density / top
        bars.append(
            f'<rect x="{_num(a * fx + ox)}" y="{_num(height - h)}" width="{_num(max((b - a) * fx, 0.8))}" '
            f'height="{_num(h)}" fill="{ACCENT}" fill-opacity="0.8"/>'
        )
    words = f"{len(counts)} bins from {format_number(edges[0])} to {format_number(edges[-1])}"
    return _svg(width, height, "".join(bars), _said(label, words), inline=True)


def bars(
    labels: Sequence[str],
    values: Sequence[float | None],
    *,
    reference: Sequence[float | None] | None = None,
    threshold: float | None = None,
    marked: frozenset[str] = frozenset(),
    width: int = 420,
    label: str = "",
) -> str:
    """Horizontal bars, one row per label, value written at the end; `marked` labels in red.

    `reference` draws a thin grey bar under each (e.g. the training data's share beside the
    current one); `threshold` a dotted line (e.g. the PSI over which a feature drifted).
    """
    row, name_w, value_w = 18, min(170, 12 + 7 * max((len(t) for t in labels), default=4)), 64
    plot_w = width - name_w - value_w
    present = [v for v in [*values, *(reference or []), threshold] if v is not None and math.isfinite(v)]
    top = max(present, default=0.0) or 1.0

    def bar(value: float | None, y: float, tall: int, colour: str) -> str:
        if value is None or not math.isfinite(value):
            return ""
        w = max(plot_w * max(value, 0.0) / top, 0.5)
        return f'<rect x="{name_w}" y="{_num(y)}" width="{_num(w)}" height="{tall}" fill="{colour}"/>'

    height = row * len(labels) + 6
    parts = []
    for i, (name, value) in enumerate(zip(labels, values, strict=True)):
        y = 3 + i * row
        shown = name if len(name) <= 24 else name[:23] + "…"
        parts.append(_text(name_w - 6, y + 12, shown, anchor="end", fill=INK, size=11))
        parts.append(bar(value, y + 2, 9, "#b42318" if name in marked else ACCENT))
        if reference is not None:
            parts.append(bar(reference[i], y + 12, 3, "#98a2b3"))
        text = format_number(value) if value is not None and math.isfinite(value) else "—"
        parts.append(_text(width - 4, y + 12, text, anchor="end"))
    if threshold is not None and math.isfinite(threshold):
        x = _num(name_w + plot_w * threshold / top)
        parts.append(
            f'<line x1="{x}" x2="{x}" y1="0" y2="{height}" stroke="#b42318" stroke-dasharray="3 3"/>'
        )
    return _svg(width, height, "".join(parts), _said(label, _bar_words(labels, values, threshold, marked)))


def _bar_words(
    labels: Sequence[str], values: Sequence[float | None], threshold: float | None, marked: frozenset[str]
) -> str:
    """Each bar's label and value, the marked ones said so, and the threshold."""
    items = []
    for name, value in zip(labels, values, strict=True):
        text = format_number(value) if value is not None and math.isfinite(value) else "none"
        items.append(f"{name} {text}" + (" (marked)" if name in marked else ""))
    words = ", ".join(items)
    if threshold is not None and math.isfinite(threshold):
        words += f"; threshold {format_number(threshold)}"
    return words
