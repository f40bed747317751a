// The lineage graph of a dataset, run, model version or request: where it came from and what came
// of it, drawn as a graph and listed as text (nodes and edges) for screen readers and tests.
import { html, useMemo, useState } from "../vendor/standalone.module.js";
import { api } from "../lib/api.js";
import { useApi } from "../lib/hooks.js";
import { navigate, queryParams, urlWith } from "../lib/router.js";
import { ErrorBox, Loading, Page } from "../lib/components.js";
import { Graph } from "../lib/graph.js";

const KINDS = [
  ["model", "model version", "NAME/N, NAME@ALIAS or NAME"],
  ["dataset", "dataset version", "NAME/N or NAME"],
  ["run", "run", "a run or flow run id"],
  ["request", "request", "a prediction's request id"],
];
const DIRECTIONS = [["both", "both ways"], ["up", "up: where it came from"], ["down", "down: what came of it"]];

function LineageForm({ kind, id, direction }) {
  const [draft, setDraft] = useState({ kind, id, direction });
  const set = (key) => (e) => setDraft({ ...draft, [key]: e.target.value });
  const submit = (e) => {
    e.preventDefault();
    if (draft.id.trim()) navigate(urlWith("/lineage", { ...draft, id: draft.id.trim() }));
  };
  const hint = (KINDS.find(([k]) => k === draft.kind) || KINDS[0])[2];
  return html`<form class="toolbar" data-testid="lineage-form" onSubmit=${submit}>
    <label>kind <select name="kind" value=${draft.kind} onChange=${set("kind")}>
      ${KINDS.map(([k, label]) => html`<option value=${k}>${label}</option>`)}</select></label>
    <input name="id" size="40" placeholder=${hint} aria-label="id" value=${draft.id} onInput=${set("id")}/>
    <label>direction <select name="direction" value=${draft.direction} onChange=${set("direction")}>
      ${DIRECTIONS.map(([d, label]) => html`<option value=${d}>${label}</option>`)}</select></label>
    <button type="submit" class="primary">Show lineage</button>
  </form>`;
}

export function LineagePage({ search }) {
  const q = queryParams();
  const kind = KINDS.some(([k]) => k === q.kind) ? q.kind : "model";
  const id = q.id || "";
  const direction = DIRECTIONS.some(([d]) => d === q.direction) ? q.direction : "both";
  const { data, error, loading } = useApi(
    () => (id ? api.get("/ui/lineage", { kind, id, direction }) : Promise.resolve(null)), [search],
  );
  const title = id ? html`Lineage of ${kind} <code>${id}</code>` : "Lineage";
  return html`<${Page} name="lineage" title=${title} ready=${!loading}>
    <${LineageForm} key=${search} kind=${kind} id=${id} direction=${direction}/>
    <${ErrorBox} error=${error}/>
    ${loading && id ? html`<${Loading} what="the lineage"/>` : null}
    ${!id ? html`<p class="muted">Pick a kind and give its id: a model version (<code>churn/3</code>,
      <code>churn@champion</code>), a dataset version (<code>churn-train/1</code>), a run id, or the request id a
      prediction answered with. The graph runs from datasets through runs and model versions to deployments,
      prediction logs and their labels.</p>` : null}
    ${data ? html`<${LineageView} data=${data}/>` : null}
  </${Page}>`;
}

function LineageView({ data }) {
  const byId = useMemo(() => new Map(data.nodes.map((n) => [n.id, n])), [data]);
  const nodes = useMemo(() => data.nodes.map((n) => ({ id: n.id, label: n.name, kind: n.kind, detail: n.detail, href: n.href })), [data]);
  const edges = useMemo(() => data.edges.map((e) => ({ from: e.from, to: e.to, label: e.label })), [data]);
  const name = (id) => (byId.get(id) || { name: id }).name;
  const kindOf = (id) => (byId.get(id) || { kind: "" }).kind;
  return html`<div class="card" style=${{ padding: "2px" }}>
      <${Graph} nodes=${nodes} edges=${edges} testid="lineage-graph" selected=${data.root}/>
    </div>
    ${data.personal ? null : html`<p class="muted">Subject ids and label values are left out: they need the raw right.</p>`}
    <h2>Nodes (${data.nodes.length})</h2>
    <div class="table-wrap"><table data-testid="lineage-nodes">
      <thead><tr><th>kind</th><th>name</th><th>description</th></tr></thead>
      <tbody>${data.nodes.map((n) => html`<tr key=${n.id} data-node-id=${n.id} data-kind=${n.kind}
          data-root=${n.id === data.root ? "true" : "false"}>
        <td>${n.kind}${n.id === data.root ? html` <span class="badge run">ASKED</span>` : null}</td>
        <td>${n.href ? html`<a href=${n.href}>${n.name}</a>` : n.name}${n.detail ? html` <span class="muted">(${n.detail})</span>` : null}</td>
        <td class="muted" title=${n.label}>${n.label}</td>
      </tr>`)}</tbody>
    </table></div>
    <h2>Edges (${data.edges.length})</h2>
    <div class="table-wrap"><table data-testid="lineage-edges">
      <thead><tr><th>from</th><th>relation</th><th>to</th></tr></thead>
      <tbody>${data.edges.map((e) => html`<tr key=${`${e.from}->${e.to}`} data-from=${e.from} data-to=${e.to}>
        <td>${kindOf(e.from)} ${name(e.from)}</td><td>${e.label}</td><td>${kindOf(e.to)} ${name(e.to)}</td>
      </tr>`)}</tbody>
    </table></div>`;
}
