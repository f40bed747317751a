// A run: params, tags, status with its reason, environment and code version, metric charts (step or
// time on x, smoothing, log scale), system metrics and cost, datasets with profiles, artifacts.
import { html, useEffect, useMemo, useRef, useState } from "../vendor/standalone.module.js";
import { api } from "../lib/api.js";
import { useApi } from "../lib/hooks.js";
import { navigate, queryParams, urlWith } from "../lib/router.js";
import { LineChart } from "../lib/chart.js";
import { ArtifactBrowser } from "../lib/preview.js";
import {
  Empty, ErrorBox, KeyValue, Loading, Page, StatusBadge, Table, Tabs, fmt, fmtBytes, fmtDuration, fmtNum, fmtTime,
} from "../lib/components.js";

const TABS = [["overview", "Overview"], ["metrics", "Metrics"], ["artifacts", "Artifacts"], ["datasets", "Datasets"], ["system", "System"]];
const X_AXES = [["step", "step"], ["relative", "time since start (s)"], ["wall", "wall clock time"]];
const PACKAGES_SHOWN = 400;
const HOURS = /_hours(_used)?$/; // plinth's running resource totals (system/cpu_hours, ...)

function runPath(id, rest = "") {
  return `/ui/runs/${encodeURIComponent(id)}${rest}`;
}

// ---- overview -------------------------------------------------------------------------------

function reasonOf(run) {
  if (run.error) return run.error;
  if (run.status === "CRASHED") {
    return `No heartbeat since ${fmtTime(run.heartbeat_ms)}: the process stopped without ending the run (killed, out of memory, or the machine went away).`;
  }
  if (run.status === "FAILED" || run.status === "KILLED") return "No reason was recorded.";
  return null;
}

function StatusCard({ run }) {
  const reason = reasonOf(run);
  return html`<section class="card" data-testid="run-status">
    <h3>Status <${StatusBadge} status=${run.status}/></h3>
    ${reason ? html`<pre class=${run.error ? "preview" : ""} data-testid="run-error" style=${{ whiteSpace: "pre-wrap", margin: 0 }}>${reason}</pre>` : null}
  </section>`;
}

function InfoCard({ run }) {
  const items = [
    ["Run id", html`<code>${run.id}</code>`],
    ["Name", run.name],
    ["Experiment", html`<a href=${`/experiments/${encodeURIComponent(run.experiment.name)}`} data-testid="experiment-link">${run.experiment.name}</a>`],
    ["User", run.user],
    ["Started", fmtTime(run.start_ms)],
    ["Ended", run.end_ms ? fmtTime(run.end_ms) : run.status === "RUNNING" ? "still running" : "—"],
    ["Duration", fmtDuration(run.duration_ms ?? (run.status === "RUNNING" ? Date.now() - run.start_ms : null))],
  ];
  if (run.status !== "FINISHED" && run.heartbeat_ms) items.push(["Last heartbeat", fmtTime(run.heartbeat_ms)]);
  if (run.flow_run) items.push(["Flow run", html`<a href=${`/flows/${encodeURIComponent(run.flow_run)}`}>${run.flow_run}</a>`]);
  items.push(["Lineage", html`<a href=${urlWith("/lineage", { kind: "run", id: run.id })}>datasets, models and files of this run</a>`]);
  return html`<section class="card"><h3>Run</h3><${KeyValue} testid="run-info" items=${items}/></section>`;
}

function plain(key, value) {
  return typeof value === "number" ? fmtNum(value) : fmt(value);
}

// plinth's own readings in units: bytes as bytes, resource-hours as durations
function inUnits(key, value) {
  if (typeof value !== "number") return fmt(value);
  if (key.endsWith("_bytes")) return fmtBytes(value);
  if (HOURS.test(key) && !key.includes("gib_hours")) return fmtDuration(value * 3_600_000);
  if (key.endsWith("_utilization")) return `${fmtNum(Number(value.toPrecision(3)))} %`;
  return fmtNum(value);
}

function Pairs({ title, values, testid, empty, show = plain }) {
  const rows = Object.entries(values || {}).map(([key, value]) => ({ key, value }));
  return html`<section class="card"><h3>${title} <span class="muted">(${rows.length})</span></h3>
    ${rows.length ? html`<${Table} testid=${testid} columns=${[
      { key: "key", label: "Name" },
      { key: "value", label: "Value", render: (r) => show(r.key, r.value) },
    ]} rows=${rows} rowKey=${(r) => r.key} rowAttrs=${(r) => ({ "data-key": r.key })}/>` : html`<p class="muted">${empty}</p>`}
  </section>`;
}

