// Runs side by side: metric curves overlaid, a params diff, latest metrics, parallel coordinates.
// One call brings everything (`/ui/compare`): the runs and their series, cut down on the server.
import { html, useMemo, useRef, useState } from "../vendor/standalone.module.js";
import { api } from "../lib/api.js";
import { useApi } from "../lib/hooks.js";
import { queryParams } from "../lib/router.js";
import { color, LineChart } from "../lib/chart.js";
import { ParallelCoordinates } from "../lib/parallel.js";
import { Empty, ErrorBox, Loading, Page, StatusBadge, Table, fmtNum, shortId } from "../lib/components.js";

const POINTS = 1000;
const DEFAULT_CHARTS = 12;
const MAX_AXES = 15;
// Metrics whose name says lower is better; every other metric is best when highest.
const LOWER_IS_BETTER = /loss|err|mse|mae|rmse|perplex|latency|duration|time|wer|cer|cost/i;
const DIFFERS = { background: "#fffaeb" };

function Swatch({ c }) {
  return html`<span aria-hidden="true" style=${{ display: "inline-block", width: "12px", height: "12px", borderRadius: "3px", background: c, marginRight: "6px", verticalAlign: "-1px" }}></span>`;
}

function runLabel(run) {
  return run.name || shortId(run.id);
}

function RunHeader({ runs }) {
  return html`<ol data-testid="compare-runs" style=${{ display: "flex", flexWrap: "wrap", gap: "8px 18px", listStyle: "none", padding: 0, margin: "0 0 10px" }}>
    ${runs.map((run, i) => html`<li data-run-id=${run.id} data-color=${color(i)} class="card" style=${{ padding: "6px 10px" }}>
      <${Swatch} c=${color(i)}/><a href=${`/runs/${run.id}`} title=${run.id}><strong>${runLabel(run)}</strong></a>
      <span class="muted"> in </span><a href=${`/experiments/${encodeURIComponent(run.experiment)}`}>${run.experiment}</a>
      <span> </span><${StatusBadge} status=${run.status}/>
    </li>`)}
  </ol>`;
}

function MetricPicker({ keys, chosen, onChange }) {
  const toggle = (k) => onChange(chosen.includes(k) ? chosen.filter((c) => c !== k) : keys.filter((c) => chosen.includes(c) || c === k));
  return html`<details class="columns" data-testid="metric-picker">
    <summary>Metrics (${chosen.length} of ${keys.length} shown)</summary>
    <div style=${{ display: "flex", gap: "8px", margin: "4px 0 8px" }}>
      <button type="button" onClick=${() => onChange(keys)}>All</button>
      <button type="button" onClick=${() => onChange([])}>None</button>
    </div>
    <div class="column-groups"><fieldset><legend>metrics</legend>${keys.map((k) => html`<label>
      <input type="checkbox" name="metric" value=${k} checked=${chosen.includes(k)} onChange=${() => toggle(k)}/> ${k}</label>`)}
    </fieldset></div>
  </details>`;
}

// {metric: [{label, color, x, y}]} for one choice of x axis: only the runs that logged each metric.
function seriesByMetric(runs, series, keys, xMode) {
  const out = {};
  for (const key of keys) {
    out[key] = [];
    runs.forEach((run, i) => {
      const s = (series[run.id] || {})[key];
      if (!s || !s.step.length) return;
      const [x, y] = xMode === "time" ? ascending(s.time, s.value) : [s.step, s.value];
      out[key].push({ label: runLabel(run), color: color(i), x, y });
    });
  }
  return out;
}

// x and y ordered by x (a chart needs x ascending; times usually are, as logged).
function ascending(x, y) {
  if (x.every((v, i) => i === 0 || v >= x[i - 1])) return [x, y];
  const order = x.map((_, i) => i).sort((i, j) => x[i] - x[j]);
  return [order.map((i) => x[i]), order.map((i) => y[i])];
}

function mergeSeries(a, b) {
  const out = { ...a };
  for (const [id, byKey] of Object.entries(b)) out[id] = { ...(out[id] || {}), ...byKey };
  return out;
}

// The series the first answer brought, and more fetched when the picker shows other metrics.
function useSeries(data, asked) {
  const [more, setMore] = useState({ keys: [], series: {} });
  const [error, setError] = useState(null);
  const asking = useRef(new Set(data.series_keys));
  const want = (keys) => {
    const missing = keys.filter((k) => !asking.current.has(k));
    if (!missing.length) return;
    missing.forEach((k) => asking.current.add(k));
    const query = new URLSearchParams({ runs: asked, points: String(POINTS) });
    missing.forEach((k) => query.append("metric", k));
    api.get(`/ui/compare?${query}`).then(
      (answer) => setMore((m) => ({ keys: [...m.keys, ...missing], series: mergeSeries(m.series, answer.series) })),
      (err) => { missing.forEach((k) => asking.current.delete(k)); setError(err); },
    );
  };
  const series = useMemo(() => mergeSeries(data.series, more.series), [data, more]);
  const loaded = new Set([...data.series_keys, ...more.keys]);
  return { series, loaded, error, want };
}

