// A directed acyclic graph drawn left to right as SVG: flow steps, lineage of datasets, runs and models.
//
//   Graph({nodes: [{id, label, kind, status?, href?, detail?}], edges: [{from, to, label?}],
//          testid?, selected?, onNodeClick?})
//
// Layout: each node's layer is its longest path from a source (edges that would close a cycle are
// left out), and nodes within a layer are ordered by the mean position of their neighbours
// (barycenter sweeps, down then up). Every node is a <g data-node-id data-kind data-status> whose
// label and "kind · status" line are <text>, so screen readers and tests read them; a node with an
// href is a link that moves inside the app without reloading.
import { html, useMemo } from "../vendor/standalone.module.js";
import { navigate } from "./router.js";

const NODE_H = 46;
const ROW_GAP = 14;
const COL_GAP = 64;
const PAD = 12;
// px per character of the label (12 px, bold) and of the line under it (11 px): near enough to
// size boxes without measuring text, which would need the nodes drawn first
const LABEL_CHAR_W = 8.2;
const NOTE_CHAR_W = 6.5;
const EDGE_CHAR_W = 6.2;
const MIN_W = 120;
const MAX_W = 320;
const SWEEPS = 4;

const STROKE = {
  FINISHED: "#1b7f3b", SUCCEEDED: "#1b7f3b", RESOLVED: "#1b7f3b",
  FAILED: "#b42318", CRASHED: "#b42318", FIRING: "#b42318",
  RUNNING: "#175cd3", PENDING: "#175cd3",
  KILLED: "#b54708", CANCELLED: "#b54708",
};
const FILL = {
  FINISHED: "#ecfdf3", SUCCEEDED: "#ecfdf3", RESOLVED: "#ecfdf3",
  FAILED: "#fef3f2", CRASHED: "#fef3f2", FIRING: "#fef3f2",
  RUNNING: "#eff8ff", PENDING: "#eff8ff",
  KILLED: "#fffaeb", CANCELLED: "#fffaeb",
};

let instances = 0;

export function Graph({ nodes, edges, testid = "graph", selected = null, onNodeClick = null }) {
  const layout = useMemo(() => layoutGraph(nodes || [], edges || []), [nodes, edges]);
  const marker = useMemo(() => `graph-arrow-${++instances}`, []);
  if (!layout.nodes.length) return html`<div class="graph" data-testid=${testid} data-nodes="0"><p class="muted">Nothing to draw.</p></div>`;
  return html`<div class="graph" data-testid=${testid} data-nodes=${layout.nodes.length} data-edges=${layout.edges.length}
      style=${{ overflow: "auto", maxWidth: "100%" }}>
    <svg xmlns="http://www.w3.org/2000/svg" width=${layout.width} height=${layout.height}
        viewBox=${`0 0 ${layout.width} ${layout.height}`} role="group" aria-label="graph">
      <defs><marker id=${marker} viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse">
        <path d="M 0 0 L 10 5 L 0 10 z" fill="#98a2b3"/></marker></defs>
      ${layout.edges.map((e) => html`<${Edge} key=${`${e.from}->${e.to}`} edge=${e} marker=${marker}/>`)}
      ${layout.nodes.map((n) => html`<${Node} key=${n.id} node=${n} selected=${selected === n.id} onNodeClick=${onNodeClick}/>`)}
    </svg>
  </div>`;
}

