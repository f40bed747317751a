// Deployments and their monitoring: traffic, errors, latency, drift, performance, alerts.
// The data is the server's monitoring report of the window, drawn here; raw requests
// (inputs, outputs, subject ids) appear only for roles with the "raw" right.
import { html, useMemo, useState } from "../vendor/standalone.module.js";
import { api, apiUrl } from "../lib/api.js";
import { useApi } from "../lib/hooks.js";
import { navigate, queryParams, urlWith } from "../lib/router.js";
import { Empty, ErrorBox, KeyValue, Loading, Page, StatusBadge, fmtNum, fmtTime } from "../lib/components.js";
import { LineChart } from "../lib/chart.js";

const WINDOWS = [["1h", "last hour"], ["24h", "last 24 hours"], ["7d", "last 7 days"], ["all", "all time"]];
const DEFAULT_WINDOW = "7d";
const DRIFT_SHOWN = 10; // drift series drawn at first; the others one click away

function windowOf() {
  const w = queryParams().window;
  return WINDOWS.some(([key]) => key === w) ? w : DEFAULT_WINDOW;
}

// A model name as path segments (names may hold "/").
export function namePath(name) {
  return String(name).split("/").map(encodeURIComponent).join("/");
}

function pct(x) {
  return x === null || x === undefined ? "—" : `${fmtNum(Math.round(x * 10000) / 100)} %`;
}

function ms(x) {
  return x === null || x === undefined ? "—" : `${fmtNum(Number(x.toPrecision(3)))} ms`;
}

function num3(x) {
  return x === null || x === undefined ? "—" : fmtNum(Number(x.toPrecision(3)));
}

function aliasText(aliases) {
  const pairs = Object.entries(aliases || {});
  return pairs.length ? pairs.map(([a, v]) => `@${a} → v${v}`).join(", ") : "no alias";
}

function WindowSelect({ value }) {
  const change = (e) => navigate(urlWith(location.pathname, { ...queryParams(), window: e.target.value }));
  return html`<label class="muted">window <select name="window" value=${value} onChange=${change}>
    ${WINDOWS.map(([key, label]) => html`<option value=${key}>${label}</option>`)}</select></label>`;
}

export function DeploymentsPage({ search }) {
  const window = windowOf();
  const { data, error, loading } = useApi(() => api.get("/ui/deployments", { window }), [search]);
  const rows = data ? data.deployments : [];
  return html`<${Page} name="deployments" title="Deployments" ready=${!loading && (data || error)}
      actions=${html`<${WindowSelect} value=${window}/>`}>
    <${ErrorBox} error=${error}/>
    ${loading && !data ? html`<${Loading}/>` : null}
    ${data && !rows.length ? html`<${Empty}>No model has logged predictions yet. Serve one (<code>plinth serve NAME@ALIAS</code>)
      or log predictions made elsewhere (<code>plinth.log_predictions</code>).</${Empty}>` : null}
    ${rows.length ? html`<div class="table-wrap"><table data-testid="deployments-table">
      <thead><tr>${["Model", "Aliases", "Versions", "Requests", "Errors", "Error rate", "p50", "p99", "Open alerts"]
        .map((h) => html`<th>${h}</th>`)}</tr></thead>
      <tbody>${rows.map((r) => html`<tr key=${r.name} data-deployment=${r.name}>
        <td><a href=${urlWith(`/deployments/${namePath(r.name)}`, { window })}>${r.name}</a></td>
        <td>${aliasText(r.aliases)}</td>
        <td>${r.versions.map((v) => `v${v}`).join(", ") || "—"}</td>
        <td class="num" data-column="requests">${fmtNum(r.requests)}</td>
        <td class="num" data-column="errors">${fmtNum(r.errors)}</td>
        <td class="num" data-column="error_rate">${r.requests ? pct(r.error_rate) : "—"}</td>
        <td class="num" data-column="p50">${ms(r.latency_p50_ms)}</td>
        <td class="num" data-column="p99">${ms(r.latency_p99_ms)}</td>
        <td data-column="open_alerts">${r.open_alerts}${r.open_alerts ? html` <${StatusBadge} status="firing"/>` : null}</td>
      </tr>`)}</tbody></table></div>` : null}
  </${Page}>`;
}

