// The audit log and its chain's verification, erasure receipts, and costs.
import { html, useEffect, useState } from "../vendor/standalone.module.js";
import { api } from "../lib/api.js";
import { useApi } from "../lib/hooks.js";
import { navigate, queryParams, urlWith } from "../lib/router.js";
import { Empty, ErrorBox, Loading, Page, Table, fmtNum, fmtTime } from "../lib/components.js";

const AUDIT_PAGE_SIZE = 50;
const GROUPS = [["experiment", "experiment"], ["flow", "flow"], ["user", "user"]];
const WINDOWS = [["24h", "last 24 hours"], ["7d", "last 7 days"], ["30d", "last 30 days"], ["90d", "last 90 days"], ["365d", "last year"], ["all", "all time"]];
const MEASURES = [["cost", "cost"], ["cpu_hours", "CPU hours"], ["gpu_hours", "GPU hours"], ["wall_hours", "wall hours"], ["memory_gib_hours", "memory GiB·h"], ["runs", "runs"]];

function may(session, right) {
  return Boolean(session && session.me && (session.me.rights || []).includes(right));
}

function roleOf(session) {
  const me = session && session.me;
  if (!me) return "signed out";
  return me.roles[me.workspace] || "no role";
}

// Shown instead of a page the signed-in role may not read (no request is made for it).
function NotAllowed({ name, title, what, session }) {
  return html`<${Page} name=${name} title=${title}>
    <div class="error" role="alert" data-testid="not-allowed"><strong>Not allowed: </strong>
      ${what} is for auditors and admins of workspace <code>${session.me.workspace}</code>; you are signed in as${" "}<strong>${session.me.name}</strong> (${roleOf(session)}). Ask an admin for the auditor role.</div>
  </${Page}>`;
}

// A long before/after value in one cell: the start, the whole on hover.
function Clipped({ text, max = 80 }) {
  if (text === null || text === undefined || text === "") return html`<span class="muted">—</span>`;
  const shown = text.length > max ? `${text.slice(0, max)}…` : text;
  return html`<code title=${text}>${shown}</code>`;
}

// A datetime-local value ("2024-05-01T10:00", local time) as epoch milliseconds, or undefined.
function localMs(text) {
  if (!text) return undefined;
  const ms = new Date(text).getTime();
  return Number.isFinite(ms) ? ms : undefined;
}

function ChainStatus() {
  const { data, error, loading } = useApi(() => api.get("/ui/audit/verify"), []);
  if (loading) return html`<p class="card" data-testid="chain-status" aria-busy="true">Checking the chain…</p>`;
  if (error) return html`<${ErrorBox} error=${error} testid="chain-status"/>`;
  return html`<p class=${data.ok ? "card" : "error"} role=${data.ok ? "status" : "alert"} data-testid="chain-status"
      data-ok=${data.ok ? "true" : "false"}>
    <span class=${`badge ${data.ok ? "ok" : "bad"}`}>${data.ok ? "INTACT" : "NOT VERIFIED"}</span> ${data.text}</p>`;
}

function AuditFilters({ q, actions }) {
  const [draft, setDraft] = useState(q);
  useEffect(() => setDraft(q), [JSON.stringify(q)]);
  const set = (key) => (e) => setDraft({ ...draft, [key]: e.target.value });
  const apply = (e) => { e.preventDefault(); navigate(urlWith("/audit", { ...draft, page: "" })); };
  const choices = actions.includes(draft.action || "") || !draft.action ? actions : [...actions, draft.action];
  return html`<form class="toolbar card" role="search" aria-label="filter the audit log" onSubmit=${apply}>
    <label>user <input name="user" size="12" value=${draft.user || ""} onInput=${set("user")} placeholder="any"/></label>
    <label>action <select name="action" value=${draft.action || ""} onChange=${set("action")}>
      <option value="">any</option>${choices.map((a) => html`<option value=${a}>${a}</option>`)}</select></label>
    <label>entity id <input name="entity" size="18" value=${draft.entity || ""} onInput=${set("entity")} placeholder="run id, model name, …"/></label>
    <label>from <input type="datetime-local" name="since" value=${draft.since || ""} onInput=${set("since")}/></label>
    <label>until <input type="datetime-local" name="until" value=${draft.until || ""} onInput=${set("until")}/></label>
    <button type="submit" class="primary">Apply</button>
    ${Object.values(q).some(Boolean) ? html`<button type="button" class="link" onClick=${() => navigate("/audit")}>Clear</button>` : null}
  </form>`;
}

