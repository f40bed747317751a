// Registered models, their versions, aliases, signatures and lineage; a maintainer moves an alias
// after confirming it in a dialog that names the alias and both versions.
import { html, useEffect, useRef, useState } from "../vendor/standalone.module.js";
import { api } from "../lib/api.js";
import { useApi } from "../lib/hooks.js";
import { Empty, ErrorBox, KeyValue, Loading, Page, StatusBadge, Table, fmtBytes, fmtNum, fmtTime, shortId } from "../lib/components.js";

const enc = encodeURIComponent;
const modelUrl = (name) => `/models/${enc(name)}`;
const versionUrl = (name, version) => `/models/${enc(name)}/versions/${version}`;
const SIGNING_TEXT = {
  unsigned: "unsigned",
  verified: "signed, verified",
  unchecked: "signed (no key here to check it)",
  untrusted: "signed by an untrusted key",
  bad: "BAD signature",
};

function mayMaintain(session) {
  return Boolean(session && session.me && (session.me.rights || []).includes("maintain"));
}

function AliasList({ name, aliases }) {
  const entries = Object.entries(aliases || {});
  if (!entries.length) return html`<span class="muted">none</span>`;
  return html`<span class="aliases">${entries.map(([alias, version], i) => html`${i ? ", " : ""}<span data-alias=${alias}>
    <strong>@${alias}</strong> → <a href=${versionUrl(name, version)}>v${version}</a></span>`)}</span>`;
}

function Signed({ version }) {
  const text = SIGNING_TEXT[version.signing_status] || version.signing_status;
  const cls = version.signing_status === "verified" ? "ok" : version.signing_status === "bad" ? "bad" : version.signed ? "warn" : "muted";
  return html`<span class=${`badge ${cls}`} data-signed=${version.signed ? "yes" : "no"}
    title=${version.signing_key ? `key ${version.signing_key}` : ""}>${text}</span>`;
}

function RunLink({ id }) {
  return id ? html`<a href=${`/runs/${id}`} title=${id} data-testid="source-run">run ${shortId(id)}</a>` : html`<span class="muted">—</span>`;
}

// The confirmation: a modal dialog naming the alias, where it points now and where it will.
function ConfirmMove({ name, alias, from, to, busy, error, onConfirm, onCancel }) {
  const ref = useRef(null);
  useEffect(() => {
    const dialog = ref.current;
    if (dialog && !dialog.open && dialog.showModal) dialog.showModal();
    return () => { if (dialog && dialog.open) dialog.close(); };
  }, []);
  const fromText = from === null || from === undefined ? "nowhere (a new alias)" : `version ${from}`;
  return html`<dialog ref=${ref} role="dialog" aria-modal="true" aria-labelledby="move-alias-title" data-testid="alias-dialog"
      onCancel=${(e) => { e.preventDefault(); onCancel(); }}
      style=${{ border: "1px solid var(--line)", borderRadius: "10px", padding: "18px 22px", maxWidth: "520px" }}>
    <h2 id="move-alias-title" style=${{ marginTop: 0 }}>Move alias @${alias}?</h2>
    <p>Point <strong>${name}@${alias}</strong> from <strong data-testid="from-version">${fromText}</strong>${" to "}<strong data-testid="to-version">version ${to}</strong>.</p>
    <p class="muted">Whatever loads or serves ${name}@${alias} gets version ${to} from then on. The move is recorded in the audit log under your name.</p>
    <${ErrorBox} error=${error}/>
    <div style=${{ display: "flex", gap: "8px", justifyContent: "flex-end", marginTop: "14px" }}>
      <button type="button" onClick=${onCancel} disabled=${busy}>Cancel</button>
      <button type="button" class="primary" data-testid="confirm-move" onClick=${onConfirm} disabled=${busy}>
        ${busy ? "Moving…" : `Move @${alias} to v${to}`}</button>
    </div>
  </dialog>`;
}

