"""Rendering helpers shared by CLI commands: tables, times, sizes."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from typing import Any

from rich.console import Console
from rich.table import Table

console = Console(soft_wrap=True)
err_console = Console(stderr=True, soft_wrap=True)


def when(ms: int | None) -> str:
    """Epoch milliseconds as local `YYYY-MM-DD HH:MM:SS`, or '-'."""
    if ms is None:
        return "-"
    return dt.datetime.fromtimestamp(ms / 1000).strftime("%Y-%m-%d %H:%M:%S")


def size(n: int) -> str:
    """Bytes in human units."""
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{n} B"


def number(value: Any) -> str:
    """A metric value, compact."""
    return f"{value:.6g}" if isinstance(value, float) else str(value)


def table(title: str | None, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> Table:
    """A rich table with the given header and rows (cells rendered with str)."""
    out = Table(title=title, title_justify="left", header_style="bold")
    for column in columns:
        out.add_column(column)
    for row in rows:
        out.add_row(*("" if c is None else str(c) for c in row))
    return out


def emit_json(value: Any) -> None:
    """Print a JSON document (for --json)."""
    console.print_json(json.dumps(value, default=str))