function AuditLog() {
  const all = queryParams();
  const q = { user: all.user || "", action: all.action || "", entity: all.entity || "", since: all.since || "", until: all.until || "" };
  const page = Math.max(parseInt(all.page || "1", 10) || 1, 1);
  const { data, error, loading } = useApi(
    () => api.get("/ui/audit", {
      user: q.user, action: q.action, entity: q.entity, since_ms: localMs(q.since), until_ms: localMs(q.until),
      page, page_size: AUDIT_PAGE_SIZE,
    }),
    [JSON.stringify(q), page],
  );
  const columns = [
    { key: "seq", label: "#", className: "num" },
    { key: "time_ms", label: "Time", render: (e) => fmtTime(e.time_ms) },
    { key: "actor", label: "Who" },
    { key: "action", label: "Action", render: (e) => html`<code>${e.action}</code>` },
    { key: "entity", label: "Entity", render: (e) => html`<span class="muted">${e.entity_type}</span> <span title=${e.entity_id}>${e.entity_id}</span>` },
    { key: "before", label: "Before", render: (e) => html`<${Clipped} text=${e.before} max=${40}/>` },
    { key: "after", label: "After", render: (e) => html`<${Clipped} text=${e.after}/>` },
  ];
  const total = data ? data.total : null;
  const pages = total ? Math.ceil(total / AUDIT_PAGE_SIZE) : 1;
  const first = data && data.events.length ? (page - 1) * AUDIT_PAGE_SIZE + 1 : 0;
  const last = data ? (page - 1) * AUDIT_PAGE_SIZE + data.events.length : 0;
  const go = (n) => navigate(urlWith("/audit", { ...q, page: n }));
  return html`<${Page} name="audit" title="Audit log" ready=${!loading} actions=${html`<a href="/erasures">Erasure receipts</a>`}>
    <${ChainStatus}/>
    <${AuditFilters} q=${q} actions=${data ? data.actions : []}/>
    <${ErrorBox} error=${error}/>
    <div class="table-tools">
      <span data-testid="event-count">${total === null ? "…" : `${fmtNum(first)}–${fmtNum(last)} of ${fmtNum(total)} events, newest first`}</span>
      <span class="pager">
        <button data-testid="prev-page" disabled=${page <= 1} onClick=${() => go(page - 1)}>‹ Newer</button>
        <span>page ${fmtNum(page)} of ${fmtNum(pages)}</span>
        <button data-testid="next-page" disabled=${page >= pages} onClick=${() => go(page + 1)}>Older ›</button>
      </span>
    </div>
    ${data && data.events.length ? html`<${Table} testid="audit-table" columns=${columns} rows=${data.events}
      rowKey=${(e) => e.seq} rowAttrs=${(e) => ({ "data-seq": e.seq, "data-action": e.action })}/>` : null}
    ${data && !data.events.length ? html`<${Empty}>No audit events match these filters.</${Empty}>` : null}
  </${Page}>`;
}

export function AuditPage({ session }) {
  if (!may(session, "audit")) return html`<${NotAllowed} name="audit" title="Audit log" what="The audit log" session=${session}/>`;
  return html`<${AuditLog}/>`;
}

