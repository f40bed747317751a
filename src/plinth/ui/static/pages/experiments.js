// The experiments of the workspace, newest first, with their run counts.
import { html } from "../vendor/standalone.module.js";
import { api } from "../lib/api.js";
import { useApi } from "../lib/hooks.js";
import { Empty, ErrorBox, Loading, Page, Table, fmtNum, fmtTime } from "../lib/components.js";

export function ExperimentsPage() {
  const { data, error, loading } = useApi(() => api.get("/ui/experiments"), []);
  const columns = [
    { key: "name", label: "Experiment", render: (x) => html`<a href=${`/experiments/${encodeURIComponent(x.name)}`}>${x.name}</a>` },
    { key: "runs", label: "Runs", render: (x) => fmtNum(x.runs), className: "num" },
    { key: "created_ms", label: "Created", render: (x) => fmtTime(x.created_ms) },
    { key: "tags", label: "Tags", render: (x) => Object.entries(x.tags || {}).map(([k, v]) => `${k}=${v}`).join(", ") },
  ];
  return html`<${Page} name="experiments" title="Experiments" ready=${!loading}>
    <${ErrorBox} error=${error}/>
    ${loading ? html`<${Loading}/>` : null}
    ${data && !data.length ? html`<${Empty}>No experiments yet: track a run with <code>plinth.start_run(experiment="...")</code> or run <code>plinth demo</code>.</${Empty}>` : null}
    ${data && data.length ? html`<${Table} testid="experiments-table" columns=${columns} rows=${data} rowKey=${(x) => x.id}/>` : null}
  </${Page}>`;
}
