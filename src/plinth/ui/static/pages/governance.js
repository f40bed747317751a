// The audit log and its chain's verification, erasure receipts, and costs.
import { html } from "../vendor/standalone.module.js";
import { Page } from "../lib/components.js";

export function AuditPage() {
  return html`<${Page} name="audit" title="Audit log"><p>Coming with the governance view.</p></${Page}>`;
}

export function ErasuresPage() {
  return html`<${Page} name="erasures" title="Erasure receipts"><p>Coming with the governance view.</p></${Page}>`;
}

export function CostsPage() {
  return html`<${Page} name="costs" title="Costs"><p>Coming with the governance view.</p></${Page}>`;
}
