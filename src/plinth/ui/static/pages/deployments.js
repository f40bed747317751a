// Deployments and their monitoring: traffic, errors, latency, drift, performance, alerts.
import { html } from "../vendor/standalone.module.js";
import { Page } from "../lib/components.js";

export function DeploymentsPage() {
  return html`<${Page} name="deployments" title="Deployments"><p>Coming with the monitoring view.</p></${Page}>`;
}

export function DeploymentPage({ params }) {
  return html`<${Page} name="deployment" title=${params.name}><p>Coming with the monitoring view.</p></${Page}>`;
}
