// Flow runs: the list (filtered by flow and status), and one run's page: the graph of its step
// calls with live statuses, a Gantt of their timing, the steps table (attempts, cache hits,
// workers, errors), each call's output, and resume of a failed run.
import { html, useState } from "../vendor/standalone.module.js";
import { api } from "../lib/api.js";
import { useApi, useInterval } from "../lib/hooks.js";
import { navigate, queryParams, urlWith } from "../lib/router.js";
import { Graph } from "../lib/graph.js";
import {
  Empty, ErrorBox, KeyValue, Loading, Page, StatusBadge, Table, fmtDuration, fmtTime, shortId,
} from "../lib/components.js";

const POLL_MS = 2000;
const BAR_COLOUR = {
  FINISHED: "#1b7f3b", CACHED: "#98a2b3", FAILED: "#b42318", CRASHED: "#b42318",
  RUNNING: "#175cd3", PENDING: "#175cd3", CANCELLED: "#b54708",
};

export function FlowsPage() {
  const q = queryParams();
  const flow = q.flow || "";
  const status = q.status || "";
  const { data, error, reload } = useApi(() => api.get("/ui/flow-runs", { flow, status }), [flow, status]);
  const live = Boolean(data && data.runs.some((r) => r.status === "RUNNING"));
  useInterval(() => reload(), live ? POLL_MS : 0);
  const go = (changes) => navigate(urlWith("/flows", { flow, status, ...changes }));
  const columns = [
    { key: "flow", label: "Flow", render: (r) => html`<a href=${`/flows/${r.id}`} data-testid="flow-run-link">${r.flow}</a>` },
    { key: "id", label: "Run", render: (r) => html`<code title=${r.id}>${shortId(r.id)}</code>` },
    { key: "status", label: "Status", render: (r) => html`<${StatusBadge} status=${r.status}/>` },
    { key: "start_ms", label: "Started", render: (r) => fmtTime(r.start_ms) },
    { key: "duration_ms", label: "Duration", render: (r) => fmtDuration(r.duration_ms), className: "num" },
    { key: "user", label: "User" },
    { key: "steps", label: "Steps done", render: stepsText, className: "num" },
    { key: "trigger", label: "Trigger", render: (r) => (r.resumed_from ? html`resume of <a href=${`/flows/${r.resumed_from}`}>${shortId(r.resumed_from)}</a>` : r.trigger) },
  ];
  return html`<${Page} name="flows" title="Flows" ready=${Boolean(data || error)}>
    <div class="toolbar">
      <label>Flow <select name="flow" value=${flow} onChange=${(e) => go({ flow: e.target.value })}>
        <option value="">All flows</option>
        ${(data ? data.flows : flow ? [flow] : []).map((f) => html`<option value=${f}>${f}</option>`)}
      </select></label>
      <label>Status <select name="status" value=${status} onChange=${(e) => go({ status: e.target.value })}>
        <option value="">Any status</option>
        ${(data ? data.statuses : []).map((s) => html`<option value=${s}>${s}</option>`)}
      </select></label>
      ${data ? html`<span class="muted" data-testid="flow-run-count">${countText(data)}</span>` : null}
    </div>
    <${ErrorBox} error=${error}/>
    ${!data && !error ? html`<${Loading}/>` : null}
    ${data && !data.runs.length ? html`<${Empty}>${flow || status ? "No flow runs match." : html`No flow runs yet: run one with <code>plinth flows run FILE.py</code>.`}</${Empty}>` : null}
    ${data && data.runs.length ? html`<${Table} testid="flow-runs-table" columns=${columns} rows=${data.runs}
      rowKey=${(r) => r.id} rowAttrs=${(r) => ({ "data-flow-run-id": r.id, "data-status": r.status })}/>` : null}
  </${Page}>`;
}

function countText(data) {
  const shown = data.runs.length;
  return shown < data.total ? `${shown} of ${data.total} flow runs` : `${data.total} flow run${data.total === 1 ? "" : "s"}`;
}

function stepsText(r) {
  const cached = r.steps_cached ? ` (${r.steps_cached} cached)` : "";
  return `${r.steps_done}/${r.steps_total}${cached}`;
}

