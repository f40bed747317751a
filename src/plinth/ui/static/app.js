// The plinth web UI: who is signed in, the navigation, and which page an address shows.
import { html, render, useEffect, useState } from "./vendor/standalone.module.js";
import { api, currentWorkspace, setWorkspace } from "./lib/api.js";
import { match, navigate, onNavigate } from "./lib/router.js";
import { ErrorBox, Loading } from "./lib/components.js";
import { ExperimentsPage } from "./pages/experiments.js";
import { RunsPage } from "./pages/runs.js";
import { RunPage } from "./pages/run.js";
import { ComparePage } from "./pages/compare.js";
import { ModelsPage, ModelPage, ModelVersionPage } from "./pages/models.js";
import { FlowsPage, FlowRunPage } from "./pages/flows.js";
import { DeploymentsPage, DeploymentPage } from "./pages/deployments.js";
import { LineagePage } from "./pages/lineage.js";
import { AuditPage, ErasuresPage, CostsPage } from "./pages/governance.js";
import { LoginPage } from "./pages/login.js";

const ROUTES = [
  ["/", ExperimentsPage],
  ["/experiments", ExperimentsPage],
  ["/experiments/:name*", RunsPage],
  ["/runs/:id", RunPage],
  ["/compare", ComparePage],
  ["/models", ModelsPage],
  ["/models/:name/versions/:version", ModelVersionPage],
  ["/models/:name*", ModelPage],
  ["/flows", FlowsPage],
  ["/flows/:id", FlowRunPage],
  ["/deployments", DeploymentsPage],
  ["/deployments/:name*", DeploymentPage],
  ["/lineage", LineagePage],
  ["/audit", AuditPage],
  ["/erasures", ErasuresPage],
  ["/costs", CostsPage],
  ["/login", LoginPage],
];

const NAV = [
  ["/experiments", "Experiments"],
  ["/models", "Models"],
  ["/flows", "Flows"],
  ["/deployments", "Deployments"],
  ["/lineage", "Lineage"],
  ["/audit", "Audit"],
  ["/costs", "Costs"],
];

function NotFoundPage() {
  return html`<main data-page="not-found" data-ready="true"><h1>No such page</h1>
    <p>Nothing lives at <code>${location.pathname}</code>. <a href="/experiments">Go to the experiments</a>.</p></main>`;
}

function Header({ session, onSignOut }) {
  const here = location.pathname;
  const { me, config, workspaces } = session;
  return html`<header class="top">
    <a class="brand" href="/"><img src="/static/favicon.svg" alt="" width="22" height="22"/> plinth</a>
    <nav aria-label="main">${NAV.map(([href, label]) => html`<a href=${href} class=${here.startsWith(href) || (href === "/experiments" && (here === "/" || here.startsWith("/runs") || here.startsWith("/compare"))) ? "active" : ""}>${label}</a>`)}</nav>
    <div class="who" data-testid="who">
      ${workspaces.length > 1 ? html`<label>workspace <select data-testid="workspace" value=${me.workspace}
          onChange=${(e) => { setWorkspace(e.target.value); location.reload(); }}>
          ${workspaces.map((w) => html`<option value=${w.name}>${w.name}</option>`)}</select></label>` : null}
      <span class="user">${me.name}</span>
      <span class="role" data-testid="role">${me.superuser ? (config.local ? "local" : "superuser") : me.roles[me.workspace] || "no role"}</span>
      ${config.local ? null : html`<button class="link" onClick=${onSignOut}>Sign out</button>`}
    </div>
  </header>`;
}

export function App() {
  const [, setTick] = useState(0);
  const [session, setSession] = useState(null);
  const [error, setError] = useState(null);

  const load = async () => {
    try {
      const config = await api.get("/ui/config");
      let me;
      try {
        me = await api.get("/ui/me");
      } catch (err) {
        if (err.status === 401) { setSession({ config, me: null, workspaces: [] }); return; }
        throw err;
      }
      if (!currentWorkspace()) setWorkspace(me.workspace);
      const workspaces = await api.get("/workspaces").catch(() => []);
      setSession({ config, me, workspaces });
    } catch (err) {
      setError(err);
    }
  };

  useEffect(() => { load(); }, []);
  useEffect(() => onNavigate(() => setTick((t) => t + 1)), []);
  useEffect(() => {
    const expired = () => setSession((s) => (s ? { ...s, me: null } : s));
    window.addEventListener("plinth:unauthorized", expired);
    return () => window.removeEventListener("plinth:unauthorized", expired);
  }, []);

  if (error) return html`<main data-page="error" data-ready="true"><${ErrorBox} error=${error}/></main>`;
  if (!session) return html`<${Loading}/>`;
  if (!session.me) return html`<${LoginPage} config=${session.config} onSignedIn=${() => { load(); if (location.pathname === "/login") navigate("/"); }}/>`;
  const signOut = async () => {
    if (session.config.sso) await api.post("/auth/logout").catch(() => null);
    await api.del("/ui/session").catch(() => null);
    setWorkspace("");
    setSession({ ...session, me: null });
    navigate("/login");
  };
  const found = match(ROUTES, location.pathname);
  const [PageComponent, params] = found || [NotFoundPage, {}];
  const Shown = PageComponent === LoginPage ? ExperimentsPage : PageComponent;
  return html`<${Header} session=${session} onSignOut=${signOut}/>
    <${Shown} key=${location.pathname} params=${params} search=${location.search} session=${session}/>`;
}

// MLflow's client prints links into MLflow's UI (`/#/experiments/ID/runs/RUN`, `/#/models/NAME/versions/N`):
// against plinth's server they open plinth's page for the same run, experiment or model.
export function fromMlflowLink(hash) {
  const parts = hash.replace(/^#\/?/, "").split("?")[0].split("/").filter(Boolean);
  const [kind, name, sub, id] = parts.map((part) => { try { return decodeURIComponent(part); } catch { return part; } });
  const at = (...segments) => "/" + segments.map(encodeURIComponent).join("/");
  if (kind === "experiments" && name) {
    if (sub === "runs" && id) return at("runs", id);
    return at("experiments", name === "0" ? "Default" : name);  // MLflow's id of the default experiment
  }
  if (kind === "models" && name) return sub === "versions" && id ? at("models", name, "versions", id) : at("models", name);
  return null;
}

const mlflowTarget = location.pathname === "/" && location.hash.startsWith("#/") ? fromMlflowLink(location.hash) : null;
if (mlflowTarget) history.replaceState(null, "", mlflowTarget);

render(html`<${App}/>`, document.getElementById("app"));
