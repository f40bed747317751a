// Addresses in the browser: every page has its own, opens directly, and the back button works.
const listeners = new Set();

export function navigate(url, { replace = false } = {}) {
  if (url === location.pathname + location.search) return;
  if (replace) history.replaceState(null, "", url);
  else history.pushState(null, "", url);
  listeners.forEach((fn) => fn());
}

export function onNavigate(fn) {
  listeners.add(fn);
  return () => listeners.delete(fn);
}

window.addEventListener("popstate", () => listeners.forEach((fn) => fn()));

// Links inside the app move without reloading the page (a plain click on a same-origin <a>).
document.addEventListener("click", (event) => {
  if (event.defaultPrevented || event.button !== 0 || event.metaKey || event.ctrlKey || event.shiftKey) return;
  const link = event.target.closest ? event.target.closest("a[href]") : null;
  if (!link || link.target || link.hasAttribute("download")) return;
  const url = new URL(link.href, location.href);
  if (url.origin !== location.origin || url.pathname.startsWith("/api/") || url.pathname.startsWith("/static/")) return;
  event.preventDefault();
  navigate(url.pathname + url.search);
});

// The current address's query as a plain object.
export function queryParams() {
  return Object.fromEntries(new URLSearchParams(location.search));
}

// The address `path` with `params` as its query (empty values left out).
export function urlWith(path, params) {
  const search = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null && v !== "") search.set(k, v);
  const text = search.toString();
  return text ? `${path}?${text}` : path;
}

// Match `pathname` against routes like "/runs/:id"; returns [handler, params] or null.
export function match(routes, pathname) {
  for (const [pattern, handler] of routes) {
    const names = [];
    const regex = new RegExp(
      "^" + pattern.replace(/:(\w+)(\*)?/g, (_, name, rest) => { names.push(name); return rest ? "(.+)" : "([^/]+)"; }) + "/?$",
    );
    const found = pathname.match(regex);
    if (found) {
      const params = {};
      names.forEach((name, i) => { params[name] = decodeURIComponent(found[i + 1]); });
      return [handler, params];
    }
  }
  return null;
}