export function DeploymentPage({ params, search, session }) {
  const name = params.name;
  const window = windowOf();
  const { data, error, loading } = useApi(
    () => api.get(`/ui/deployments/${namePath(name)}/monitoring`, { window }), [name, search],
  );
  const mayRaw = Boolean(session && session.me && session.me.rights.includes("raw"));
  const actions = html`<${WindowSelect} value=${window}/>
    <a class="button" href=${urlWith("/lineage", { kind: "model", id: name })}>Lineage</a>
    ${data && !data.empty ? html`<a class="button" download href=${apiUrl(`/ui/deployments/${namePath(name)}/report`, { window })}>Download report</a>` : null}`;
  return html`<${Page} name="deployment" title=${html`<a href=${urlWith("/deployments", { window })}>Deployments</a> / ${name}`}
      ready=${!loading && (data || error)} actions=${actions}>
    <${ErrorBox} error=${error}/>
    ${loading && !data ? html`<${Loading} what="the monitoring report"/>` : null}
    ${data ? html`<${Monitoring} data=${data}/>` : null}
    ${data && data.raw_allowed && mayRaw ? html`<${RecentRequests} name=${name} window=${window}/>` : null}
  </${Page}>`;
}

function Monitoring({ data }) {
  if (data.empty) {
    return html`<${Empty}>${data.empty}</${Empty}><${Alerts} incidents=${data.alerts}/>`;
  }
  const s = data.summary;
  const open = data.alerts.filter((a) => a.status === "firing").length;
  const items = [
    ["Aliases", aliasText(data.aliases)],
    ["Versions answering", data.versions.map((v) => `v${v}`).join(", ")],
    ["Requests", fmtNum(s.requests)],
    ["Errors", `${fmtNum(s.errors)} (${pct(s.error_rate)})`],
    ["Latency p50 / p99", `${ms(s.latency_p50_ms)} / ${ms(s.latency_p99_ms)}`],
    ["Drift reference", data.drift.reference || "none"],
    ["Drifted features (latest window)", data.drift.drifted ? data.drift.drifted.join(", ") || "none" : "—"],
    ["Label coverage", pct(data.performance.overall.coverage)],
    ["Open alerts", String(open)],
    ["Charts' windows", data.every],
  ];
  return html`<${KeyValue} items=${items} testid="summary"/>
    <h2>Traffic</h2>
    <${Traffic} traffic=${data.traffic}/>
    <h2>Drift per feature</h2>
    <${Drift} drift=${data.drift}/>
    <h2>Performance from delayed labels</h2>
    <${Performance} perf=${data.performance}/>
    <h2>Predictions</h2>
    <${Predictions} found=${data.predictions}/>
    <${Versions} rows=${data.per_version}/>
    <${Alerts} incidents=${data.alerts}/>`;
}

function seconds(xs) {
  return xs.map((x) => x / 1000);
}

function Card({ testid, title, children }) {
  return html`<div class="card" data-testid=${testid}><h3>${title}</h3>${children}</div>`;
}

function Traffic({ traffic }) {
  const x = useMemo(() => seconds(traffic.x), [traffic]);
  const counts = useMemo(() => [
    { label: "requests", x, y: traffic.requests },
    { label: "errors", x, y: traffic.errors },
  ], [traffic]);
  const latency = useMemo(() => [
    { label: "p50 ms", x, y: traffic.p50 },
    { label: "p99 ms", x, y: traffic.p99 },
  ], [traffic]);
  return html`<div class="grid">
    <${Card} testid="chart-requests" title="Requests and errors per window">
      <${LineChart} series=${counts} xLabel="time" yLabel="requests" time=${true} height=${220}/></${Card}>
    <${Card} testid="chart-latency" title="Latency p50 and p99 (ms)">
      <${LineChart} series=${latency} xLabel="time" yLabel="ms" time=${true} height=${220}/></${Card}>
  </div>`;
}

