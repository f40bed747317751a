// An experiment's runs: the filter language in a search box, sort by any column, choose columns,
// select runs to compare, one page at a time (the store filters, sorts and pages).
import { html, useEffect, useState } from "../vendor/standalone.module.js";
import { api } from "../lib/api.js";
import { useApi } from "../lib/hooks.js";
import { navigate, queryParams, urlWith } from "../lib/router.js";
import { ErrorBox, Page, StatusBadge, Table, fmtDuration, fmtNum, fmtTime, shortId } from "../lib/components.js";

const PAGE_SIZES = [25, 50, 100, 200, 500];
const MAX_COMPARE = 50;
const FIXED = [
  { key: "select", label: "", sortable: false },
  { key: "name", label: "Run", sortKey: "name" },
  { key: "status", label: "Status", sortKey: "status" },
  { key: "user", label: "User", sortKey: "user" },
  { key: "start_ms", label: "Started", sortKey: "start_time" },
  { key: "duration", label: "Duration", sortable: false },
];

function defaultColumns(keys) {
  return [...keys.metrics.slice(0, 5).map((k) => `metrics.${k}`), ...keys.params.slice(0, 5).map((k) => `params.${k}`)];
}

function valueOf(run, column) {
  const dot = column.indexOf(".");
  const kind = column.slice(0, dot);
  const key = column.slice(dot + 1);
  return (run[kind] || {})[key];
}

function ColumnPicker({ keys, chosen, onChange }) {
  const [extra, setExtra] = useState("");
  const toggle = (column) => onChange(chosen.includes(column) ? chosen.filter((c) => c !== column) : [...chosen, column]);
  const groups = [["metrics", keys.metrics], ["params", keys.params], ["tags", keys.tags]];
  return html`<details class="columns" data-testid="columns">
    <summary>Columns (${chosen.length})</summary>
    <div class="column-groups">${groups.map(([kind, names]) => html`<fieldset><legend>${kind}</legend>
      ${names.length ? names.map((n) => { const c = `${kind}.${n}`; return html`<label><input type="checkbox" name="column" value=${c}
        checked=${chosen.includes(c)} onChange=${() => toggle(c)}/> ${n}</label>`; }) : html`<span class="muted">none on this page</span>`}
    </fieldset>`)}</div>
    <form class="inline" onSubmit=${(e) => { e.preventDefault(); const c = extra.trim(); if (/^(metrics|params|tags)\..+/.test(c) && !chosen.includes(c)) onChange([...chosen, c]); setExtra(""); }}>
      <input name="add-column" placeholder="metrics.name, params.name or tags.name" value=${extra} onInput=${(e) => setExtra(e.target.value)}/>
      <button type="submit">Add column</button>
    </form>
  </details>`;
}