function Packages({ packages }) {
  const [filter, setFilter] = useState("");
  const names = Object.keys(packages || {}).sort((a, b) => a.localeCompare(b));
  if (!names.length) return null;
  const shown = names.filter((n) => !filter || n.toLowerCase().includes(filter.toLowerCase()));
  return html`<details data-testid="packages" style=${{ marginTop: "10px" }}>
    <summary style=${{ cursor: "pointer" }}>${fmtNum(names.length)} installed packages</summary>
    <input name="package-filter" aria-label="filter packages" placeholder="filter packages" value=${filter}
      style=${{ margin: "8px 0", width: "100%" }} onInput=${(e) => setFilter(e.target.value)}/>
    <${Table} columns=${[{ key: "name", label: "Package" }, { key: "version", label: "Version" }]}
      rows=${shown.slice(0, PACKAGES_SHOWN).map((name) => ({ name, version: packages[name] }))} rowKey=${(r) => r.name}/>
    ${shown.length > PACKAGES_SHOWN ? html`<p class="muted">${fmtNum(shown.length - PACKAGES_SHOWN)} more; narrow the filter.</p>` : null}
  </details>`;
}

function gitItems(git) {
  if (!git) return [["Git", "not in a git repository (or git not installed)"]];
  return [
    ["Git commit", git.commit ? html`<code data-testid="git-commit" title=${git.commit}>${git.commit}</code>` : "—"],
    ["Uncommitted changes", html`<span data-testid="git-dirty">${git.dirty ? "yes (the working tree differed from the commit)" : "no"}</span>`],
    ["Branch", git.branch],
    ["Remote", git.remote],
  ];
}

function EnvironmentCard({ env }) {
  if (!env) return html`<section class="card" data-testid="environment"><h3>Environment and code</h3><p class="muted">Not captured (the run started with capture_env=False).</p></section>`;
  const py = env.python || {};
  const gpus = (env.gpus || []).map((g) => `${g.name}${g.memory_bytes ? ` (${fmtBytes(g.memory_bytes)})` : ""}`).join(", ");
  const known = new Set(["python", "platform", "host", "user", "cpu_count", "memory_bytes", "packages", "command", "git", "gpus"]);
  const items = [
    ...gitItems(env.git),
    ["Command", env.command ? html`<code>${env.command}</code>` : null],
    ["Python", [py.implementation, py.version].filter(Boolean).join(" ") || null],
    ["Interpreter", py.executable ? html`<code>${py.executable}</code>` : null],
    ["Platform", env.platform],
    ["Host", env.host],
    ["OS user", env.user],
    ["CPUs", env.cpu_count],
    ["Memory", env.memory_bytes ? fmtBytes(env.memory_bytes) : null],
    ["GPUs", gpus || "none"],
    ...Object.entries(env).filter(([k]) => !known.has(k)).map(([k, v]) => [k, fmt(v)]),
  ];
  return html`<section class="card" data-testid="environment"><h3>Environment and code</h3>
    <${KeyValue} items=${items}/>
    <${Packages} packages=${env.packages}/>
  </section>`;
}

function Overview({ run }) {
  return html`<div class="grid">
    <div><${StatusCard} run=${run}/><div style=${{ height: "14px" }}></div><${InfoCard} run=${run}/></div>
    <${EnvironmentCard} env=${run.environment}/>
    <${Pairs} title="Params" values=${run.params} testid="params" empty="No params logged."/>
    <${Pairs} title="Latest metrics" values=${run.metrics} testid="latest-metrics" empty="No metrics logged."/>
    <${Pairs} title="Tags" values=${run.tags} testid="tags" empty="No tags."/>
  </div>`;
}

// ---- metric charts --------------------------------------------------------------------------

function ChartControls({ view, setView }) {
  return html`<div class="toolbar" data-testid="chart-controls">
    <label>x axis <select name="x-axis" value=${view.x} onChange=${(e) => setView({ ...view, x: e.target.value })}>
      ${X_AXES.map(([value, label]) => html`<option value=${value}>${label}</option>`)}
    </select></label>
    <label style=${{ display: "inline-flex", alignItems: "center", gap: "6px" }}>smoothing <input type="range" name="smoothing" min="0" max="0.99" step="0.01" value=${view.smoothing}
      onInput=${(e) => setView({ ...view, smoothing: Number(e.target.value) })}/>
      <output data-testid="smoothing-value">${view.smoothing.toFixed(2)}</output></label>
    <label><input type="checkbox" name="log-scale" checked=${view.logY} onChange=${(e) => setView({ ...view, logY: e.target.checked })}/> log scale</label>
  </div>`;
}