function Receipts() {
  const { data: found, error, loading } = useApi(() => api.get("/ui/erasures"), []);
  const data = found ? found.receipts : null;
  const more = found ? found.total - data.length : 0;
  const columns = [
    { key: "time_ms", label: "Time", render: (r) => fmtTime(r.time_ms) },
    { key: "actor", label: "Who" },
    { key: "action", label: "Kind" },
    { key: "subject", label: "Subject / scope", render: (r) => (r.subject !== null
      ? html`<span>subject <code data-testid="receipt-subject">${r.subject}</code></span>`
      : html`<span>logs older than ${fmtTime(r.before_ms)}</span>`) },
    { key: "prediction_logs", label: "Prediction logs removed", render: (r) => fmtNum(r.prediction_logs), className: "num" },
    { key: "labels", label: "Labels removed", render: (r) => fmtNum(r.labels), className: "num" },
    { key: "digest", label: "Digest of removed rows", render: (r) => (r.digest ? html`<code title=${r.digest}>${r.digest.slice(0, 16)}…</code>` : "—") },
    { key: "seq", label: "Audit event", render: (r) => html`<a href=${urlWith("/audit", { action: `governance.${r.action}`, entity: r.subject || "" })}>#${r.seq}</a>` },
    { key: "residue", label: "What may still hold them", render: (r) => html`<${Clipped} text=${r.residue} max=${60}/>` },
  ];
  return html`<${Page} name="erasures" title=${html`<a href="/audit">Audit log</a> / Erasure receipts`} ready=${!loading}>
    <p class="muted">Each receipt is the record its audit event keeps: what was removed, a digest of the removed rows, who asked and when.</p>
    <${ErrorBox} error=${error}/>
    ${loading ? html`<${Loading}/>` : null}
    ${data && !data.length ? html`<${Empty}>No erasures yet: <code>plinth erase --subject ID</code> removes a subject's prediction logs and labels and leaves a receipt here.</${Empty}>` : null}
    ${data && data.length ? html`<${Table} testid="erasures-table" columns=${columns} rows=${data} rowKey=${(r) => r.seq}
      rowAttrs=${(r) => ({ "data-seq": r.seq })}/>` : null}
    ${more > 0 ? html`<p class="muted" data-testid="more-receipts">The newest ${fmtNum(data.length)} of ${fmtNum(found.total)} receipts;
      the ${fmtNum(more)} older ones are in the <a href=${urlWith("/audit", { action: "governance.erasure" })}>audit log</a> (filter it by action).</p>` : null}
  </${Page}>`;
}

export function ErasuresPage({ session }) {
  if (!may(session, "audit")) return html`<${NotAllowed} name="erasures" title="Erasure receipts" what="Erasure receipts" session=${session}/>`;
  return html`<${Receipts}/>`;
}

function fmtHours(x) {
  return x === null || x === undefined ? "—" : fmtNum(Number(x.toPrecision(3)));
}

function fmtPercent(x) {
  return x === null || x === undefined ? "—" : `${Math.round(x)}%`;
}

function fmtMeasure(measure, x) {
  if (measure === "runs") return fmtNum(x);
  if (measure === "cost") return x >= 1 ? x.toFixed(2) : fmtHours(x);
  return fmtHours(x);
}

// One bar per group: its length shares the largest group's, its number written beside it.
function Bars({ rows, measure }) {
  const top = Math.max(...rows.map((r) => r[measure] || 0), 0);
  const label = (MEASURES.find(([k]) => k === measure) || [measure, measure])[1];
  return html`<div class="card" data-testid="costs-chart" data-measure=${measure} role="img"
      aria-label=${`${label} per group`} style=${{ display: "grid", gridTemplateColumns: "max-content 1fr max-content", gap: "6px 12px", alignItems: "center" }}>
    ${rows.map((r) => html`<span data-group=${r.group} style=${{ whiteSpace: "nowrap" }}>${r.group}</span>
      <span style=${{ background: "#eef2f7", borderRadius: "4px", height: "16px" }}>
        <span style=${{ display: "block", height: "16px", borderRadius: "4px", background: "var(--accent-2)",
          width: `${top > 0 ? Math.max((100 * (r[measure] || 0)) / top, r[measure] ? 0.5 : 0) : 0}%` }}></span></span>
      <span class="num" data-value=${r[measure]}>${fmtMeasure(measure, r[measure] || 0)}${measure === "cost" ? "" : ` ${label}`}</span>`)}
  </div>`;
}

export function CostsPage() {
  const q = queryParams();
  const by = GROUPS.some(([k]) => k === q.by) ? q.by : "experiment";
  const since = WINDOWS.some(([k]) => k === q.since) ? q.since : "30d";
  const { data, error, loading } = useApi(() => api.get("/ui/costs", { by, since }), [by, since]);
  const rows = data ? data.rows : [];
  const priced = rows.some((r) => r.cost > 0);
  const measure = MEASURES.some(([k]) => k === q.measure) ? q.measure : priced ? "cost" : "cpu_hours";
  const go = (changes) => navigate(urlWith("/costs", { by, since, measure: q.measure, ...changes }));
  const columns = [
    { key: "group", label: by },
    { key: "runs", label: "Runs", className: "num", render: (r) => fmtNum(r.runs) },
    { key: "wall_hours", label: "Wall h", className: "num", render: (r) => fmtHours(r.wall_hours) },
    { key: "cpu_hours", label: "CPU h", className: "num", render: (r) => fmtHours(r.cpu_hours) },
    { key: "gpu_hours", label: "GPU h", className: "num", render: (r) => fmtHours(r.gpu_hours) },
    { key: "memory_gib_hours", label: "Memory GiB·h", className: "num", render: (r) => fmtHours(r.memory_gib_hours) },
    { key: "cpu_utilization", label: "CPU use", className: "num", render: (r) => fmtPercent(r.cpu_utilization) },
    { key: "gpu_utilization", label: "GPU use", className: "num", render: (r) => fmtPercent(r.gpu_utilization) },
    { key: "cost", label: "Cost", className: "num", render: (r) => fmtMeasure("cost", r.cost) },
  ];
  const prices = data ? data.prices : null;
  return html`<${Page} name="costs" title="Costs" ready=${!loading}>
    <form class="toolbar" aria-label="group costs" onSubmit=${(e) => e.preventDefault()}>
      <label>by <select name="by" value=${by} onChange=${(e) => go({ by: e.target.value })}>
        ${GROUPS.map(([k, text]) => html`<option value=${k}>${text}</option>`)}</select></label>
      <label>runs started <select name="since" value=${since} onChange=${(e) => go({ since: e.target.value })}>
        ${WINDOWS.map(([k, text]) => html`<option value=${k}>${text}</option>`)}</select></label>
      <label>bars show <select name="measure" value=${measure} onChange=${(e) => go({ measure: e.target.value })}>
        ${MEASURES.map(([k, text]) => html`<option value=${k}>${text}</option>`)}</select></label>
    </form>
    <${ErrorBox} error=${error}/>
    ${loading && !data ? html`<${Loading}/>` : null}
    ${data && !rows.length ? html`<${Empty}>No runs ${since === "all" ? "at all" : "in this window"} to count${by === "flow" ? " (only flow steps count by flow)" : ""}.</${Empty}>` : null}
    ${rows.length ? html`<${Bars} rows=${rows} measure=${measure}/>
      <h2>Costs by ${by}</h2>
      <${Table} testid="costs-table" columns=${columns} rows=${rows} rowKey=${(r) => r.group} rowAttrs=${(r) => ({ "data-group": r.group })}/>
      <p class="muted" data-testid="prices">Runs are billed for what they were allocated. Prices per hour: CPU ${fmtNum(prices.cpu_hour)},
        GPU ${fmtNum(prices.gpu_hour)}, memory ${fmtNum(prices.memory_gb_hour)} per GiB (PLINTH_PRICE_* on the server${priced ? "" : "; none set, so every cost is 0"}).</p>` : null}
  </${Page}>`;
}
