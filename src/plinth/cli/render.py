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
from typing import Any

from rich.console import Console
from rich.measure import Measurement
from rich.table import Table
from rich.text import Text

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
    """Seconds as `1.2s`, `3m 04s` or `2h 05m`; '-' when unknown."""
    if seconds is None:
        return "-"
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m {secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m"


def size(n: int) -> str:
    """Bytes in human units."""
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{n} B"  # pragma: no cover - the loop always returns


def number(value: Any) -> str:
    """A metric value, compact; '' for a missing one."""
    if value is None:
        return ""
    return f"{value:.6g}" if isinstance(value, float) else str(value)


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


def fit_width(build: Callable[[int], Table], most: int) -> Table:
    """`build(n)` for the largest n <= most whose table fits the console unfolded (else n=0)."""
    unbounded = console.options.update_width(10_000)
    for count in range(most, 0, -1):
        candidate = build(count)
        if Measurement.get(console, unbounded, candidate).maximum <= console.width:
            return candidate
    return build(0)


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
