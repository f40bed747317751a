"""A directed acyclic graph drawn left to right in SVG (a flow run's step calls).

The layout is the web UI's (`plinth/ui/static/lib/graph.js`): each node's layer is its longest
path from a source (an edge that would close a cycle is left out), and the nodes of a layer
are ordered by the mean position of their neighbours in the layer beside (barycenter sweeps,
down then up). Boxes are coloured by status as in the UI; arrowheads are drawn as polygons,
not markers, so two graphs in one notebook never share an element id. The picture reaches the
notebook as an `<img>` of the SVG document (see `plinth.notebook.svg`), which survives
JupyterLab's sanitizer where an inline `<svg>` does not.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from plinth.notebook import svg
from plinth.notebook.html import esc
from plinth.notebook.style import INK, MUTED, STATUS_FILL, STATUS_STROKE

NODE_H = 42
ROW_GAP = 12
COL_GAP = 48
PAD = 10
LABEL_CHAR_W = 7.6
NOTE_CHAR_W = 6.2
MIN_W = 110
MAX_W = 260
SWEEPS = 4
EDGE = "#98a2b3"
ALT_NODES = 40
"""Nodes the alt text names one by one; it counts the rest."""


@dataclass(frozen=True)
class Node:
    """One box: its id, bold label, status (colours it) and a second line of detail."""

    id: str
    label: str
    status: str = ""
    detail: str = ""


@dataclass(frozen=True)
class Placed:
    """A node with its box: left, top and width."""

    node: Node
    x: float
    y: float
    w: float


def _note(node: Node) -> str:
    return " · ".join(part for part in (node.status, node.detail) if part)


def _width(node: Node) -> float:
    wanted = max(len(node.label) * LABEL_CHAR_W, len(_note(node)) * NOTE_CHAR_W) + 20
    return round(min(MAX_W, max(MIN_W, wanted)))


def acyclic(ids: Sequence[str], edges: Sequence[tuple[str, str]]) -> list[tuple[str, str]]:
    """`edges` between known ids, once each, without those that close a cycle (depth-first, in id order)."""
    known = set(ids)
    out: dict[str, list[str]] = {i: [] for i in ids}
    for a, b in dict.fromkeys(edges):
        if a in known and b in known and a != b:
            out[a].append(b)
    state: dict[str, int] = {}
    kept: list[tuple[str, str]] = []
    for root in ids:
        if root in state:
            continue
        state[root] = 1
        stack = [(root, iter(out[root]))]
        while stack:
            node, children = stack[-1]
            child = next(children, None)
            if child is None:
                state[node] = 2
                stack.pop()
            elif state.get(child) != 1:  # an edge to a node on the current path would close a cycle
                kept.append((node, child))
                if child not in state:
                    state[child] = 1
                    stack.append((child, iter(out[child])))
    return kept


def layers(ids: Sequence[str], edges: Sequence[tuple[str, str]]) -> dict[str, int]:
    """Each node's layer: one right of its deepest parent (0 for a source). `edges` must be acyclic."""
    parents: dict[str, list[str]] = {i: [] for i in ids}
    for a, b in edges:
        parents[b].append(a)
    layer: dict[str, int] = {}
    for start in ids:
        stack = [start]
        while stack:
            node = stack[-1]
            waiting = [p for p in parents[node] if p not in layer]
            if waiting:
                stack.extend(waiting)
                continue
            stack.pop()
            layer[node] = max((layer[p] + 1 for p in parents[node]), default=0)
    return layer


def columns(ids: Sequence[str], edges: Sequence[tuple[str, str]], layer: dict[str, int]) -> list[list[str]]:
    """The nodes of each layer, ordered by the barycenter of their neighbours in the layer beside."""
    order = {node: i for i, node in enumerate(ids)}
    cols: list[list[str]] = [[] for _ in range(max(layer.values(), default=-1) + 1)]
    for node in ids:
        cols[layer[node]].append(node)
    parents: dict[str, list[str]] = {i: [] for i in ids}
    children: dict[str, list[str]] = {i: [] for i in ids}
    for a, b in edges:
        parents[b].append(a)
        children[a].append(b)

    def sweep(indexes: range, step: int, neighbours: dict[str, list[str]]) -> None:
        for col in indexes:
            beside = {node: i for i, node in enumerate(cols[col - step])}
            keys = {node: _barycenter(neighbours[node], beside, i) for i, node in enumerate(cols[col])}
            cols[col].sort(key=lambda node: (keys[node], order[node]))

    for _ in range(SWEEPS):
        sweep(range(1, len(cols)), 1, parents)
        sweep(range(len(cols) - 2, -1, -1), -1, children)
    return cols


