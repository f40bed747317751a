// Files a run logged: a folder tree with sizes, and a preview of the chosen file with its download.
// An artifact is user content: text, tables and JSON are shown as text (never as markup), images
// through <img>, HTML and SVG only in a sandboxed frame whose address the server answers under a
// policy of its own (no script, an opaque origin).
import { html, useEffect, useMemo, useState } from "../vendor/standalone.module.js";
import { api, apiUrl, currentWorkspace } from "./api.js";
import { useApi } from "./hooks.js";
import { Empty, ErrorBox, Loading, fmtBytes, fmtNum } from "./components.js";

const SPLIT = { display: "grid", gridTemplateColumns: "minmax(240px, 340px) minmax(0, 1fr)", gap: "14px", alignItems: "start" };
const TREE = { listStyle: "none", margin: 0, paddingLeft: "14px" };
const ENTRY = { display: "flex", justifyContent: "space-between", gap: "10px", width: "100%", textAlign: "left", border: "none", background: "none", padding: "3px 6px", borderRadius: "4px" };
const CHOSEN = { ...ENTRY, background: "#e6efff", fontWeight: 600 };
const HEAD = { display: "flex", alignItems: "center", justifyContent: "space-between", gap: "12px", marginBottom: "10px" };

// The address of an artifact's bytes: `raw` for frames and images, `download` for the attachment.
// The workspace travels in the address: a frame, an image or a link cannot send the header.
export function artifactUrl(runId, path, what = "raw") {
  return apiUrl(`/ui/runs/${encodeURIComponent(runId)}/artifacts/${what}`, { path, workspace: currentWorkspace() });
}

// Files as a tree: {name, path, folders: Map, files: [], size}; sizes of folders are their totals.
export function buildTree(files) {
  const root = { name: "", path: "", folders: new Map(), files: [], size: 0 };
  for (const file of files) {
    const parts = file.path.split("/");
    let node = root;
    node.size += file.size;
    for (let i = 0; i < parts.length - 1; i++) {
      if (!node.folders.has(parts[i])) {
        node.folders.set(parts[i], { name: parts[i], path: parts.slice(0, i + 1).join("/"), folders: new Map(), files: [], size: 0 });
      }
      node = node.folders.get(parts[i]);
      node.size += file.size;
    }
    node.files.push({ ...file, name: parts[parts.length - 1] });
  }
  return root;
}

function Folder({ node, chosen, onChoose, depth }) {
  const folders = [...node.folders.values()].sort((a, b) => a.name.localeCompare(b.name));
  return html`<ul style=${depth ? TREE : { ...TREE, paddingLeft: 0 }} role=${depth ? "group" : "tree"}>
    ${folders.map((f) => html`<li key=${`d:${f.path}`} role="treeitem">
      <details open=${depth < 1 || (chosen || "").startsWith(`${f.path}/`)} data-folder=${f.path}>
        <summary style=${{ cursor: "pointer", padding: "3px 6px" }}>
          <span>${f.name}/</span><span class="muted" style=${{ float: "right" }}>${fmtBytes(f.size)}</span>
        </summary>
        <${Folder} node=${f} chosen=${chosen} onChoose=${onChoose} depth=${depth + 1}/>
      </details>
    </li>`)}
    ${node.files.map((f) => html`<li key=${`f:${f.path}`} role="treeitem" aria-selected=${f.path === chosen ? "true" : "false"}>
      <button type="button" style=${f.path === chosen ? CHOSEN : ENTRY} data-path=${f.path} title=${f.path} onClick=${() => onChoose(f.path)}>
        <span style=${{ overflow: "hidden", textOverflow: "ellipsis" }}>${f.name}</span><span class="muted">${fmtBytes(f.size)}</span>
      </button>
    </li>`)}
  </ul>`;
}

export function PreviewTable({ columns, rows, testid = "preview-table" }) {
  return html`<div class="table-wrap" style=${{ maxHeight: "520px" }}><table data-testid=${testid}>
    <thead><tr>${columns.map((c) => html`<th>${String(c)}</th>`)}</tr></thead>
    <tbody>${rows.map((row) => html`<tr>${row.map((v) => html`<td class=${typeof v === "number" ? "num" : ""}>${v === null ? "—" : typeof v === "number" ? fmtNum(v) : String(v)}</td>`)}</tr>`)}</tbody>
  </table></div>`;
}

function Truncated({ shown, size }) {
  return html`<p class="muted">Showing the first ${fmtBytes(shown)} of ${fmtBytes(size)}; download the file for all of it.</p>`;
}