function xValues(doc, mode, startMs) {
  if (mode === "step") return doc.step;
  if (mode === "wall") return doc.time_ms.map((t) => t / 1000);
  return doc.time_ms.map((t) => (t - startMs) / 1000);
}

// Every named series of the run, fetched side by side (each once per page: switching tabs or
// axes reuses them); a series that fails to load is an error of its own card only.
function useSeries(run, names, cache) {
  return useApi(() => Promise.allSettled(names.map((name) => {
    const key = `${run.id}\u0000${name}`;
    if (!cache.has(key)) cache.set(key, api.get(runPath(run.id, "/metric"), { key: name }).catch((err) => { cache.delete(key); throw err; }));
    return cache.get(key);
  })), [run.id, names.join("\u0000")]);
}

function MetricCard({ run, name, found, view }) {
  const data = found.status === "fulfilled" ? found.value : null;
  const series = useMemo(
    () => (data ? [{ label: name, x: xValues(data, view.x, run.start_ms), y: data.value }] : []),
    [data, view.x, name, run.start_ms],
  );
  const positive = data ? data.value.some((v) => v !== null && v > 0) : false;
  const latest = (run.metrics || {})[name] ?? (run.system_metrics || {})[name];
  return html`<section class="card" data-testid="metric-card" data-metric=${name}>
    <h3 style=${{ display: "flex", justifyContent: "space-between", gap: "8px" }}>
      <span>${name}</span><span class="muted" data-testid="latest">${fmtNum(latest)}</span>
    </h3>
    <${ErrorBox} error=${found.status === "rejected" ? found.reason : null}/>
    ${data ? html`<${LineChart} series=${series} xLabel=${X_AXES.find(([v]) => v === view.x)[1]} time=${view.x === "wall"}
        logY=${view.logY && positive} smoothing=${view.smoothing} height=${220}/>
      <p class="muted" style=${{ margin: "4px 0 0" }} data-testid="point-count">${data.count > data.points
        ? `${fmtNum(data.count)} points, ${fmtNum(data.points)} drawn (each bucket's min and max kept)`
        : `${fmtNum(data.count)} points`}${view.logY && !positive ? " · no positive values: linear scale" : ""}</p>` : null}
  </section>`;
}

function MetricGrid({ run, names, view, setView, cache, empty, onReady }) {
  const [filter, setFilter] = useState("");
  const { data, error, loading } = useSeries(run, names, cache);
  useEffect(() => { if (!loading) onReady(); }, [loading]);
  if (!names.length) return html`<${Empty}>${empty}</${Empty}>`;
  // curves first: a metric logged once is a number more than a chart
  const once = (found) => (found && found.status === "fulfilled" && found.value.count <= 1 ? 1 : 0);
  const shown = names.map((name, i) => [name, data && data[i]])
    .filter(([n]) => !filter || n.toLowerCase().includes(filter.toLowerCase()))
    .sort(([, a], [, b]) => once(a) - once(b));
  return html`<div>
    <div class="toolbar">
      <${ChartControls} view=${view} setView=${setView}/>
      ${names.length > 8 ? html`<input name="metric-filter" aria-label="filter metrics" placeholder="filter metrics" value=${filter} onInput=${(e) => setFilter(e.target.value)}/>` : null}
    </div>
    ${loading ? html`<${Loading} what=${`${fmtNum(names.length)} series`}/>` : null}
    <${ErrorBox} error=${error}/>
    ${data ? html`<div class="grid" data-testid="charts">
      ${shown.map(([name, found]) => html`<${MetricCard} key=${name} run=${run} name=${name} found=${found} view=${view}/>`)}
    </div>` : null}
  </div>`;
}

// ---- system metrics and cost ------------------------------------------------------------------

