// Pieces every page uses: layout, errors, tables, key-value lists, tabs, badges and formatting.
import { html } from "../vendor/standalone.module.js";

export function Page({ name, title, ready = true, actions = null, children }) {
  return html`<main data-page=${name} data-ready=${ready ? "true" : "false"}>
    <div class="page-head"><h1>${title}</h1>${actions ? html`<div class="actions">${actions}</div>` : null}</div>
    ${children}
  </main>`;
}

export function ErrorBox({ error, testid = "error" }) {
  if (!error) return null;
  return html`<div class="error" role="alert" data-testid=${testid}>
    ${error.status ? html`<strong>${error.status === 403 ? "Not allowed" : error.status === 404 ? "Not found" : "Error"}: </strong>` : null}
    <pre>${error.message || String(error)}</pre>
  </div>`;
}

export function Loading({ what = "" }) {
  return html`<p class="loading" aria-busy="true">Loading${what ? ` ${what}` : ""}…</p>`;
}

export function Empty({ children }) {
  return html`<p class="empty">${children}</p>`;
}

const STATUS_CLASS = {
  FINISHED: "ok", SUCCEEDED: "ok", RUNNING: "run", PENDING: "run", FAILED: "bad", CRASHED: "bad",
  KILLED: "warn", CANCELLED: "warn", SKIPPED: "muted", CACHED: "muted", FIRING: "bad", RESOLVED: "ok",
};

// A status as text in a coloured pill (screen readers and tests read the text).
export function StatusBadge({ status }) {
  const text = String(status || "").toUpperCase();
  return html`<span class=${`badge ${STATUS_CLASS[text] || "muted"}`} data-status=${text}>${text}</span>`;
}

export function Link({ href, children, ...rest }) {
  return html`<a href=${href} ...${rest}>${children}</a>`;
}

// columns: [{key, label, render?(row), sortKey?, className?}]; sort: "key" or "-key".
export function Table({ columns, rows, sort = "", onSort = null, testid = "", rowKey = (r, i) => i, rowAttrs = () => ({}) }) {
  const active = sort.replace(/^-/, "");
  const descending = sort.startsWith("-");
  return html`<div class="table-wrap"><table data-testid=${testid}>
    <thead><tr>${columns.map((c) => {
      const key = c.sortKey || c.key;
      const sortable = onSort && c.sortable !== false;
      const state = sortable && key === active ? (descending ? "descending" : "ascending") : "none";
      return html`<th data-column=${c.key} aria-sort=${state} class=${sortable ? "sortable" : ""}
        onClick=${sortable ? () => onSort(key === active && !descending ? `-${key}` : key) : undefined}>
        ${c.label ?? c.key}${state === "ascending" ? " ▲" : state === "descending" ? " ▼" : ""}</th>`;
    })}</tr></thead>
    <tbody>${rows.map((row, i) => html`<tr key=${rowKey(row, i)} ...${rowAttrs(row)}>
      ${columns.map((c) => html`<td class=${c.className || ""}>${c.render ? c.render(row) : fmt(row[c.key])}</td>`)}
    </tr>`)}</tbody>
  </table></div>`;
}

// items: [[label, value], ...]
export function KeyValue({ items, testid = "" }) {
  return html`<dl class="kv" data-testid=${testid}>${items.map(([k, v]) => html`<dt>${k}</dt><dd>${v === null || v === undefined || v === "" ? "—" : v}</dd>`)}</dl>`;
}

// tabs: [[id, label]]; the current one is highlighted; onSelect(id).
export function Tabs({ tabs, current, onSelect }) {
  return html`<nav class="tabs" role="tablist">${tabs.map(([id, label]) => html`<button role="tab" aria-selected=${id === current ? "true" : "false"}
    class=${id === current ? "tab active" : "tab"} data-tab=${id} onClick=${() => onSelect(id)}>${label}</button>`)}</nav>`;
}

export function fmtTime(ms) {
  if (ms === null || ms === undefined) return "—";
  const d = new Date(ms);
  const pad = (n) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

export function fmtDuration(ms) {
  if (ms === null || ms === undefined) return "—";
  if (ms < 1000) return `${Math.round(ms)} ms`;
  const s = ms / 1000;
  if (s < 60) return `${s.toFixed(1)} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} min ${Math.round(s % 60)} s`;
  return `${Math.floor(m / 60)} h ${m % 60} min`;
}

export function fmtNum(x) {
  if (x === null || x === undefined) return "—";
  if (typeof x !== "number") return String(x);
  if (Number.isInteger(x)) return x.toLocaleString("en-US");
  const a = Math.abs(x);
  if (a !== 0 && (a < 1e-3 || a >= 1e6)) return x.toExponential(3);
  return String(Number(x.toPrecision(5)));
}

export function fmtBytes(n) {
  if (n === null || n === undefined) return "—";
  const units = ["B", "KB", "MB", "GB", "TB"];
  let i = 0;
  let v = n;
  while (v >= 1024 && i < units.length - 1) { v /= 1024; i++; }
  return `${i ? v.toFixed(1) : v} ${units[i]}`;
}

export function fmt(value) {
  if (typeof value === "number") return fmtNum(value);
  if (value === null || value === undefined) return "—";
  if (typeof value === "object") return JSON.stringify(value);
  return String(value);
}

export function shortId(id) {
  return id ? String(id).slice(0, 8) : "";
}