function Drift({ drift }) {
  const [all, setAll] = useState(false);
  const ranked = useMemo(() => (drift.latest || []).map((r) => r.name), [drift]);
  const series = useMemo(() => {
    const x = seconds(drift.x);
    const order = new Map(ranked.map((n, i) => [n, i]));
    const sorted = [...drift.series].sort((a, b) => (order.get(a.label) ?? 1e9) - (order.get(b.label) ?? 1e9));
    return (all ? sorted : sorted.slice(0, DRIFT_SHOWN)).map((s) => ({ label: s.label, x, y: s.y }));
  }, [drift, all, ranked]);
  if (drift.note) return html`<${Empty}>${drift.note}</${Empty}>`;
  const more = drift.series.length - DRIFT_SHOWN;
  return html`<${Card} testid="chart-drift" title=${`PSI per feature against ${drift.reference}, per window`}>
      <${LineChart} series=${series} xLabel="time" yLabel="PSI" time=${true} height=${260}/>
      ${more > 0 ? html`<button class="link" onClick=${() => setAll(!all)}>${all ? `Show the ${DRIFT_SHOWN} most moved` : `Show all ${drift.series.length} features`}</button>` : null}
    </${Card}>
    <h3>Latest window (from ${fmtTime(drift.latest_start_ms)})</h3>
    <${DriftTable} rows=${drift.latest} prediction=${drift.prediction} thresholds=${drift.thresholds}/>`;
}

function DriftTable({ rows, prediction, thresholds }) {
  const [all, setAll] = useState(false);
  const first = Math.max(DRIFT_SHOWN, rows.filter((r) => r.drifted).length);
  const shown = all ? rows : rows.slice(0, first);
  const line = (r, role) => html`<tr data-feature=${r.name} data-drifted=${r.drifted ? "true" : "false"}>
    <td>${role === "prediction" ? html`${r.name} <span class="muted">(predictions)</span>` : r.name}</td>
    <td class="num" data-column="psi">${num3(r.psi)}</td>
    <td class="num">${num3(r.js_distance)}</td>
    <td class="num">${num3(r.p_value)}</td>
    <td class="num">${num3(r.psi_window)}</td>
    <td data-column="status">${r.drifted ? html`<span class="badge bad">DRIFTED</span>` : html`<span class="badge ok">ok</span>`}</td>
    <td class="muted">${(r.reasons || []).join(", ")}</td>
  </tr>`;
  return html`<div class="table-wrap"><table data-testid="drift-table">
    <thead><tr><th>feature</th><th>PSI</th><th>JS</th><th>p-value</th><th>PSI, whole window</th><th>status</th><th>why</th></tr></thead>
    <tbody>${shown.map((r) => line(r, "feature"))}${prediction ? line(prediction, "prediction") : null}</tbody>
  </table></div>
  ${rows.length > first ? html`<button class="link" data-testid="all-features" onClick=${() => setAll(!all)}>
    ${all ? `Show the ${first} most moved features` : `Show all ${rows.length} features`}</button>` : null}
  <p class="muted">A feature drifted when its PSI is above ${thresholds.psi} or its JS distance above ${thresholds.js},
    with a p-value below ${thresholds.p_value}.</p>`;
}

function Performance({ perf }) {
  const o = perf.overall;
  const series = useMemo(() => {
    const x = seconds(perf.x);
    return perf.series.map((s) => ({ label: s.label, x, y: s.y }));
  }, [perf]);
  const metrics = Object.entries(o.metrics || {}).filter(([, v]) => v !== null && v !== undefined);
  const items = [
    ["Task", perf.task],
    ["Labeled", `${fmtNum(o.labeled)} of ${fmtNum(o.predictions)} predictions (${pct(o.coverage)})`],
    ...metrics.map(([k, v]) => [k, html`<span data-metric=${k}>${num3(v)}</span>`]),
  ];
  return html`<div class="grid" data-testid="performance">
    <div style=${{ alignSelf: "start" }}><${KeyValue} items=${items}/></div>
    ${o.labeled ? html`<${Card} testid="chart-performance" title="Metrics and label coverage per window">
      <${LineChart} series=${series} xLabel="time" time=${true} height=${240}/></${Card}>`
      : html`<${Empty}>No labels yet: log them with <code>plinth.log_labels</code> to see performance.</${Empty}>`}
  </div>`;
}