// Pick an alias (or name a new one) and a version, confirm, then move it through the view API.
function AliasMover({ name, aliases, versions, initialVersion, onMoved }) {
  const names = Object.keys(aliases || {});
  // the first alias that does not point here already (a version's page moves one to it)
  const [alias, setAlias] = useState(names.find((a) => aliases[a] !== initialVersion) || names[0] || "");
  const [fresh, setFresh] = useState("");
  const [version, setVersion] = useState(String(initialVersion || (versions[0] && versions[0].version) || ""));
  const [asking, setAsking] = useState(null);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState(null);
  const chosen = alias === "" ? fresh.trim() : alias;
  const from = alias === "" ? null : aliases[alias];
  const to = parseInt(version, 10);
  const ask = (e) => {
    e.preventDefault();
    setError(null);
    setAsking({ alias: chosen, from, to });
  };
  const confirm = async () => {
    setBusy(true);
    try {
      await api.put(`/ui/models/${enc(name)}/aliases/${enc(asking.alias)}`, { version: asking.to, expected: asking.from ?? null });
      setAsking(null);
      onMoved({ ...asking });
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };
  return html`<form class="toolbar card" data-testid="alias-mover" onSubmit=${ask} aria-label="move an alias">
    <strong>Move alias</strong>
    <label>alias <select name="alias" value=${alias} onChange=${(e) => setAlias(e.target.value)}>
      ${names.map((a) => html`<option value=${a}>@${a} (now v${aliases[a]})</option>`)}
      <option value="">new alias…</option>
    </select></label>
    ${alias === "" ? html`<input name="new-alias" aria-label="new alias" placeholder="e.g. champion" value=${fresh} onInput=${(e) => setFresh(e.target.value)}/>` : null}
    <label>to version <select name="version" value=${version} onChange=${(e) => setVersion(e.target.value)}>
      ${versions.map((v) => html`<option value=${v.version}>v${v.version}</option>`)}
    </select></label>
    <button type="submit" class="primary" data-testid="move-alias" disabled=${!chosen || !to || from === to}>Move alias…</button>
    ${from === to && chosen ? html`<span class="muted">@${chosen} already points at v${to}</span>` : null}
    ${asking ? html`<${ConfirmMove} name=${name} alias=${asking.alias} from=${asking.from} to=${asking.to} busy=${busy} error=${error}
      onConfirm=${confirm} onCancel=${() => { setAsking(null); setError(null); }}/>` : null}
  </form>`;
}

function Moved({ moved }) {
  if (!moved) return null;
  const was = moved.from === null || moved.from === undefined ? "" : ` (was v${moved.from})`;
  return html`<p role="status" class="card" data-testid="alias-moved">@${moved.alias} now points at v${moved.to}${was}; the audit log records the move.</p>`;
}

export function ModelsPage() {
  const { data, error, loading } = useApi(() => api.get("/ui/models"), []);
  const columns = [
    { key: "name", label: "Model", render: (m) => html`<a href=${modelUrl(m.name)}>${m.name}</a>` },
    { key: "latest_version", label: "Latest", render: (m) => m.latest_version === 0 ? html`<span class="muted">no versions yet</span>`
      : html`<a href=${versionUrl(m.name, m.latest_version)}>v${m.latest_version}</a> <span class="muted">${m.latest_flavor}</span>` },
    { key: "aliases", label: "Aliases", render: (m) => html`<${AliasList} name=${m.name} aliases=${m.aliases}/>` },
    { key: "description", label: "Description", render: (m) => m.description || (m.latest_description
      ? html`<span class="muted">v${m.latest_version}:</span> ${m.latest_description}` : html`<span class="muted">—</span>`) },
    { key: "updated_ms", label: "Updated", render: (m) => fmtTime(m.updated_ms) },
  ];
  return html`<${Page} name="models" title="Models" ready=${!loading}>
    <${ErrorBox} error=${error}/>
    ${loading ? html`<${Loading}/>` : null}
    ${data && !data.length ? html`<${Empty}>No registered models yet: <code>run.log_model(model, name="...")</code> or <code>plinth.register_model(...)</code> registers one.</${Empty}>` : null}
    ${data && data.length ? html`<${Table} testid="models-table" columns=${columns} rows=${data} rowKey=${(m) => m.name}
      rowAttrs=${(m) => ({ "data-model": m.name })}/>` : null}
  </${Page}>`;
}

export function ModelPage({ params, session }) {
  const name = params.name;
  const [moved, setMoved] = useState(null);
  const { data, error, loading, reload } = useApi(() => api.get(`/ui/models/${enc(name)}`), [name]);
  const columns = [
    { key: "version", label: "Version", render: (v) => html`<a href=${versionUrl(name, v.version)}>v${v.version}</a>` },
    { key: "created_ms", label: "Created", render: (v) => fmtTime(v.created_ms) },
    { key: "creator", label: "By" },
    { key: "run_id", label: "Source run", render: (v) => html`<${RunLink} id=${v.run_id}/>` },
    { key: "flavor", label: "Flavor" },
    { key: "has_signature", label: "Signature", render: (v) => (v.has_signature ? "yes" : html`<span class="muted">none</span>`) },
    { key: "aliases", label: "Aliases", render: (v) => (v.aliases.length ? v.aliases.map((a) => `@${a}`).join(", ") : html`<span class="muted">—</span>`) },
    { key: "signed", label: "Signed", render: (v) => html`<${Signed} version=${v}/>` },
    { key: "description", label: "Description", render: (v) => v.description || html`<span class="muted">—</span>` },
  ];
  const title = html`<a href="/models">Models</a> / ${name}`;
  return html`<${Page} name="model" title=${title} ready=${!loading}>
    <${ErrorBox} error=${error}/>
    ${loading && !data ? html`<${Loading}/>` : null}
    ${data ? html`
      <${KeyValue} testid="model-summary" items=${[
        ["Description", data.description],
        ["Versions", fmtNum(data.versions.length)],
        ["Aliases", html`<${AliasList} name=${name} aliases=${data.aliases}/>`],
      ]}/>
      <${Moved} moved=${moved}/>
      ${mayMaintain(session) ? html`<${AliasMover} key=${JSON.stringify(data.aliases)} name=${name} aliases=${data.aliases}
        versions=${data.versions} onMoved=${(m) => { setMoved(m); reload(); }}/>` : null}
      <h2>Versions</h2>
      <${Table} testid="versions-table" columns=${columns} rows=${data.versions} rowKey=${(v) => v.version}
        rowAttrs=${(v) => ({ "data-version": v.version })}/>` : null}
  </${Page}>`;
}

// One side of a signature (inputs or outputs): a frame's columns or a tensor's shape, as a table.
function SignatureSide({ label, spec, testid }) {
  if (!spec) return html`<p class="muted">No ${label.toLowerCase()} recorded.</p>`;
  if (spec.type === "frame") {
    const columns = [{ key: "name", label: "Column" }, { key: "dtype", label: "Type" }];
    return html`<h3>${label}: ${fmtNum(spec.columns.length)} columns</h3>
      <${Table} testid=${testid} columns=${columns} rows=${spec.columns} rowKey=${(c) => c.name}/>`;
  }
  const shape = (spec.shape || []).map((d) => (d === -1 ? "any" : d)).join(" × ");
  return html`<h3>${label}: tensor</h3>
    <${Table} testid=${testid} columns=${[{ key: "shape", label: "Shape" }, { key: "dtype", label: "Type" }]}
      rows=${[{ shape, dtype: spec.dtype }]}/>`;
}

function Lineage({ name, version, lineage }) {
  const run = lineage.run;
  const graph = `/lineage?kind=model&id=${enc(`${name}/${version}`)}`;
  return html`<div class="card" data-testid="lineage">
    <p>${run ? html`Produced by <a href=${`/runs/${run.id}`} data-testid="lineage-run">${run.name || `run ${shortId(run.id)}`}</a>
      ${run.experiment ? html` in experiment <a href=${`/experiments/${enc(run.experiment)}`}>${run.experiment}</a>` : null}
      ${run.status ? html` <${StatusBadge} status=${run.status}/>` : html` <span class="muted">(the run was deleted)</span>`}`
      : html`<span class="muted">No source run recorded: the version was registered outside a run.</span>`}</p>
    ${lineage.datasets.length ? html`<p>Trained on: ${lineage.datasets.map((d, i) => html`${i ? ", " : ""}<a data-dataset=${d.ref}
        href=${`/lineage?kind=dataset&id=${enc(d.ref)}`}>dataset ${d.ref}</a> <span class="muted">(${fmtNum(d.rows)} rows, sha256 ${d.digest.slice(0, 12)})</span>`)}</p>`
      : run ? html`<p class="muted">The run logged no datasets.</p>` : null}
    <p><a href=${graph} data-testid="lineage-link">Open the lineage graph of ${name}/${version}</a></p>
  </div>`;
}

export function ModelVersionPage({ params, session }) {
  const { name, version } = params;
  const [moved, setMoved] = useState(null);
  const one = useApi(() => api.get(`/ui/models/${enc(name)}/versions/${enc(version)}`), [name, version]);
  const all = useApi(() => (mayMaintain(session) ? api.get(`/ui/models/${enc(name)}`) : Promise.resolve(null)), [name]);
  const v = one.data;
  const reload = (m) => { setMoved(m); one.reload(); all.reload(); };
  const title = html`<a href="/models">Models</a> / <a href=${modelUrl(name)}>${name}</a> / v${version}`;
  const files = [
    { key: "path", label: "File", render: (f) => html`<code>${f.path}</code>` },
    { key: "size", label: "Size", render: (f) => fmtBytes(f.size), className: "num" },
    { key: "digest", label: "sha256", render: (f) => html`<code title=${f.digest}>${f.digest.slice(0, 16)}…</code>` },
  ];
  return html`<${Page} name="model-version" title=${title} ready=${!one.loading && !all.loading}>
    <${ErrorBox} error=${one.error || all.error}/>
    ${one.loading && !v ? html`<${Loading}/>` : null}
    ${v ? html`
      <${KeyValue} testid="version-summary" items=${[
        ["Flavor", v.flavor],
        ["Created", `${fmtTime(v.created_ms)} by ${v.creator}`],
        ["Description", v.description],
        ["Aliases", v.aliases.length ? v.aliases.map((a) => `@${a}`).join(", ") : "none"],
        ["Source run", html`<${RunLink} id=${v.run_id}/>`],
        ["Signed", html`<${Signed} version=${v}/>`],
        ["Manifest digest", html`<code>${v.digest}</code>`],
      ]}/>
      <${Moved} moved=${moved}/>
      ${all.data ? html`<${AliasMover} key=${JSON.stringify(all.data.aliases)} name=${name} aliases=${all.data.aliases}
        versions=${all.data.versions} initialVersion=${v.version} onMoved=${reload}/>` : null}
      <div class="grid">
        <section class="card" data-testid="signature"><h2 style=${{ marginTop: 0 }}>Signature</h2>
          ${v.signature ? html`<${SignatureSide} label="Inputs" spec=${v.signature.inputs} testid="signature-inputs"/>
            <${SignatureSide} label="Outputs" spec=${v.signature.outputs} testid="signature-outputs"/>`
            : html`<p class="muted">No signature: the version was registered without an input example, so inputs are not checked.</p>`}
        </section>
        <section class="card" data-testid="environment"><h2 style=${{ marginTop: 0 }}>Environment</h2>
          <p class="muted">What loading this version needs (compared on load):</p>
          <pre>${v.requirements.join("\n") || "nothing recorded"}</pre>
        </section>
      </div>
      <h2>Lineage</h2>
      <${Lineage} name=${name} version=${v.version} lineage=${v.lineage}/>
      <h2>Files (${fmtNum(v.files.length)})</h2>
      <${Table} testid="files-table" columns=${files} rows=${v.files} rowKey=${(f) => f.path}/>` : null}
  </${Page}>`;
}
