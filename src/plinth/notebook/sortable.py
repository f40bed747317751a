"""A table sorted by a click on a column header, with no script: radio buttons and a stylesheet.

Each header holds two labels, each wrapping a hidden radio button of the table's one group: the
first sorts its column up, the second down, and the stylesheet shows whichever sorts next with an
arrow saying how the table is sorted now. Every row carries its rank in each column as a CSS
custom property (`--a3: 2`, none where the cell is empty); the table is a CSS grid whose rows
are `display: contents`, so the rule of the checked radio sets each cell's `order` to its row's
rank and the rows move, header first, empty cells last either way. Until a header is clicked
the rows keep the order they were given.

Where the stylesheet is dropped (JupyterLab's sanitizer in an untrusted notebook removes
`<style>`, custom properties, `id`s and `name`s, and disables inputs) the table is a plain table
in the order it was given, each header showing its name once; nothing about sorting is left
in sight. Each table is its own `<form>`, so radio groups of two tables in one notebook never
meet, and the HTML names nothing unique to one output.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

from plinth.notebook.html import esc

Key = float | str | None
"""A cell's sort value: numbers sort as numbers, text case-insensitively; None (and NaN) sort last."""

HIDDEN = "position:absolute;opacity:0;width:1px;height:1px;margin:0"
"""A radio button out of sight that a label still checks and the keyboard still reaches."""

CSS = """
.plinth form.sortable { margin: 0; }
.plinth form.sortable table { display: grid; justify-content: start;
  grid-template-columns: repeat(var(--columns), auto); }
.plinth form.sortable thead, .plinth form.sortable tbody, .plinth form.sortable tr { display: contents; }
.plinth form.sortable th { order: -1000000; position: relative; }
.plinth form.sortable td { order: 0; }
.plinth form.sortable label { cursor: pointer; }
.plinth form.sortable th:has(input.up:checked) label.up { display: none; }
.plinth form.sortable th:has(input.up:checked) label.down { display: inline !important; }
.plinth form.sortable th:has(input.up:checked) label.down::after { content: " \\25B2"; }
.plinth form.sortable th:has(input.down:checked) label.up::after { content: " \\25BC"; }
.plinth form.sortable input:focus-visible + span { outline: 1px dotted currentColor; }
"""
"""How every sortable table looks and moves; the rules naming its columns come with each table."""
MISSING = 1_000_000
"""The rank of an empty cell: after every row, in either direction."""


def ranks(values: Sequence[Key]) -> list[int | None]:
    """Each value's rank going up (1 first; equal values share one); None for an empty value.

    Numbers rank as numbers, text case-insensitively; a column holding both ranks numbers first.
    """
    present = sorted({_order(v) for v in values if not _empty(v)})
    rank = {order: i + 1 for i, order in enumerate(present)}
    return [None if _empty(v) else rank[_order(v)] for v in values]


def _empty(value: Key) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _order(value: Key) -> tuple[int, float, str]:
    if isinstance(value, str):
        return (1, 0.0, value.casefold())
    return (0, float(value or 0.0), "")


@dataclass
class SortableTable:
    """A table whose headers sort it: headers, rows of HTML cells and each cell's sort key.

    `rows` are expected in the order to show before any click (callers sort by the most
    useful column); `row_data` gives each row a `data-key` value.
    """

    headers: Sequence[str]
    numeric: frozenset[int] = frozenset()
    name: str = ""
    rows: list[Sequence[str]] = field(default_factory=list)
    keys: list[Sequence[Key]] = field(default_factory=list)
    row_data: list[str] = field(default_factory=list)

    def add(self, cells: Sequence[str], keys: Sequence[Key], *, key: str = "") -> None:
        """Append one row: its HTML cells and, for each, the value it sorts by."""
        self.rows.append(cells)
        self.keys.append(keys)
        self.row_data.append(key)

    def render(self) -> str:
        """The form holding the table and the rules sorting it (every row shown)."""
        if not self.rows:
            return ""
        columns = [ranks([row[i] for row in self.keys]) for i in range(len(self.headers))]
        head = "".join(self._header(i, text) for i, text in enumerate(self.headers))
        body = "".join(self._row(r, [column[r] for column in columns]) for r in range(len(self.rows)))
        label = f' data-table="{esc(self.name)}"' if self.name else ""
        table = (
            f'<table{label} style="--columns:{len(self.headers)}"><thead><tr>{head}</tr></thead>'
            f"<tbody>{body}</tbody></table>"
        )
        return f'<form class="sortable"><style>{CSS}{self._rules()}</style>{table}</form>'

    def _header(self, index: int, text: str) -> str:
        css = ' class="num"' if index in self.numeric else ""
        return f"<th{css}>{self._label(index, 'up', text)}{self._label(index, 'down', text)}</th>"

    def _label(self, index: int, way: str, text: str) -> str:
        """A label sorting column `index` `way` ("up", "down"); the "down" one shows only once the
        column is sorted up (the stylesheet's doing; without it, never)."""
        shown = "" if way == "up" else ' style="display:none"'
        return (
            f'<label class="{way}"{shown} title="sort by {esc(text)}, {way}">'
            f'<input type="radio" name="sort" class="{way}" value="{index}{way[0]}" style="{HIDDEN}">'
            f"<span>{esc(text)}</span></label>"
        )

    def _row(self, index: int, row_ranks: Sequence[int | None]) -> str:
        cells = "".join(
            f'<td class="num">{cell}</td>' if i in self.numeric else f"<td>{cell}</td>"
            for i, cell in enumerate(self.rows[index])
        )
        style = ";".join(f"--a{i}:{rank}" for i, rank in enumerate(row_ranks) if rank is not None)
        key = f' data-key="{esc(self.row_data[index])}"' if self.row_data[index] else ""
        ranked = f' style="{style}"' if style else ""
        return f"<tr{key}{ranked}>{cells}</tr>"

    def _rules(self) -> str:
        """Per column: the checked radio orders every cell by its row's rank in that column."""
        rules = []
        for i in range(len(self.headers)):
            up, down = (f'.plinth form.sortable:has(input[value="{i}{w}"]:checked) td' for w in "ud")
            rules.append(f"{up} {{ order: var(--a{i}, {MISSING}); }}\n")
            rules.append(f"{down} {{ order: calc(-1 * var(--a{i}, -{MISSING})); }}\n")
        return "".join(rules)