def _barycenter(neighbours: Sequence[str], beside: dict[str, int], own: int) -> float:
    """Mean position of a node's neighbours in the layer beside; its own position without any."""
    near = [beside[n] for n in neighbours if n in beside]
    return sum(near) / len(near) if near else float(own)


def layout(
    nodes: Sequence[Node], edges: Sequence[tuple[str, str]]
) -> tuple[list[Placed], list[tuple[str, str]], float, float]:
    """Boxes for every node, the edges drawn, and the picture's width and height."""
    by_id = {n.id: n for n in nodes}
    ids = list(by_id)
    kept = acyclic(ids, edges)
    cols = columns(ids, kept, layers(ids, kept))
    tallest = max((len(c) for c in cols), default=0)
    full = tallest * NODE_H + max(tallest - 1, 0) * ROW_GAP
    placed: list[Placed] = []
    x = float(PAD)
    for col in cols:
        width = max(_width(by_id[i]) for i in col)
        y = PAD + (full - (len(col) * NODE_H + (len(col) - 1) * ROW_GAP)) / 2
        for node in col:
            placed.append(Placed(by_id[node], x, y, width))
            y += NODE_H + ROW_GAP
        x += width + COL_GAP
    return placed, kept, x - COL_GAP + PAD, full + 2 * PAD


def draw(nodes: Sequence[Node], edges: Sequence[tuple[str, str]], *, label: str = "graph") -> str:
    """The graph as one image (`svg.image`) of an SVG document holding a `<g data-node-id
    data-status>` per node and a path per edge; its alt text lists the nodes and their statuses."""
    placed, kept, width, height = layout(nodes, edges)
    if not placed:
        return ""
    at = {p.node.id: p for p in placed}
    parts = [_edge(at[a], at[b]) for a, b in kept]
    parts += [_box(p) for p in placed]
    return svg.image(
        svg.standalone(width, height, "".join(parts)), width, height, describe(nodes, kept, label)
    )


def describe(nodes: Sequence[Node], edges: Sequence[tuple[str, str]], label: str) -> str:
    """The graph in words: 'flow f: 3 nodes, 2 edges; load#0 FINISHED, train#0 FAILED, ...'."""
    listed = ", ".join(" ".join(p for p in (n.label, n.status) if p) for n in nodes[:ALT_NODES])
    more = f", and {len(nodes) - ALT_NODES} more" if len(nodes) > ALT_NODES else ""
    return f"{label}: {_count(len(nodes), 'node')}, {_count(len(edges), 'edge')}; {listed}{more}"


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'s' if n != 1 else ''}"


def _edge(a: Placed, b: Placed) -> str:
    x1, y1 = a.x + a.w, a.y + NODE_H / 2
    x2, y2 = b.x, b.y + NODE_H / 2
    bend = max(20.0, (x2 - x1) / 2)
    tip = f"{x2:.1f},{y2:.1f} {x2 - 7:.1f},{y2 - 3.5:.1f} {x2 - 7:.1f},{y2 + 3.5:.1f}"
    return (
        f'<g class="edge" data-from="{esc(a.node.id)}" data-to="{esc(b.node.id)}">'
        f'<path d="M{x1:.1f} {y1:.1f} C{x1 + bend:.1f} {y1:.1f} {x2 - bend:.1f} {y2:.1f} '
        f'{x2 - 6:.1f} {y2:.1f}" '
        f'fill="none" stroke="{EDGE}" stroke-width="1.4"/><polygon points="{tip}" fill="{EDGE}"/></g>'
    )


def _box(p: Placed) -> str:
    node = p.node
    stroke = STATUS_STROKE.get(node.status, EDGE)
    fill = STATUS_FILL.get(node.status, "#ffffff")
    note = _note(node)
    return (
        f'<g class="node" data-node-id="{esc(node.id)}" data-status="{esc(node.status)}" '
        f'transform="translate({p.x:.1f},{p.y:.1f})"><title>{esc(node.label)} — {esc(note)}</title>'
        f'<rect width="{p.w:.0f}" height="{NODE_H}" rx="7" fill="{fill}" stroke="{stroke}" '
        'stroke-width="1.5"/>'
        f'<text x="9" y="17" font-family="system-ui, sans-serif" font-size="12" font-weight="600" '
        f'fill="{INK}">{esc(_clip(node.label, p.w, LABEL_CHAR_W))}</text>'
        f'<text x="9" y="33" font-family="system-ui, sans-serif" font-size="11" '
        f'fill="{stroke if node.status else MUTED}">{esc(_clip(note, p.w, NOTE_CHAR_W))}</text></g>'
    )


def _clip(text: str, width: float, char_w: float) -> str:
    room = int((width - 16) // char_w)
    return text if len(text) <= room else text[: max(1, room - 1)] + "…"
