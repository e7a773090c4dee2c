// Calls to the admin API. The CSRF token lives only in this module's memory; the session
// itself is an HttpOnly cookie the page cannot read.
let csrf = null;

export class ApiError extends Error {
  constructor(status, body) {
    const error = (body && body.error) || {};
    super(error.message || `HTTP ${status}`);
    this.status = status;
    this.code = error.status || "";
  }
}

async function call(method, path, body, headers = {}) {
  const init = { method, headers: { ...headers }, credentials: "same-origin", cache: "no-store" };
  if (method !== "GET") {
    if (csrf) init.headers["x-gemgate-csrf"] = csrf;
    if (body !== undefined) {
      init.headers["content-type"] = "application/json";
      init.body = JSON.stringify(body);
    }
  }
  const resp = await fetch(`/admin/api${path}`, init);
  const text = await resp.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch { data = null; }
  if (!resp.ok) {
    if (resp.status === 401 && path !== "/session") window.dispatchEvent(new Event("signed-out"));
    throw new ApiError(resp.status, data);
  }
  return data;
}

export const get = (path, params) => call("GET", params ? `${path}?${query(params)}` : path);
export const post = (path, body) => call("POST", path, body === undefined ? {} : body);

export function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== "" && v !== null && v !== undefined) q.set(k, v);
  return q.toString();
}

export async function resume() {
  const s = await call("GET", "/session");
  csrf = s.csrf;
  return s;
}

export async function signIn(key) {
  const s = await call("POST", "/session", undefined, { authorization: `Bearer ${key}` });
  csrf = s.csrf;
  return s;
}

export async function signOut() {
  try { await call("POST", "/session/end", {}); } finally { csrf = null; }
}
