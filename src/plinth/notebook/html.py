"""HTML pieces every notebook output uses: escaping, numbers for people, badges, key-value lists, tables.

No script anywhere: a notebook that is not trusted strips scripts. So each table is built
already sorted by its most useful column, shows its first rows, and folds the rest into a
`<details>` element; the runs table also sorts by a click on a header, with CSS alone
(`plinth.notebook.sortable`).
Every value that came from a user (names, params, tags, errors) goes through `esc`.
"""

from __future__ import annotations

import datetime as dt
import html
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

from plinth.core.units import format_duration, format_number, format_size

SHOWN = 50
"""Rows a table shows before folding the rest into a `<details>`."""
FOLDED = 450
"""Rows the `<details>` holds at most; beyond them only a count is written."""
CLIP = 120
"""Characters of a cell's text shown before it is cut (the full text stays in its title)."""

_BADGE = {
    "FINISHED": "ok",
    "RESOLVED": "ok",
    "OK": "ok",
    "RUNNING": "run",
    "PENDING": "run",
    "FAILED": "bad",
    "CRASHED": "bad",
    "DRIFTED": "bad",
    "ERROR": "bad",
    "TIMEOUT": "bad",
    "MEMORY": "bad",
    "FIRING": "bad",
    "KILLED": "warn",
    "CANCELLED": "warn",
    "CACHED": "muted",
}


def esc(value: object) -> str:
    """`value` as text safe inside an element or a quoted attribute."""
    return html.escape(str(value), quote=True)


def number(value: float | int | None) -> str:
    """Three significant digits ('0.976', '12.3', '1234'); '—' for None; 'NaN', 'inf' as such."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, float) and math.isnan(value):
        return "NaN"
    return format_number(value)


def size(value: float | int | None) -> str:
    """Bytes in units ('294 MB'); '—' for None."""
    return "—" if value is None else format_size(value)


def duration(seconds: float | None) -> str:
    """Seconds for people ('1.37 s', '3m 04s'); '—' for None."""
    return "—" if seconds is None else format_duration(seconds)


def percent(share: float | None) -> str:
    """A share (0.25) as '25%' with up to three significant digits; '—' for None."""
    return "—" if share is None else f"{format_number(share * 100)}%"


def when(ms: int | None) -> str:
    """Epoch milliseconds as 'YYYY-MM-DD HH:MM:SS UTC'; '—' for None."""
    if ms is None:
        return "—"
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def clip(text: str, limit: int = CLIP) -> str:
    """`text` escaped, cut to `limit` characters with '…' (the whole text in a title when cut)."""
    if len(text) <= limit:
        return esc(text)
    return f'<span title="{esc(text)}">{esc(text[: limit - 1])}…</span>'


def code(text: str) -> str:
    """`text` escaped in a `<code>` element."""
    return f"<code>{esc(text)}</code>"


def badge(status: str) -> str:
    """A status as text in a coloured pill, as the web UI draws it."""
    text = status.upper()
    return f'<span class="badge {_BADGE.get(text, "muted")}" data-status="{esc(text)}">{esc(text)}</span>'


def link(inner: str, href: str | None) -> str:
    """`inner` (HTML) as a link to `href` opening in a new tab, or `inner` alone without one."""
    if not href:
        return inner
    return f'<a href="{esc(href)}" target="_blank" rel="noopener">{inner}</a>'


def ui_link(href: str | None) -> str:
    """ "open in plinth UI ↗" linking to `href`, or nothing when there is no UI page to open."""
    return link("open in plinth UI ↗", href) if href else ""


def heading(text: str) -> str:
    """A section heading inside an output."""
    return f"<h4>{esc(text)}</h4>"


def head(*parts: str) -> str:
    """The first line of an output: its badge, title and short facts (HTML parts)."""
    return f'<div class="head">{" ".join(p for p in parts if p)}</div>'


def kv(items: Sequence[tuple[str, str]]) -> str:
    """A key-value list; labels are plain text, values HTML. Items with an empty value are left out."""
    rows = "".join(f"<dt>{esc(label)}</dt><dd>{value}</dd>" for label, value in items if value)
    return f'<dl class="kv">{rows}</dl>' if rows else ""


def details(summary: str, body: str, *, kind: str = "") -> str:
    """`body` folded under `summary` (plain text)."""
    marker = f' data-fold="{esc(kind)}"' if kind else ""
    return f"<details{marker}><summary>{esc(summary)}</summary>{body}</details>"


def muted(text: str) -> str:
    """A note in the muted colour."""
    return f'<p class="muted">{esc(text)}</p>'


@dataclass
class Table:
    """A table to render: headers, rows of HTML cells, which columns are numbers.

    `rows` are expected in the order to show (callers sort by the most useful column);
    `row_class` gives each row a class (e.g. "drifted"), `row_data` a `data-key` value.
    """

    headers: Sequence[str]
    rows: list[Sequence[str]] = field(default_factory=list)
    numeric: frozenset[int] = frozenset()
    row_class: list[str] = field(default_factory=list)
    row_data: list[str] = field(default_factory=list)
    name: str = ""

    def add(self, cells: Sequence[str], *, css: str = "", key: str = "") -> None:
        """Append one row of HTML cells."""
        self.rows.append(cells)
        self.row_class.append(css)
        self.row_data.append(key)

    def render(self, shown: int = SHOWN, folded: int = FOLDED, more: str = "") -> str:
        """The first `shown` rows, the next `folded` under '<N> more', and a count of any left.

        `more` is what the hidden rows are called ('runs', 'features'); default 'rows'.
        """
        if not self.rows:
            return ""
        first = self._table(0, shown)
        rest = len(self.rows) - shown
        if rest <= 0:
            return first
        noun = more or "rows"
        if folded <= 0:
            return first + muted(f"{rest} more {noun} not shown.")
        inner = self._table(shown, shown + folded)
        beyond = rest - folded
        if beyond > 0:
            inner += muted(f"{beyond} more {noun} not shown.")
        return first + details(f"{rest} more {noun}", inner, kind="more")

    def _table(self, start: int, stop: int) -> str:
        head = "".join(
            f'<th class="num">{esc(h)}</th>' if i in self.numeric else f"<th>{esc(h)}</th>"
            for i, h in enumerate(self.headers)
        )
        body = "".join(self._row(i) for i in range(start, min(stop, len(self.rows))))
        label = f' data-table="{esc(self.name)}"' if self.name else ""
        return f"<table{label}><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"

    def _row(self, index: int) -> str:
        cells = "".join(
            f'<td class="num">{cell}</td>' if i in self.numeric else f"<td>{cell}</td>"
            for i, cell in enumerate(self.rows[index])
        )
        css = f' class="{esc(self.row_class[index])}"' if self.row_class[index] else ""
        key = f' data-key="{esc(self.row_data[index])}"' if self.row_data[index] else ""
        return f"<tr{css}{key}>{cells}</tr>"


def key_values(
    headers: tuple[str, str], values: dict[str, str], *, name: str = "", numbers: bool = False
) -> str:
    """A two-column table of `values` sorted by key (values formatted as numbers when `numbers`)."""
    table = Table(headers, numeric=frozenset({1}) if numbers else frozenset(), name=name)
    for key in sorted(values):
        table.add([esc(key), clip(values[key])], key=key)
    return table.render(more="keys")
