// The server's API as the pages use it: JSON in and out, errors as ApiError with the server's message.
const BASE = "/api/v1";

export class ApiError extends Error {
  constructor(status, message, problems = [], type = "") {
    super(message);
    this.status = status;
    this.problems = problems;
    this.type = type;
  }
}

let workspace = sessionStorage.getItem("plinth.workspace") || "";

export function setWorkspace(name) {
  workspace = name || "";
  if (workspace) sessionStorage.setItem("plinth.workspace", workspace);
  else sessionStorage.removeItem("plinth.workspace");
}

export function currentWorkspace() {
  return workspace;
}

function query(params) {
  if (!params) return "";
  const parts = [];
  for (const [k, v] of Object.entries(params)) {
    if (v === undefined || v === null || v === "") continue;
    parts.push(`${encodeURIComponent(k)}=${encodeURIComponent(v)}`);
  }
  return parts.length ? `?${parts.join("&")}` : "";
}

// An address under /api/v1 (for links: downloads, iframes).
export function apiUrl(path, params) {
  return `${BASE}${path}${query(params)}`;
}

async function request(method, path, { params, body, raw } = {}) {
  const headers = { "X-Requested-With": "plinth-ui" };
  if (workspace) headers["X-Plinth-Workspace"] = workspace;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let response;
  try {
    response = await fetch(apiUrl(path, params), {
      method,
      headers,
      credentials: "same-origin",
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch (err) {
    throw new ApiError(0, `The server did not answer (${err.message}); is it running?`);
  }
  if (!response.ok) {
    let message = `${response.status} ${response.statusText}`;
    let problems = [];
    let type = "";
    try {
      const doc = await response.json();
      const error = doc.error || doc;
      message = error.message || error.detail || message;
      problems = error.problems || [];
      type = error.type || "";
    } catch (_) {
      // not JSON: keep the status line
    }
    if (response.status === 401 && !path.startsWith("/ui/session") && !path.startsWith("/ui/config")) {
      window.dispatchEvent(new CustomEvent("plinth:unauthorized", { detail: message }));
    }
    throw new ApiError(response.status, message, problems, type);
  }
  if (raw) return response;
  if (response.status === 204) return null;
  return response.json();
}

export const api = {
  get: (path, params) => request("GET", path, { params }),
  post: (path, body, params) => request("POST", path, { body: body ?? {}, params }),
  put: (path, body, params) => request("PUT", path, { body: body ?? {}, params }),
  del: (path, params) => request("DELETE", path, { params }),
  raw: (path, params) => request("GET", path, { params, raw: true }),
};
