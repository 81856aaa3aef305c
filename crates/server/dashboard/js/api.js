// HTTP calls to the admin-only dashboard routes and to /api/function, each with the admin
// key. A 401 signs the dashboard out.

let adminKey = null;
let onUnauthorized = () => {};

export function setAdminKey(key, unauthorized) {
  adminKey = key;
  if (unauthorized) onUnauthorized = unauthorized;
}

export function getAdminKey() {
  return adminKey;
}

async function request(path, { method = "GET", body, headers = {} } = {}) {
  const res = await fetch(path, {
    method,
    headers: { authorization: `Convex ${adminKey}`, ...(body ? { "content-type": "application/json" } : {}), ...headers },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (res.status === 401) {
    onUnauthorized();
    throw new Error("the admin key was refused");
  }
  const json = await res.json().catch(() => null);
  if (!res.ok) throw new Error(json?.message ?? `HTTP ${res.status}`);
  return json;
}

export const api = {
  check: (key) =>
    fetch("/_dashboard/api/check", { headers: { authorization: `Convex ${key}` } }).then(async (r) => ({ ok: r.ok, body: await r.json().catch(() => null) })),
  functions: () => request("/_dashboard/api/functions"),
  auth: () => request("/_dashboard/api/auth"),
  authCheck: (token) => request("/_dashboard/api/auth/check", { method: "POST", body: { token } }),
  health: () => request("/_dashboard/api/health"),
  fileUrls: (ids) => request("/_dashboard/api/files/urls", { method: "POST", body: { ids } }),
  uploadUrl: () => request("/_dashboard/api/files/upload-url", { method: "POST" }),
  deleteFile: (id) => request(`/_dashboard/api/files/${encodeURIComponent(id)}`, { method: "DELETE" }),
};

/** Runs a function through /api/function (what `pulsebase run` uses). `as`: anonymous,
 * admin, or an identity object. */
export async function runFunction(path, args, as) {
  const headers = {};
  if (as === "admin") headers.authorization = `Convex ${adminKey}`;
  else if (as && typeof as === "object") {
    const identity = btoa(unescape(encodeURIComponent(JSON.stringify(as))));
    headers.authorization = `Convex ${adminKey}:${identity}`;
  }
  const started = performance.now();
  const res = await fetch("/api/function", {
    method: "POST",
    headers: { "content-type": "application/json", ...headers },
    body: JSON.stringify({ path, args, format: "convex_encoded_json" }),
  });
  const ms = performance.now() - started;
  const json = await res.json().catch(() => ({ status: "error", errorMessage: `HTTP ${res.status}` }));
  if (!res.ok) return { status: "error", errorMessage: json.message ?? `HTTP ${res.status}`, logLines: [], ms };
  return { ...json, ms };
}

/** Reads the live log stream; calls onItem for each JSON line until `signal` aborts. */
export async function streamLogs(query, onItem, signal) {
  const res = await fetch(`/_dashboard/api/logs?${new URLSearchParams(query)}`, {
    headers: { authorization: `Convex ${adminKey}` },
    signal,
  });
  if (res.status === 401) {
    onUnauthorized();
    return;
  }
  const reader = res.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += decoder.decode(value, { stream: true });
    let nl;
    while ((nl = buffer.indexOf("\n")) >= 0) {
      const line = buffer.slice(0, nl);
      buffer = buffer.slice(nl + 1);
      if (line.trim()) onItem(JSON.parse(line));
    }
  }
}