export function FlowRunPage({ params, session }) {
  const id = params.id;
  const { data, error, reload } = useApi(() => api.get(`/ui/flow-runs/${encodeURIComponent(id)}`), [id]);
  const [chosen, setChosen] = useState(null);
  const polling = Boolean(data && (data.live || data.resume.resuming));
  useInterval(() => reload(), polling ? POLL_MS : 0);
  if (!data) {
    return html`<${Page} name="flow-run" title=${`Flow run ${shortId(id)}`} ready=${Boolean(error)}>
      <${ErrorBox} error=${error}/>${error ? null : html`<${Loading}/>`}</${Page}>`;
  }
  const { run, steps } = data;
  const selected = steps.find((s) => s.call === chosen) || defaultStep(steps);
  const title = html`<a href="/flows">Flows</a> / ${run.flow} <code title=${run.id}>${shortId(run.id)}</code>${" "}<${StatusBadge} status=${run.status}/>`;
  return html`<${Page} name="flow-run" title=${title} ready=${true}
      actions=${html`<${ResumeAction} data=${data} session=${session} onChanged=${reload}/>`}>
    <${ErrorBox} error=${error}/>
    <${Overview} run=${run} live=${data.live}/>
    <h2>Graph</h2>
    ${steps.length
      ? html`<${Graph} testid="flow-dag" nodes=${steps.map(stepNode)} edges=${data.edges}
          selected=${selected ? selected.call : null} onNodeClick=${(n) => setChosen(n.id)}/>`
      : html`<${Empty}>No step has been called yet.</${Empty}>`}
    <h2>Timing</h2>
    <${Gantt} steps=${steps} run=${run}/>
    <h2>Steps</h2>
    <${StepsTable} steps=${steps} selected=${selected} onSelect=${setChosen}/>
    ${selected ? html`<${StepLog} runId=${run.id} step=${selected}/>` : null}
  </${Page}>`;
}

function defaultStep(steps) {
  return steps.find((s) => s.status === "FAILED") || steps.find((s) => s.has_log) || steps[0] || null;
}

function stepNode(s) {
  const detail = s.attempts > 1 ? `${s.attempts} attempts` : ""; // a cache hit says so in its status
  return { id: s.call, label: s.call, kind: "step", status: s.status, detail };
}

function Overview({ run, live }) {
  const link = (rid) => html`<a href=${`/flows/${rid}`}>${shortId(rid)}</a>`;
  const items = [
    ["Status", html`<${StatusBadge} status=${run.status}/>${live ? html` <span class="muted">(updates every 2 s)</span>` : null}`],
    ["Flow", html`<a href=${urlWith("/flows", { flow: run.flow })}>${run.flow}</a>`],
    ["Run id", html`<code>${run.id}</code>`],
    ["Started", fmtTime(run.start_ms)],
    ["Duration", run.duration_ms !== null ? fmtDuration(run.duration_ms) : live ? `running for ${fmtDuration(Date.now() - run.start_ms)}` : null],
    ["User", run.user],
    ["Trigger", run.trigger],
    ["Steps done", stepsText(run)],
    ["Params", html`<code>${JSON.stringify(run.params)}</code>`],
    ["Source", html`<code>${run.source}</code>`],
  ];
  if (run.driver) items.push(["Driver", run.driver]);
  if (run.resumed_from) items.push(["Resumed from", link(run.resumed_from)]);
  if (run.resumed_by.length) items.push(["Resumed as", html`<span data-testid="resumed-by">${run.resumed_by.map((r, i) => html`${i ? ", " : ""}${link(r)}`)}</span>`]);
  if (run.error) items.push(["Error", html`<pre class="run-error" style=${{ whiteSpace: "pre-wrap", margin: 0 }}>${run.error}</pre>`]);
  return html`<${KeyValue} testid="flow-run-overview" items=${items}/>`;
}

function ResumeAction({ data, session, onChanged }) {
  const [busy, setBusy] = useState(false);
  const [problem, setProblem] = useState(null);
  const { run, resume } = data;
  if (!resume.possible) return null;
  const mayWrite = Boolean(session && session.me && session.me.rights.includes("write"));
  if (resume.resuming || busy) return html`<span class="muted" data-testid="resuming">Resuming…</span>`;
  if (!(resume.allowed && mayWrite)) {
    const why = !resume.allowed ? "This server does not resume flow runs; run this where the flow's code lives:" : "Resuming needs the right to write; someone who has it can run:";
    const copy = () => { if (navigator.clipboard) navigator.clipboard.writeText(resume.command).catch(() => null); };
    return html`<div class="resume-help"><span class="muted">${why}</span>
      <code data-testid="resume-command">${resume.command}</code>
      ${navigator.clipboard ? html`<button class="link" onClick=${copy}>Copy</button>` : null}</div>`;
  }
  const start = async () => {
    setBusy(true);
    setProblem(null);
    try {
      const answer = await api.post(`/ui/flow-runs/${encodeURIComponent(run.id)}/resume`);
      if (answer.flow_run_id) navigate(`/flows/${answer.flow_run_id}`);
      else onChanged();
    } catch (err) {
      setProblem(err);
    } finally {
      setBusy(false);
    }
  };
  return html`<div><button class="primary" data-testid="resume" onClick=${start}>Resume</button>
    <${ErrorBox} error=${problem} testid="resume-error"/></div>`;
}