export function RunsPage({ params, search }) {
  const name = params.name;
  const q = queryParams();
  const filter = q.filter || "";
  const order = q.order || "-start_time";
  const page = Math.max(parseInt(q.page || "1", 10) || 1, 1);
  const pageSize = PAGE_SIZES.includes(parseInt(q.page_size, 10)) ? parseInt(q.page_size, 10) : 100;
  const [draft, setDraft] = useState(filter);
  const [selected, setSelected] = useState(new Set());
  const base = `/ui/experiments/${encodeURIComponent(name)}/runs`;
  const { data, error, loading } = useApi(
    () => api.get(base, { filter, order, page, page_size: pageSize, count: false }),
    [name, filter, order, page, pageSize],
  );
  // counting every match costs more than finding a page of them: the rows show first
  const counted = useApi(() => api.get(`${base}/count`, { filter }), [name, filter]);
  useEffect(() => setDraft(filter), [filter]);

  const go = (changes) => navigate(urlWith(`/experiments/${encodeURIComponent(name)}`, { ...q, ...changes }), { replace: false });
  const keys = data ? data.keys : { params: [], metrics: [], tags: [] };
  const chosen = q.columns !== undefined ? q.columns.split(",").filter(Boolean) : defaultColumns(keys);
  const setColumns = (list) => go({ columns: list.join(",") });
  const toggleRun = (id) => {
    const next = new Set(selected);
    if (next.has(id)) next.delete(id);
    else if (next.size < MAX_COMPARE) next.add(id);
    setSelected(next);
  };

  const columns = [
    ...FIXED.map((c) => ({ ...c })),
    ...chosen.map((c) => ({ key: c, label: c.replace(/^(metrics|params|tags)\./, ""), sortKey: c, className: c.startsWith("metrics.") ? "num" : "" })),
  ];
  columns[0].render = (run) => html`<input type="checkbox" name="select-run" aria-label=${`select ${run.name}`} checked=${selected.has(run.id)} onChange=${() => toggleRun(run.id)}/>`;
  columns[1].render = (run) => html`<a href=${`/runs/${run.id}`} title=${run.id}>${run.name || shortId(run.id)}</a>`;
  columns[2].render = (run) => html`<${StatusBadge} status=${run.status}/>`;
  columns[4].render = (run) => fmtTime(run.start_ms);
  columns[5].render = (run) => fmtDuration(run.end_ms ? run.end_ms - run.start_ms : null);
  for (const c of columns.slice(FIXED.length)) c.render = (run) => fmtNum(valueOf(run, c.key));

  const badFilter = error && error.status && error.status < 500 && (error.problems || []).some((p) => p.field === "filter" || p.field === "order_by");
  const total = counted.data && !counted.loading ? counted.data.total : null;
  const first = data && data.runs.length ? (page - 1) * pageSize + 1 : 0;
  const last = data ? (page - 1) * pageSize + data.runs.length : 0;
  const pages = total !== null ? Math.max(Math.ceil(total / pageSize), 1) : null;
  const more = pages !== null ? page < pages : Boolean(data && data.runs.length === pageSize);
  const compare = () => navigate(`/compare?runs=${[...selected].join(",")}`);

  return html`<${Page} name="runs" title=${html`<a href="/experiments">Experiments</a> / ${name}`} ready=${!loading}
      actions=${html`<button data-testid="compare" class="primary" disabled=${selected.size < 1} onClick=${compare}>Compare ${selected.size || ""} run${selected.size === 1 ? "" : "s"}</button>`}>
    <form class="filter" role="search" onSubmit=${(e) => { e.preventDefault(); go({ filter: draft.trim(), page: 1 }); }}>
      <input name="filter" aria-label="filter" spellcheck="false" value=${draft} onInput=${(e) => setDraft(e.target.value)}
        placeholder="metrics.acc > 0.9 and params.lr = '0.1' and status = 'FINISHED'"/>
      <button type="submit">Apply</button>
      ${filter ? html`<button type="button" class="link" onClick=${() => go({ filter: "", page: 1 })}>Clear</button>` : null}
    </form>
    ${badFilter ? html`<div class="error" role="alert" data-testid="filter-error"><pre>${error.message}</pre></div>` : html`<${ErrorBox} error=${error}/>`}
    <div class="table-tools">
      <span data-testid="run-count">${!data ? "…" : total === 0 ? "0 runs" : total === null ? `${fmtNum(first)}–${fmtNum(last)} of …` : `${fmtNum(first)}–${fmtNum(last)} of ${fmtNum(total)} runs`}</span>
      <${ColumnPicker} keys=${keys} chosen=${chosen} onChange=${setColumns}/>
      <span class="pager">
        <button data-testid="prev-page" disabled=${page <= 1} onClick=${() => go({ page: page - 1 })}>‹ Prev</button>
        <span>page ${page} of ${pages === null ? "…" : fmtNum(pages)}</span>
        <button data-testid="next-page" disabled=${!more} onClick=${() => go({ page: page + 1 })}>Next ›</button>
        <select name="page-size" aria-label="runs per page" value=${pageSize} onChange=${(e) => go({ page_size: e.target.value, page: 1 })}>
          ${PAGE_SIZES.map((n) => html`<option value=${n}>${n} / page</option>`)}
        </select>
      </span>
    </div>
    ${data ? html`<${Table} testid="runs-table" columns=${columns} rows=${data.runs} sort=${order}
        onSort=${(next) => go({ order: next, page: 1 })} rowKey=${(r) => r.id} rowAttrs=${(r) => ({ "data-run-id": r.id })}/>` : null}
    ${data && !data.runs.length ? html`<p class="empty">No runs match${filter ? " this filter" : ""}.</p>` : null}
  </${Page}>`;
}
