// Flow runs: the DAG with live step status, a Gantt of timings, logs, retries, cache hits, resume.
import { html } from "../vendor/standalone.module.js";
import { Page } from "../lib/components.js";

export function FlowsPage() {
  return html`<${Page} name="flows" title="Flows"><p>Coming with the flows view.</p></${Page}>`;
}

export function FlowRunPage({ params }) {
  return html`<${Page} name="flow-run" title=${`Flow run ${params.id}`}><p>Coming with the flows view.</p></${Page}>`;
}