function Edge({ edge, marker }) {
  const { x1, y1, x2, y2 } = edge;
  const bend = Math.max(24, (x2 - x1) / 2);
  const d = `M ${x1} ${y1} C ${x1 + bend} ${y1}, ${x2 - bend} ${y2}, ${x2} ${y2}`;
  return html`<g class="edge" data-from=${edge.from} data-to=${edge.to}>
    <path d=${d} fill="none" stroke="#98a2b3" stroke-width="1.4" marker-end=${`url(#${marker})`}/>
    ${edge.label ? html`<text x=${(x1 + x2) / 2} y=${(y1 + y2) / 2 - 4} text-anchor="middle" fill="#667085" font-size="11">${edge.label}</text>` : null}
  </g>`;
}

function Node({ node, selected, onNodeClick }) {
  const status = node.status ? String(node.status).toUpperCase() : "";
  const stroke = STROKE[status] || "#98a2b3";
  const second = [node.kind, status, node.detail].filter(Boolean).join(" · ");
  const clickable = Boolean(node.href || onNodeClick);
  const click = (event) => {
    if (event.button !== 0 || event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) return;
    event.preventDefault(); // the router reads a[href] as HTML links; an SVG link moves here
    if (onNodeClick) onNodeClick(node);
    else navigate(node.href);
  };
  const body = html`<title>${[node.label, second].filter(Boolean).join(" — ")}</title>
    <rect width=${node.w} height=${NODE_H} rx="7" fill=${FILL[status] || "#ffffff"} stroke=${selected ? "#1f3a5f" : stroke}
      stroke-width=${selected ? 3 : 1.5}/>
    <text x="10" y="19" font-size="12" font-weight="600" fill="#1d2430" class="node-label">${clip(node.label, node.w, LABEL_CHAR_W)}</text>
    <text x="10" y="36" font-size="11" fill=${status ? stroke : "#667085"} class="node-status">${clip(second, node.w, NOTE_CHAR_W)}</text>`;
  return html`<g class="node" data-node-id=${node.id} data-kind=${node.kind || ""} data-status=${status}
      transform=${`translate(${node.x},${node.y})`} style=${clickable ? { cursor: "pointer" } : undefined}>
    ${node.href
      ? html`<a href=${node.href} onClick=${click}>${body}</a>`
      : onNodeClick
        ? html`<g role="button" tabindex="0" onClick=${click}
            onKeyDown=${(e) => { if (e.key === "Enter" || e.key === " ") { e.preventDefault(); onNodeClick(node); } }}>${body}</g>`
        : body}
  </g>`;
}

function clip(text, width, charWidth) {
  const room = Math.floor((width - 18) / charWidth);
  const s = String(text ?? "");
  return s.length > room ? `${s.slice(0, Math.max(1, room - 1))}…` : s;
}

function nodeWidth(node) {
  const second = [node.kind, node.status, node.detail].filter(Boolean).join(" · ");
  const wanted = Math.max(String(node.label ?? "").length * LABEL_CHAR_W, second.length * NOTE_CHAR_W) + 22;
  return Math.round(Math.min(MAX_W, Math.max(MIN_W, wanted)));
}

// Positions for every node and end points for every edge; exported for the pages' own use.
export function layoutGraph(nodes, edges) {
  const byId = new Map();
  nodes.forEach((n, i) => { if (!byId.has(n.id)) byId.set(n.id, { ...n, order: i }); });
  const kept = acyclic(byId, edges.filter((e) => byId.has(e.from) && byId.has(e.to) && e.from !== e.to));
  const layers = layerOf(byId, kept);
  const columns = orderColumns(byId, kept, layers);
  return place(byId, kept, columns);
}

// The edges without those that close a cycle (found by a depth-first search in node order).
function acyclic(byId, edges) {
  const out = new Map([...byId.keys()].map((id) => [id, []]));
  edges.forEach((e) => out.get(e.from).push(e));
  const state = new Map();
  const kept = [];
  const visit = (id) => {
    state.set(id, 1);
    for (const e of out.get(id)) {
      const s = state.get(e.to);
      if (s === 1) continue; // a back edge: drawing it would make the layering loop
      kept.push(e);
      if (!s) visit(e.to);
    }
    state.set(id, 2);
  };
  for (const id of byId.keys()) if (!state.get(id)) visit(id);
  const seen = new Set();
  return kept.filter((e) => { const k = `${e.from}\u0000${e.to}`; if (seen.has(k)) return false; seen.add(k); return true; });
}

// Longest path from a source: a node sits one layer right of its deepest parent.
function layerOf(byId, edges) {
  const parents = new Map([...byId.keys()].map((id) => [id, []]));
  edges.forEach((e) => parents.get(e.to).push(e.from));
  const layer = new Map();
  const depth = (id) => {
    if (layer.has(id)) return layer.get(id);
    layer.set(id, 0); // provisional: the edges are acyclic, so it is never read before it is final
    const value = parents.get(id).reduce((m, p) => Math.max(m, depth(p) + 1), 0);
    layer.set(id, value);
    return value;
  };
  for (const id of byId.keys()) depth(id);
  return layer;
}

// Each layer's nodes, ordered by the barycenter of their neighbours in the layer beside.
function orderColumns(byId, edges, layer) {
  const count = Math.max(...layer.values()) + 1;
  const columns = Array.from({ length: count }, () => []);
  for (const [id, l] of layer) columns[l].push(id);
  columns.forEach((col) => col.sort((a, b) => byId.get(a).order - byId.get(b).order));
  const parents = new Map([...byId.keys()].map((id) => [id, []]));
  const children = new Map([...byId.keys()].map((id) => [id, []]));
  edges.forEach((e) => { parents.get(e.to).push(e.from); children.get(e.from).push(e.to); });
  const sweep = (from, to, step, neighbours) => {
    for (let l = from; l !== to; l += step) {
      const beside = new Map(columns[l - step].map((id, i) => [id, i]));
      const keyOf = new Map(columns[l].map((id, i) => {
        const near = neighbours.get(id).filter((n) => beside.has(n)).map((n) => beside.get(n));
        return [id, near.length ? near.reduce((a, b) => a + b, 0) / near.length : i];
      }));
      columns[l].sort((a, b) => keyOf.get(a) - keyOf.get(b) || byId.get(a).order - byId.get(b).order);
    }
  };
  for (let i = 0; i < SWEEPS; i++) {
    sweep(1, count, 1, parents);
    sweep(count - 2, -1, -1, children);
  }
  return columns;
}

function place(byId, edges, columns) {
  const tallest = Math.max(...columns.map((c) => c.length));
  const fullHeight = tallest * NODE_H + (tallest - 1) * ROW_GAP;
  let x = PAD;
  const placed = [];
  const column = new Map(columns.flatMap((col, i) => col.map((id) => [id, i])));
  // the gap after a column fits the longest label of the edges leaving it
  const gaps = columns.map((_, i) => Math.max(COL_GAP, ...edges
    .filter((e) => column.get(e.from) === i && e.label)
    .map((e) => e.label.length * EDGE_CHAR_W + 28)));
  for (const [i, col] of columns.entries()) {
    const width = Math.max(...col.map((id) => nodeWidth(byId.get(id))));
    const height = col.length * NODE_H + (col.length - 1) * ROW_GAP;
    let y = PAD + (fullHeight - height) / 2;
    for (const id of col) {
      const node = byId.get(id);
      Object.assign(node, { x, y, w: width });
      placed.push(node);
      y += NODE_H + ROW_GAP;
    }
    x += width + gaps[i];
  }
  const lines = edges.map((e) => {
    const a = byId.get(e.from);
    const b = byId.get(e.to);
    return { ...e, x1: a.x + a.w, y1: a.y + NODE_H / 2, x2: b.x, y2: b.y + NODE_H / 2 };
  });
  return { nodes: placed, edges: lines, width: x - gaps[gaps.length - 1] + PAD, height: fullHeight + 2 * PAD };
}