// One row per step call: a bar from its start to its end on the flow run's time axis.
function Gantt({ steps, run }) {
  if (!steps.length) return html`<${Empty}>No timings yet.</${Empty}>`;
  const now = Date.now();
  const endOf = (s) => (s.end_ms ?? (s.status === "RUNNING" ? now : s.start_ms ?? run.start_ms));
  const last = Math.max(run.end_ms ?? now, ...steps.map(endOf));
  const span = Math.max(last - run.start_ms, 1);
  const pct = (ms) => `${Math.min(100, Math.max(0, (100 * ms) / span))}%`;
  return html`<div class="gantt card" data-testid="gantt" data-span-ms=${span}>
    <div style=${{ display: "grid", gridTemplateColumns: "minmax(120px, max-content) 1fr minmax(150px, max-content)", gap: "4px 12px", alignItems: "center" }}>
      ${steps.map((s) => {
        const offset = s.offset_ms ?? 0;
        const duration = s.duration_ms ?? (s.status === "RUNNING" ? now - (s.start_ms ?? now) : 0);
        const text = `+${fmtDuration(offset)} · ${s.cached ? "cache hit" : fmtDuration(duration)}`;
        return html`<span class="gantt-label" style=${{ fontFamily: "monospace", fontSize: "12px" }}>${s.call}</span>
          <div class="gantt-track" style=${{ position: "relative", height: "16px", background: "#f2f4f7", borderRadius: "3px" }}>
            <div class="gantt-bar" data-call=${s.call} data-status=${s.status} data-offset-ms=${offset} data-duration-ms=${duration}
              title=${`${s.call}: starts at ${text.slice(1)} (${s.status})`}
              style=${{ position: "absolute", left: pct(offset), width: `max(3px, ${pct(duration)})`, top: "2px", bottom: "2px",
                background: BAR_COLOUR[s.status] || "#98a2b3", borderRadius: "3px" }}></div>
          </div>
          <span class="gantt-text muted" style=${{ fontSize: "12px", whiteSpace: "nowrap" }}>${text} · ${s.status}</span>`;
      })}
    </div>
    <div class="muted" style=${{ fontSize: "12px", marginTop: "6px" }}>Axis: 0 to ${fmtDuration(span)} from the flow run's start.</div>
  </div>`;
}

function StepsTable({ steps, selected, onSelect }) {
  if (!steps.length) return null;
  const columns = [
    { key: "call", label: "Call", render: (s) => html`<code>${s.call}</code>` },
    { key: "status", label: "Status", render: (s) => html`<${StatusBadge} status=${s.status}/>` },
    { key: "attempts", label: "Attempts", className: "num" },
    { key: "retries", label: "Retries", className: "num" },
    { key: "cached", label: "Cache", render: (s) => (s.cached ? html`<span data-testid="cache-hit" title=${s.reused_from ? `result of run ${s.reused_from}` : ""}>hit</span>` : "—") },
    { key: "offset_ms", label: "Started at", render: (s) => (s.offset_ms === null ? "—" : `+${fmtDuration(s.offset_ms)}`), className: "num" },
    { key: "duration_ms", label: "Duration", render: (s) => fmtDuration(s.duration_ms), className: "num" },
    { key: "worker", label: "Worker", render: (s) => (s.cached && s.worker ? html`<span class="muted" title="where the reused result was computed">${s.worker} (earlier)</span>` : s.worker || "—") },
    { key: "error", label: "Error", render: (s) => (s.error ? html`<span class="step-error" title=${s.error}>${s.error.length > 120 ? `${s.error.slice(0, 119)}…` : s.error}</span>` : "") },
    { key: "log", label: "Output", render: (s) => (s.has_log
      ? html`<button class="link" data-testid="show-log" aria-pressed=${selected && selected.call === s.call ? "true" : "false"} onClick=${() => onSelect(s.call)}>${selected && selected.call === s.call ? "shown below" : "show"}</button>`
      : html`<span class="muted">none</span>`) },
  ];
  return html`<${Table} testid="steps-table" columns=${columns} rows=${steps} rowKey=${(s) => s.id}
    rowAttrs=${(s) => ({ "data-call": s.call, "data-status": s.status })}/>`;
}

function StepLog({ runId, step }) {
  const { data, error } = useApi(
    () => (step.has_log ? api.get(`/ui/flow-runs/${encodeURIComponent(runId)}/steps/${encodeURIComponent(step.call)}/log`) : Promise.resolve(null)),
    [runId, step.call, step.has_log, step.status, step.attempts],
  );
  return html`<section data-testid="step-log" data-call=${step.call}>
    <h2>Output of <code>${step.call}</code></h2>
    <${ErrorBox} error=${error}/>
    ${!step.has_log ? html`<${Empty}>${step.status === "RUNNING" ? "Its output is stored when the attempt ends." : "It wrote nothing to stdout or stderr."}</${Empty}>` : null}
    ${step.has_log && data ? html`${data.truncated ? html`<p class="muted">The last ${data.text.length.toLocaleString("en-US")} characters of ${data.size.toLocaleString("en-US")} bytes.</p>` : null}
      <pre class="preview" data-testid="step-log-text">${data.text || "(empty)"}</pre>` : null}
    ${step.has_log && !data && !error ? html`<${Loading} what="output"/>` : null}
  </section>`;
}