// What a preview answer shows: `doc` from GET .../artifacts/preview.
export function PreviewBody({ runId, doc }) {
  const raw = artifactUrl(runId, doc.path);
  switch (doc.kind) {
    case "image":
      return html`<img class="preview" src=${raw} alt=${doc.path} data-testid="preview-image"/>`;
    case "html":
    case "svg":
      // sandbox="" allows nothing: no script, no same origin, no forms, no popups, no top navigation
      return html`<iframe class="preview" sandbox="" referrerpolicy="no-referrer" title=${`preview of ${doc.path}`} src=${raw} data-testid="preview-frame"></iframe>`;
    case "table":
      if (doc.error) return html`<div class="error" role="alert"><pre>${doc.error}</pre></div>`;
      return html`<div>
        <p class="muted" data-testid="preview-rows">${doc.total_rows === null || doc.total_rows === undefined
          ? `First ${fmtNum(doc.rows.length)} rows`
          : `${fmtNum(doc.rows.length)} of ${fmtNum(doc.total_rows)} rows`} · ${fmtNum(doc.columns.length)} columns</p>
        <${PreviewTable} columns=${doc.columns} rows=${doc.rows}/>
      </div>`;
    case "json":
    case "text":
      return html`<div>
        ${doc.note ? html`<p class="muted">${doc.note}</p>` : null}
        <pre class="preview" data-testid="preview-text">${doc.text}</pre>
        ${doc.truncated ? html`<${Truncated} shown=${doc.text.length} size=${doc.size}/>` : null}
      </div>`;
    default:
      return html`<${Empty}>No preview for this kind of file; download it to open it.</${Empty}>`;
  }
}

function Preview({ runId, path }) {
  const { data, error, loading } = useApi(
    () => api.get(`/ui/runs/${encodeURIComponent(runId)}/artifacts/preview`, { path }),
    [runId, path],
  );
  return html`<section class="card" data-testid="artifact-preview" data-path=${path} data-ready=${loading ? "false" : "true"}>
    <div style=${HEAD}>
      <h3 style=${{ margin: 0, wordBreak: "break-all" }}>${path}${data ? html` <span class="muted">· ${fmtBytes(data.size)}</span>` : null}</h3>
      <a class="button" data-testid="download" href=${artifactUrl(runId, path, "download")} download>Download</a>
    </div>
    ${loading ? html`<${Loading} what="preview"/>` : null}
    <${ErrorBox} error=${error}/>
    ${data ? html`<${PreviewBody} runId=${runId} doc=${data}/>` : null}
  </section>`;
}

// The browser of a run's artifacts; `chosen` is the file shown (kept in the page's address).
export function ArtifactBrowser({ runId, chosen, onChoose, onReady = () => {} }) {
  const { data, error, loading } = useApi(() => api.get(`/ui/runs/${encodeURIComponent(runId)}/artifacts`), [runId]);
  useEffect(() => { if (!loading) onReady(); }, [loading]);
  const tree = useMemo(() => (data ? buildTree(data.files) : null), [data]);
  const [filter, setFilter] = useState("");
  if (loading) return html`<${Loading} what="artifacts"/>`;
  if (error) return html`<${ErrorBox} error=${error}/>`;
  if (!data.files.length) return html`<${Empty}>This run logged no artifacts (run.log_artifact(path) adds files).</${Empty}>`;
  const shown = filter ? buildTree(data.files.filter((f) => f.path.toLowerCase().includes(filter.toLowerCase()))) : tree;
  const current = chosen && data.files.some((f) => f.path === chosen) ? chosen : null;
  return html`<div style=${SPLIT} data-testid="artifacts">
    <nav class="card" aria-label="artifact files" data-testid="artifact-tree">
      <div style=${HEAD}><strong>${fmtNum(data.files.length)} file${data.files.length === 1 ? "" : "s"}</strong><span class="muted">${fmtBytes(data.bytes)}</span></div>
      ${data.files.length > 20 ? html`<input name="artifact-filter" aria-label="filter files" placeholder="filter files" value=${filter}
        style=${{ width: "100%", marginBottom: "8px" }} onInput=${(e) => setFilter(e.target.value)}/>` : null}
      <${Folder} node=${shown} chosen=${current} onChoose=${onChoose} depth=${0}/>
    </nav>
    ${current ? html`<${Preview} key=${current} runId=${runId} path=${current}/>`
      : chosen ? html`<div class="error" role="alert" data-testid="error"><pre>This run has no file ${chosen}; pick one from the list.</pre></div>`
      : html`<${Empty}>Pick a file to preview it.</${Empty}>`}
  </div>`;
}
