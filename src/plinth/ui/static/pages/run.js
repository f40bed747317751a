// A run: params, tags, status, environment, metric charts, system metrics, datasets, artifacts.
import { html } from "../vendor/standalone.module.js";
import { Page } from "../lib/components.js";

export function RunPage({ params }) {
  return html`<${Page} name="run" title=${`Run ${params.id}`}><p>Coming with the run view.</p></${Page}>`;
}