function CostCard({ cost }) {
  if (!cost) return html`<section class="card" data-testid="cost"><h3>Cost</h3><p class="muted">No resource use recorded for this run.</p></section>`;
  // resource-hours read best as durations while they are short: "CPU time 3.4 s", "GPU time 2 h 5 min"
  const hours = (h) => (h === null || h === undefined ? "—" : h >= 100 ? `${fmtNum(Math.round(h))} h` : fmtDuration(h * 3_600_000));
  const items = [
    ["Measured", cost.measured ? "yes (sampled while it ran)" : "estimated from its wall time and allocation"],
    ["Wall time", hours(cost.wall_hours)],
    ["CPU time (allocated)", hours(cost.cpu_hours)],
    ["CPU time (used)", hours(cost.cpu_hours_used)],
    ["GPU time (allocated)", hours(cost.gpu_hours)],
    ["GPU time (used)", hours(cost.gpu_hours_used)],
    ["Memory GiB-hours", cost.memory_gib_hours === null ? "—" : fmtNum(Number(cost.memory_gib_hours.toPrecision(3)))],
    ["Cost", cost.cost === null ? "no prices set (PLINTH_PRICE_CPU_HOUR, PLINTH_PRICE_GPU_HOUR, PLINTH_PRICE_MEMORY_GB_HOUR)" : fmtNum(Number(cost.cost.toPrecision(3)))],
  ];
  return html`<section class="card" data-testid="cost"><h3>Cost</h3><${KeyValue} items=${items}/></section>`;
}

function SystemTab({ run, view, setView, cache, onReady }) {
  // readings first, running totals (`*_hours`) after them
  const names = Object.keys(run.system_metrics || {}).sort((a, b) => HOURS.test(a) - HOURS.test(b) || a.localeCompare(b));
  return html`<div>
    <div class="grid" style=${{ marginBottom: "14px" }}>
      <${CostCard} cost=${run.cost}/>
      <${Pairs} title="Latest system values" values=${run.system_metrics} testid="system-latest" show=${inUnits} empty="No system metrics were sampled."/>
    </div>
    <${MetricGrid} run=${run} names=${names} view=${view} setView=${setView} cache=${cache} onReady=${onReady}
      empty="No system metrics: the run ended before its first sample, or sampling was off (PLINTH_SYSTEM_METRICS)."/>
  </div>`;
}

// ---- datasets ---------------------------------------------------------------------------------

function distribution(col) {
  if (col.kind === "numeric") {
    const parts = [["min", col.min], ["mean", col.mean], ["max", col.max], ["std", col.std]].filter(([, v]) => v !== null && v !== undefined);
    return parts.map(([k, v]) => `${k} ${fmtNum(v)}`).join(" · ");
  }
  if (col.top) {
    const top = col.top.slice(0, 3).map(([v, n]) => `${v} (${fmtNum(n)})`).join(", ");
    return `${fmtNum(col.distinct)} distinct: ${top}${col.top.length > 3 || col.other_count ? ", …" : ""}`;
  }
  if (col.min !== undefined) return `${col.min ?? "—"} … ${col.max ?? "—"}`;
  return "";
}

function Histogram({ counts }) {
  if (!counts || !counts.length) return null;
  const most = Math.max(...counts, 1);
  return html`<span aria-hidden="true" style=${{ display: "inline-flex", alignItems: "flex-end", gap: "1px", height: "18px" }}>
    ${counts.map((n) => html`<span style=${{ width: "5px", height: `${Math.max(1, Math.round((18 * n) / most))}px`, background: "#2f6fb3" }}></span>`)}
  </span>`;
}

function DatasetCard({ ds, direction }) {
  if (ds.missing) return html`<section class="card"><h3>${direction}: unknown dataset version <code>${ds.id}</code></h3><p class="muted">It is no longer in the store (erased or removed).</p></section>`;
  const columns = (ds.profile && ds.profile.columns) || [];
  return html`<section class="card" data-testid="dataset" data-dataset=${ds.ref}>
    <h3><a href=${urlWith("/lineage", { kind: "dataset", id: ds.ref })}>${ds.ref}</a> <span class="badge muted">${direction}: ${ds.role}</span></h3>
    <${KeyValue} items=${[
      ["Rows", fmtNum(ds.rows)], ["Size", fmtBytes(ds.size)], ["Columns", fmtNum(columns.length || ds.schema.length)],
      ["Source", ds.source], ["Recorded", fmtTime(ds.created_ms)], ["sha256", html`<code>${ds.digest}</code>`],
    ]}/>
    <h3>Profile</h3>
    <${Table} testid="dataset-profile" columns=${[
      { key: "name", label: "Column" },
      { key: "dtype", label: "Type" },
      { key: "kind", label: "Kind" },
      { key: "missing_rate", label: "Missing", render: (c) => `${fmtNum(Number((100 * (c.missing_rate || 0)).toPrecision(3)))} %` },
      { key: "dist", label: "Distribution", render: (c) => distribution(c) },
      { key: "hist", label: "", render: (c) => html`<${Histogram} counts=${c.histogram && c.histogram.counts}/>` },
    ]} rows=${columns} rowKey=${(c) => c.name}/>
  </section>`;
}

