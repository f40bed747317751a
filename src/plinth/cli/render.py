"""Rendering helpers shared by CLI commands: tables, times, sizes, JSON, error lines.

User data (names, params, tags, paths, error messages) is never read as rich markup: a
param value such as ``[/]`` or ``[bold]`` is printed as the text it is. Nor can it drive the
terminal: every helper here prints control characters (ESC, carriage return, C1 codes), bidi
overrides, line separators and lone surrogates as escapes such as ``\x1b``, so a stored name
cannot recolour, rewrite or hide what is shown. Line breaks and tabs print as themselves.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
from collections.abc import Callable, Iterable, Sequence
from typing import Any, TypeVar

from rich.console import Console
from rich.measure import Measurement
from rich.table import Table
from rich.text import Text

from plinth.core.units import format_duration, format_number, format_size

T = TypeVar("T")

console = Console(soft_wrap=True, highlight=False)
err_console = Console(stderr=True, soft_wrap=True, highlight=False)

PIPE_WIDTH = 200
"""Width used when stdout is not a terminal (and COLUMNS is unset), so ids are never cut."""

# C0 controls but line break and tab, DEL and C1 controls, bidi embeddings, overrides and
# isolates, line and paragraph separators, and lone surrogates (which no terminal encodes).
_UNSAFE = re.compile(
    r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069\ud800-\udfff]"
)


def escape(text: str) -> str:
    """`text` with every character that could act on a terminal written as its escape (`\\x1b`)."""
    return _UNSAFE.sub(lambda m: ascii(m.group())[1:-1], text)


def plain(value: Any) -> Text:
    """Stored text (or any value, via `str`) as a rich Text: no markup, control characters escaped."""
    return Text("" if value is None else escape(str(value)))


def fit_to_output() -> None:
    """Let tables use a wide line when printing to a pipe or file instead of rich's 80 columns."""
    piped = not console.is_terminal and not os.environ.get("COLUMNS")
    console.width = PIPE_WIDTH if piped else None  # type: ignore[assignment]


def when(ms: int | None) -> str:
    """Epoch milliseconds as local `YYYY-MM-DD HH:MM:SS`, or '-'."""
    if ms is None:
        return "-"
    return dt.datetime.fromtimestamp(ms / 1000).strftime("%Y-%m-%d %H:%M:%S")


def duration(seconds: float | None) -> str:
    """Seconds as `250 ms`, `1.7 s`, `3m 04s` or `2h 05m`; '-' when unknown."""
    return "-" if seconds is None else format_duration(seconds)


def size(n: int) -> str:
    """Bytes in human units: `210 B`, `1.26 kB`, `294 MB`."""
    return format_size(n)


def number(value: Any, unit: str | None = None) -> str:
    """A value for people; '' for a missing one.

    Floats get three significant digits (`0.976`, `0.0120`, `12.3`); with a `unit`, numbers
    read in human units: "bytes" (`294 MB`), "s", "ms" or "h" (`1.7 s`, `3m 04s`), "%" (`87%`).
    Integers and text print as they are.
    """
    if value is None:
        return ""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return str(value)
    if unit == "bytes":
        return format_size(value)
    if unit in _SECONDS:
        return format_duration(value * _SECONDS[unit])
    if unit == "%":
        return f"{format_number(value)}%"
    return str(value) if isinstance(value, int) else format_number(value)


_SECONDS = {"ms": 0.001, "s": 1.0, "h": 3600.0}
_BOOKKEEPING = ("plinth.", "system/")
_UNIT_SUFFIXES = (
    ("_bytes", "bytes"),
    ("max_rss", "bytes"),
    ("_utilization", "%"),
    ("_ms", "ms"),
    ("_s", "s"),
    ("wall_hours", "h"),
    ("cpu_hours", "h"),
    ("gpu_hours", "h"),
    ("_hours_used", "h"),
)


def is_bookkeeping(key: str) -> bool:
    """Whether a param, metric or tag key is plinth's own (`plinth.wall_s`, `system/cpu_hours`)."""
    return key.startswith(_BOOKKEEPING)


def metric_unit(key: str) -> str | None:
    """The unit of one of plinth's own metrics, for `number`; None for the user's keys."""
    if not is_bookkeeping(key):
        return None
    return next((unit for suffix, unit in _UNIT_SUFFIXES if key.endswith(suffix)), None)


def user_first(keys: Iterable[str]) -> list[str]:
    """`keys` sorted, the user's own before plinth's bookkeeping."""
    return sorted(keys, key=lambda k: (is_bookkeeping(k), k))


def table(
    title: str | None,
    columns: Sequence[str],
    rows: Iterable[Sequence[Any]],
    *,
    no_wrap: Iterable[str] = ("id", "run"),
    caption: str | None = None,
) -> Table:
    """A rich table of plain-text cells; long cells fold onto more lines instead of being cut.

    Columns named in `no_wrap` (ids by default) are never folded or shortened.
    """
    keep = set(no_wrap)
    out = Table(
        title=plain(title) if title else None,
        caption=plain(caption) if caption else None,
        title_justify="left",
        caption_justify="left",
        header_style="bold",
    )
    for column in columns:
        if column in keep:
            out.add_column(plain(column), no_wrap=True, min_width=len(column))
        else:
            out.add_column(plain(column), overflow="fold")
    for row in rows:
        out.add_row(*(plain(c) for c in row))
    return out


def fields(rows: Iterable[tuple[str, Text]]) -> Table:
    """A borderless two-column grid of `key  value` lines, keys dimmed (a detail view's summary)."""
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="dim", no_wrap=True)
    grid.add_column(overflow="fold")
    for key, value in rows:
        grid.add_row(key, value)
    return grid


def fit_width(build: Callable[[list[T]], Table], optional: Sequence[T]) -> Table:
    """`build(chosen)` with as many `optional` columns as fit the console unfolded.

    Columns are tried in the order given; one too wide to fit is left out and the next tried,
    so a long value in one column does not push out the narrow ones after it.
    """
    unbounded = console.options.update_width(10_000)
    chosen: list[T] = []
    for item in optional:
        if Measurement.get(console, unbounded, build([*chosen, item])).maximum <= console.width:
            chosen.append(item)
    return build(chosen)


def line(*parts: str | tuple[str, str]) -> Text:
    """A line of plain text; a `(text, style)` part is styled, e.g. `("FAILED", "bold red")`."""
    return Text.assemble(*(escape(p) if isinstance(p, str) else (escape(p[0]), p[1]) for p in parts))


def say(text: str | Text) -> None:
    """Print one line of plain text (no markup) to stdout; a Text is printed as it was built."""
    console.print(text if isinstance(text, Text) else plain(text))


def error(message: str) -> None:
    """Print an error to stderr as `error: MESSAGE` (the message is plain text, not markup)."""
    err_console.print(line(("error:", "bold red"), " ", message))


def emit_json(value: Any) -> None:
    """Print a JSON document (for --json); plain, so it pipes into jq or a file unchanged.

    Characters that could act on a terminal are written as JSON escapes (`\\u009b`), which
    read back as the same text.
    """
    text = json.dumps(value, default=str, indent=2, ensure_ascii=False)
    console.file.write(_UNSAFE.sub(lambda m: f"\\u{ord(m.group()):04x}", text) + "\n")


def safe_url(url: str) -> str:
    """A store URL fit to print: any password replaced by ***."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return url
