"""Notebook views of governance: a lineage graph as two nested trees, and cost rows as a table.

Lineage reads from its root both ways: up, towards the data and runs it came from, and down,
towards what came of it (models, deployments, predictions). Each line says how it relates to
the line above it, as `plinth lineage` prints it; a node reached twice is listed once.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from plinth.governance.lineage import phrase
from plinth.notebook import links, svg
from plinth.notebook.html import Table, duration, esc, head, heading, link, muted, number, percent, ui_link
from plinth.notebook.style import document

if TYPE_CHECKING:
    from plinth.governance.lineage import LineageGraph, Node
    from plinth.monitoring.costs import CostRow

ROOT_PAGES = {"run": "run", "flow_run": "run", "prediction": "request"}
"""Root node types whose lineage page the UI opens by id (a model or dataset needs its NAME/N)."""


def lineage_html(graph: LineageGraph) -> str:
    """The graph around its root: where it came from, and what came of it, as nested lists."""
    root = graph.root
    kind = ROOT_PAGES.get(root[0])
    title = head(
        f'<span class="title">lineage of {esc(_label(graph, root))}</span>',
        ui_link(links.lineage_url(kind, root[1]) if kind else None),
    )
    parts = [title]
    for direction, name in (("up", "Came from"), ("down", "Led to")):
        tree = _tree(graph, root, direction, {root})
        parts.append(
            heading(name) + (f'<ul class="tree root">{tree}</ul>' if tree else muted("Nothing recorded."))
        )
    return document("lineage", "".join(parts), root=f"{root[0]}:{root[1]}", nodes=str(len(graph.labels)))


def _tree(graph: LineageGraph, node: Node, direction: str, seen: set[Node]) -> str:
    """The `<li>` items below `node` walking `direction`; a node already shown is not opened again."""
    nexts = (
        [(r, a) for a, r, b in graph.edges if b == node]
        if direction == "up"
        else [(r, b) for a, r, b in graph.edges if a == node]
    )
    items = []
    for relation, other in nexts:
        text = f'<span class="rel">{esc(phrase(relation, direction))}</span> {_node(graph, other)}'
        key = esc(f"{other[0]}:{other[1]}")
        if other in seen:
            items.append(f'<li data-node="{key}">{text} <span class="muted">(above)</span></li>')
            continue
        seen.add(other)
        below = _tree(graph, other, direction, seen)
        inner = f'<ul class="tree">{below}</ul>' if below else ""
        items.append(f'<li data-node="{key}">{text}{inner}</li>')
    return "".join(items)


def _node(graph: LineageGraph, node: Node) -> str:
    kind, ident = node
    url = links.run_url(ident) if kind == "run" else links.flow_run_url(ident) if kind == "flow_run" else None
    return link(esc(_label(graph, node)), url)


def _label(graph: LineageGraph, node: Node) -> str:
    return graph.labels.get(node, f"{node[0]} {node[1]}")


def costs_html(rows: Sequence[CostRow]) -> str:
    """Cost rows (costliest first, as `plinth.costs` returns them) as a table and a bar chart."""
    headers = (
        "group",
        "runs",
        "cost",
        "wall time",
        "CPU time",
        "GPU time",
        "memory GiB·h",
        "CPU use",
        "GPU use",
    )
    table = Table(headers, numeric=frozenset(range(1, 9)), name="costs")
    for row in rows:
        table.add(
            [
                esc(row.group),
                f"{row.runs:,}",
                number(row.cost),
                duration(row.wall_hours * 3600),
                duration(row.cpu_hours * 3600),
                duration(row.gpu_hours * 3600),
                number(row.memory_gib_hours),
                percent(row.cpu_utilization / 100 if row.cpu_utilization is not None else None),
                percent(row.gpu_utilization / 100 if row.gpu_utilization is not None else None),
            ],
            key=row.group,
        )
    priced = any(r.cost for r in rows)
    values = [r.cost if priced else r.cpu_hours + r.gpu_hours for r in rows[:12]]
    chart = svg.bars(
        [r.group for r in rows[:12]], values, label="cost per group" if priced else "CPU+GPU hours"
    )
    title = head(
        f'<span class="title">costs of {len(rows)} group{"s" if len(rows) != 1 else ""}</span>',
        ui_link(links.costs_url()),
    )
    note = "" if priced else muted("No prices set (PLINTH_PRICE_*): the bars are CPU + GPU hours.")
    return document("costs", title + chart + note + table.render(more="groups"), groups=str(len(rows)))


def cost_row_html(row: CostRow) -> str:
    """One group's cost row, as the table of one."""
    return costs_html([row])