function Charts({ data, asked }) {
  const keys = data.metric_keys;
  const [chosen, setChosen] = useState(keys.slice(0, DEFAULT_CHARTS));
  const [xMode, setXMode] = useState("step");
  const [smoothing, setSmoothing] = useState(0);
  const [logY, setLogY] = useState(false);
  const { series, loaded, error, want } = useSeries(data, asked);
  const byMetric = useMemo(() => seriesByMetric(data.runs, series, keys, xMode), [data, series, keys, xMode]);
  const pick = (next) => { setChosen(next); want(next); };
  return html`<section data-testid="charts">
    <h2>Metric curves</h2>
    <div class="toolbar">
      <${MetricPicker} keys=${keys} chosen=${chosen} onChange=${pick}/>
      <span role="radiogroup" aria-label="x axis">x axis:
        ${[["step", "step"], ["time", "time since start (s)"]].map(([v, label]) => html`<label style=${{ marginLeft: "6px" }}>
          <input type="radio" name="x-axis" value=${v} checked=${xMode === v} onChange=${() => setXMode(v)}/> ${label}</label>`)}
      </span>
      <label style=${{ display: "inline-flex", alignItems: "center", gap: "6px" }}>smoothing <input type="range" name="smoothing" min="0" max="0.99" step="0.01" value=${smoothing}
        onInput=${(e) => setSmoothing(parseFloat(e.target.value))}/> <output>${smoothing.toFixed(2)}</output></label>
      <label><input type="checkbox" name="log-scale" checked=${logY} onChange=${(e) => setLogY(e.target.checked)}/> log scale</label>
    </div>
    <${ErrorBox} error=${error}/>
    ${chosen.length ? null : html`<${Empty}>No metric chosen: pick some under “Metrics”.</${Empty}>`}
    <div class="grid">${chosen.map((key) => html`<div class="card" key=${key} data-metric=${key}>
      <h3>${key} <span class="muted">(${byMetric[key].length} of ${data.runs.length} runs)</span></h3>
      ${loaded.has(key) ? html`<${LineChart} series=${byMetric[key]} xLabel=${xMode === "time" ? "time since start (s)" : "step"} logY=${logY} smoothing=${smoothing} height=${240}/>`
        : html`<${Loading} what=${key}/>`}
    </div>`)}</div>
  </section>`;
}

function sameValues(values) {
  return new Set(values.map((v) => (v === undefined || v === null ? "\u0000" : String(v)))).size <= 1;
}

function runColumns(runs, cell) {
  return runs.map((run, i) => ({
    key: `run-${run.id}`,
    label: html`<${Swatch} c=${color(i)}/>${runLabel(run)}`,
    render: (row) => cell(row, run),
  }));
}

function ParamsDiff({ runs, keys }) {
  const [onlyDiffering, setOnlyDiffering] = useState(true);
  const rows = keys.map((key) => ({ key, differs: !sameValues(runs.map((r) => r.params[key])) }));
  const shown = onlyDiffering ? rows.filter((r) => r.differs) : rows;
  const columns = [
    { key: "param", label: "param", render: (row) => html`${row.key}${row.differs ? html` <span title="values differ" aria-label="values differ">≠</span>` : null}` },
    ...runColumns(runs, (row, run) => run.params[row.key] ?? "—"),
  ];
  return html`<section data-testid="params-diff">
    <h2>Params</h2>
    <div class="toolbar">
      <label><input type="checkbox" name="only-differing" checked=${onlyDiffering} onChange=${(e) => setOnlyDiffering(e.target.checked)}/> only differing</label>
      <span class="muted" data-testid="params-count">${rows.filter((r) => r.differs).length} of ${rows.length} params differ</span>
    </div>
    ${shown.length ? html`<${Table} testid="params-table" columns=${columns} rows=${shown} rowKey=${(r) => r.key}
        rowAttrs=${(r) => ({ "data-param": r.key, "data-differs": r.differs ? "true" : "false", style: r.differs ? DIFFERS : null })}/>`
      : html`<${Empty}>${rows.length ? "Every param has the same value in these runs." : "These runs have no params."}</${Empty}>`}
  </section>`;
}

function bestOf(key, values) {
  const nums = values.filter((v) => typeof v === "number" && Number.isFinite(v));
  if (nums.length < 2) return null;
  return LOWER_IS_BETTER.test(key) ? Math.min(...nums) : Math.max(...nums);
}

function MetricsTable({ runs, keys }) {
  const rows = keys.map((key) => ({ key, best: bestOf(key, runs.map((r) => r.metrics[key])) }));
  const columns = [
    { key: "metric", label: "metric", render: (row) => html`${row.key} <span class="muted" title=${LOWER_IS_BETTER.test(row.key) ? "lower is better" : "higher is better"}>${LOWER_IS_BETTER.test(row.key) ? "↓" : "↑"}</span>` },
    ...runColumns(runs, (row, run) => {
      const v = run.metrics[row.key];
      const best = row.best !== null && v === row.best;
      return best ? html`<strong data-best="true">${fmtNum(v)} <span aria-label="best" title="best">★</span></strong>` : fmtNum(v);
    }).map((c) => ({ ...c, className: "num" })),
  ];
  return html`<section data-testid="metrics-latest">
    <h2>Latest metrics</h2>
    ${rows.length ? html`<${Table} testid="metrics-table" columns=${columns} rows=${rows} rowKey=${(r) => r.key} rowAttrs=${(r) => ({ "data-metric-row": r.key })}/>`
      : html`<${Empty}>These runs have logged no metrics.</${Empty}>`}
  </section>`;
}

