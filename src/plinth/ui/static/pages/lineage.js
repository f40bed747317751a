// The lineage graph of a dataset, run, model version or request.
import { html } from "../vendor/standalone.module.js";
import { Page } from "../lib/components.js";

export function LineagePage() {
  return html`<${Page} name="lineage" title="Lineage"><p>Coming with the lineage view.</p></${Page}>`;
}