function Predictions({ found }) {
  if (!found) return html`<${Empty}>No answered request in this window.</${Empty}>`;
  const labels = found.kind === "classes" ? found.labels
    : found.current.map((_, i) => `${num3(found.edges[i])} – ${num3(found.edges[i + 1])}`);
  const peak = Math.max(...found.current, ...(found.reference || []), 1e-12);
  const bar = (v, colour) => html`<span aria-hidden="true" style=${{ display: "inline-block", height: "10px", borderRadius: "2px",
    background: colour, width: `${Math.round(((v || 0) / peak) * 160)}px` }}></span>`;
  return html`<div class="table-wrap"><table data-testid="predictions">
    <thead><tr><th>${found.kind === "classes" ? "class" : "value"}</th><th>${found.kind === "classes" ? "share" : "density"}</th><th></th>
      ${found.kind === "classes" && found.reference ? html`<th>training (${found.target})</th><th></th>` : null}</tr></thead>
    <tbody>${labels.map((label, i) => html`<tr>
      <td>${label}</td><td class="num">${found.kind === "classes" ? pct(found.current[i]) : num3(found.current[i])}</td>
      <td>${bar(found.current[i], "#2f6fb3")}</td>
      ${found.kind === "classes" && found.reference ? html`<td class="num">${pct(found.reference[i])}</td><td>${bar(found.reference[i], "#98a2b3")}</td>` : null}
    </tr>`)}</tbody></table></div>
    <p class="muted">${fmtNum(found.rows)} predicted rows.</p>`;
}

function Versions({ rows }) {
  if (!rows || rows.length < 2) return null;
  return html`<h2>Per version</h2><div class="table-wrap"><table data-testid="versions">
    <thead><tr><th>version</th><th>requests</th><th>errors</th><th>error rate</th><th>p50</th><th>p99</th></tr></thead>
    <tbody>${rows.map((r) => html`<tr data-version=${r.version}><td>v${r.version}</td><td class="num">${fmtNum(r.requests)}</td>
      <td class="num">${fmtNum(r.errors)}</td><td class="num">${pct(r.error_rate)}</td>
      <td class="num">${ms(r.latency_p50_ms)}</td><td class="num">${ms(r.latency_p99_ms)}</td></tr>`)}</tbody></table></div>`;
}

function Alerts({ incidents }) {
  return html`<h2>Alert incidents</h2>
    ${incidents.length ? html`<div class="table-wrap"><table data-testid="incidents">
      <thead><tr><th>status</th><th>rule</th><th>target</th><th>condition</th><th>value</th><th>since</th><th>resolved</th></tr></thead>
      <tbody>${incidents.map((a) => html`<tr data-status=${a.status} data-rule=${a.rule}>
        <td><${StatusBadge} status=${a.status}/></td><td>${a.rule}</td><td>${a.target}</td>
        <td><code>${a.when || a.metric || ""}</code></td>
        <td class="num">${num3(a.value)}${a.last_value !== null && a.last_value !== undefined ? html` <span class="muted">→ ${num3(a.last_value)}</span>` : null}</td>
        <td>${fmtTime(a.opened_ms)}</td><td>${a.resolved_ms ? fmtTime(a.resolved_ms) : "—"}</td>
      </tr>`)}</tbody></table></div>`
      : html`<${Empty}>No alert has fired. Rules are checked by <code>plinth monitor watch RULES.toml</code>.</${Empty}>`}`;
}

function clipText(text, n = 80) {
  const s = String(text ?? "");
  return s.length > n ? `${s.slice(0, n - 1)}…` : s;
}

function RecentRequests({ name, window }) {
  const { data, error } = useApi(() => api.get(`/ui/deployments/${namePath(name)}/requests`, { window, limit: 25 }), [name, window]);
  return html`<h2>Recent requests <span class="muted">(raw logs: shown to auditors and admins)</span></h2>
    <${ErrorBox} error=${error}/>
    ${data ? (data.requests.length ? html`<div class="table-wrap"><table data-testid="recent-requests">
      <thead><tr><th>time</th><th>request</th><th>version</th><th>route</th><th>status</th><th>latency</th><th>subject</th><th>inputs</th><th>outputs</th><th>label</th></tr></thead>
      <tbody>${data.requests.map((r) => html`<tr data-request-id=${r.request_id} data-status=${String(r.status)}>
        <td>${fmtTime(r.time_ms)}</td>
        <td><a href=${urlWith("/lineage", { kind: "request", id: r.request_id })}>${r.request_id}</a></td>
        <td>v${r.version}</td><td>${r.route}</td><td>${r.status}</td><td class="num">${r.route === "external" ? "—" : ms(r.latency_ms)}</td>
        <td>${r.subject_id || "—"}</td><td title=${r.inputs}><code>${clipText(r.inputs)}</code></td>
        <td title=${r.outputs}><code>${clipText(r.outputs, 40)}</code></td><td>${r.label ?? "—"}</td>
      </tr>`)}</tbody></table></div>` : html`<${Empty}>No request in this window.</${Empty}>`) : null}`;
}