function asNumber(v) {
  if (v === undefined || v === null || String(v).trim() === "") return null;
  const n = Number(v);
  return Number.isFinite(n) ? n : NaN;
}

// Axes of the params that differ (numeric where every value is a number) and the chosen metric.
function parallelData(runs, paramKeys, metric) {
  const differing = paramKeys.filter((k) => !sameValues(runs.map((r) => r.params[k])));
  const axes = differing.slice(0, MAX_AXES).map((k) => {
    const nums = runs.map((r) => asNumber(r.params[k])).filter((n) => n !== null);
    const kind = nums.length && nums.every((n) => !Number.isNaN(n)) ? "numeric" : "categorical";
    return { key: `params.${k}`, label: k, kind, read: (run) => run.params[k] };
  });
  if (metric) axes.push({ key: `metrics.${metric}`, label: metric, kind: "numeric", note: "metric", read: (run) => run.metrics[metric] });
  const rows = runs.map((run) => {
    const values = {};
    for (const a of axes) values[a.key] = a.kind === "numeric" ? asNumber(a.read(run)) : a.read(run) ?? null;
    return { id: run.id, label: runLabel(run), values };
  });
  return { axes, rows, hidden: differing.length - axes.length + (metric ? 1 : 0) };
}

// The metric to colour by first: one every run logged, else the first there is.
function defaultMetric(runs, metricKeys) {
  return metricKeys.find((k) => runs.every((r) => r.metrics[k] !== undefined && r.metrics[k] !== null)) || metricKeys[0] || "";
}

function Parallel({ runs, paramKeys, metricKeys }) {
  const [metric, setMetric] = useState(() => defaultMetric(runs, metricKeys));
  const { axes, rows, hidden } = useMemo(() => parallelData(runs, paramKeys, metric), [runs, paramKeys, metric]);
  return html`<section data-testid="parallel-section">
    <h2>Params against a metric</h2>
    <div class="toolbar">
      <label>metric <select name="parallel-metric" value=${metric} onChange=${(e) => setMetric(e.target.value)}>
        ${metricKeys.map((k) => html`<option value=${k}>${k}</option>`)}</select></label>
      <span class="muted">axes: the params that differ${hidden ? ` (first ${MAX_AXES}; ${hidden} more not drawn)` : ""}, then the metric; colour: the metric</span>
    </div>
    <div class="card"><${ParallelCoordinates} axes=${axes} rows=${rows} colorBy=${metric ? `metrics.${metric}` : ""}/></div>
  </section>`;
}

function union(runs, field) {
  const keys = new Set();
  for (const run of runs) Object.keys(run[field] || {}).forEach((k) => keys.add(k));
  const late = (k) => (k.startsWith("system/") || k.startsWith("plinth.") ? 1 : 0);
  return [...keys].sort((a, b) => late(a) - late(b) || (a < b ? -1 : a > b ? 1 : 0)); // the run's own metrics first
}

export function ComparePage() {
  const ids = (queryParams().runs || "").split(",").map((s) => s.trim()).filter(Boolean);
  const asked = ids.join(",");
  // The first DEFAULT_CHARTS metrics' series come with the runs; the picker fetches others.
  const { data, error, loading } = useApi(
    () => (asked ? api.get("/ui/compare", { runs: asked, points: POINTS, first_metrics: DEFAULT_CHARTS }) : null),
    [asked],
  );
  const runs = data ? data.runs : [];
  const paramKeys = useMemo(() => union(runs, "params"), [data]);
  const metricKeys = useMemo(() => union(runs, "metrics"), [data]);
  const title = data ? `Compare ${runs.length} run${runs.length === 1 ? "" : "s"}` : "Compare runs";
  return html`<${Page} name="compare" title=${title} ready=${!loading}>
    <${ErrorBox} error=${error}/>
    ${!asked ? html`<${Empty}>No runs chosen: select runs in an experiment's runs table and press “Compare”, or open <code>${"/compare?runs=<run id>,<run id>"}</code>.</${Empty}>` : null}
    ${loading ? html`<${Loading} what=${`${ids.length} runs`}/>` : null}
    ${data && !loading ? html`<${RunHeader} runs=${runs}/>
      <${Charts} key=${asked} data=${data} asked=${asked}/>
      <${ParamsDiff} key=${asked} runs=${runs} keys=${paramKeys}/>
      <${MetricsTable} runs=${runs} keys=${metricKeys}/>
      <${Parallel} key=${asked} runs=${runs} paramKeys=${paramKeys} metricKeys=${metricKeys}/>` : null}
  </${Page}>`;
}