function DatasetsTab({ run, onReady }) {
  const { data, error, loading } = useApi(() => api.get(runPath(run.id, "/datasets")), [run.id]);
  useEffect(() => { if (!loading) onReady(); }, [loading]);
  if (loading) return html`<${Loading} what="datasets"/>`;
  if (error) return html`<${ErrorBox} error=${error}/>`;
  const all = [...data.consumed.map((ds) => ["used", ds]), ...data.produced.map((ds) => ["produced", ds])];
  if (!all.length) return html`<${Empty}>This run recorded no datasets (run.log_dataset(df, name) records one with its profile).</${Empty}>`;
  return html`<div style=${{ display: "grid", gap: "14px" }} data-testid="datasets">
    ${all.map(([direction, ds]) => html`<${DatasetCard} key=${`${direction}:${ds.id}`} ds=${ds} direction=${direction}/>`)}
  </div>`;
}

// ---- the page ---------------------------------------------------------------------------------

export function RunPage({ params }) {
  const id = params.id;
  const q = queryParams();
  const tab = TABS.some(([t]) => t === q.tab) ? q.tab : "overview";
  const { data: run, error, loading } = useApi(() => api.get(runPath(id)), [id]);
  const [view, setView] = useState({ x: "step", smoothing: 0, logY: false });
  const cache = useRef(new Map()).current;
  const [readyTab, setReadyTab] = useState("overview"); // the tab whose own data is shown
  const go = (changes) => navigate(urlWith(`/runs/${encodeURIComponent(id)}`, { ...q, ...changes }), { replace: true });

  useEffect(() => {
    if (run) document.title = `${run.name || run.id} · plinth`;
    return () => { document.title = "plinth"; };
  }, [run]);

  if (loading && !run) return html`<${Page} name="run" title="Run" ready=${false}><${Loading} what="run"/></${Page}>`;
  if (error) {
    return html`<${Page} name="run" title=${html`<a href="/experiments">Experiments</a> / run ${id}`}>
      <${ErrorBox} error=${error}/>
      <p><a href="/experiments">Back to the experiments</a></p>
    </${Page}>`;
  }
  const userNames = Object.keys(run.metrics || {});
  const count = { metrics: userNames.length, system: Object.keys(run.system_metrics || {}).length, artifacts: run.artifacts.files };
  const tabs = TABS.map(([t, label]) => [t, count[t] ? `${label} (${count[t]})` : label]);
  const title = html`<a href=${`/experiments/${encodeURIComponent(run.experiment.name)}`}>${run.experiment.name}</a> / ${run.name || run.id} <${StatusBadge} status=${run.status}/>`;
  const ready = tab === "overview" || readyTab === tab;
  const onReady = () => setReadyTab(tab);
  return html`<${Page} name="run" title=${title} ready=${ready}>
    <${Tabs} tabs=${tabs} current=${tab} onSelect=${(t) => { if (t !== tab) setReadyTab(null); go({ tab: t === "overview" ? "" : t, path: t === "artifacts" ? q.path : "" }); }}/>
    ${tab === "overview" ? html`<${Overview} run=${run}/>` : null}
    ${tab === "metrics" ? html`<${MetricGrid} run=${run} names=${userNames} view=${view} setView=${setView} cache=${cache} onReady=${onReady}
        empty="No metrics logged (run.log_metric(key, value) adds one)."/>` : null}
    ${tab === "artifacts" ? html`<${ArtifactBrowser} runId=${run.id} chosen=${q.path || null} onChoose=${(path) => go({ path })} onReady=${onReady}/>` : null}
    ${tab === "datasets" ? html`<${DatasetsTab} run=${run} onReady=${onReady}/>` : null}
    ${tab === "system" ? html`<${SystemTab} run=${run} view=${view} setView=${setView} cache=${cache} onReady=${onReady}/>` : null}
  </${Page}>`;
}
