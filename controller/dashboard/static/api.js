// The API with the pasted token. The token lives in this tab's sessionStorage; the event
// stream authenticates with the HttpOnly cookie POST /api/v1/session sets (EventSource
// cannot send headers).
const KEY = "portwatch.token";

export const session = { name: null, role: null };

export function token() { return sessionStorage.getItem(KEY); }

export class ApiError extends Error {
  constructor(status, detail) { super(detail); this.status = status; }
}

export async function api(path, { method = "GET", body } = {}) {
  const headers = { Authorization: `Bearer ${token() || ""}` };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const r = await fetch(`/api/v1${path}`, {
    method, headers, body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await r.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch { data = { detail: text }; }
  if (!r.ok) {
    if (r.status === 401) { window.dispatchEvent(new CustomEvent("pw-logout")); }
    throw new ApiError(r.status, (data && data.detail) || `HTTP ${r.status}`);
  }
  return data;
}

export async function login(pasted) {
  sessionStorage.setItem(KEY, pasted.trim());
  try {
    const me = await api("/session", { method: "POST" });
    Object.assign(session, me);
    return me;
  } catch (e) {
    sessionStorage.removeItem(KEY);
    throw e;
  }
}

export async function restore() {
  if (!token()) return null;
  try {
    const me = await api("/whoami");
    Object.assign(session, me);
    return me;
  } catch {
    sessionStorage.removeItem(KEY);
    return null;
  }
}

export async function logout() {
  try { await api("/session", { method: "DELETE" }); } catch { /* already gone */ }
  sessionStorage.removeItem(KEY);
  session.name = session.role = null;
}

// who may do what: the API refuses anyway (403); the page only hides what would fail
export const can = {
  act: () => session.role === "operator" || session.role === "admin",
  admin: () => session.role === "admin",
};
