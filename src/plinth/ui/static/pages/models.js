// Registered models, their versions, aliases, signatures and lineage.
import { html } from "../vendor/standalone.module.js";
import { Page } from "../lib/components.js";

export function ModelsPage() {
  return html`<${Page} name="models" title="Models"><p>Coming with the registry view.</p></${Page}>`;
}

export function ModelPage({ params }) {
  return html`<${Page} name="model" title=${params.name}><p>Coming with the registry view.</p></${Page}>`;
}

export function ModelVersionPage({ params }) {
  return html`<${Page} name="model-version" title=${`${params.name} v${params.version}`}><p>Coming with the registry view.</p></${Page}>`;
}
