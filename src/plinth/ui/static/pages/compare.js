// Runs side by side: metric curves overlaid, a params diff, parallel coordinates.
import { html } from "../vendor/standalone.module.js";
import { Page } from "../lib/components.js";

export function ComparePage() {
  return html`<${Page} name="compare" title="Compare runs"><p>Coming with the compare view.</p></${Page}>`;
}
