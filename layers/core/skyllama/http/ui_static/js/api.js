// The API as the console calls it: relative URLs (so a path prefix such as API Gateway's stage is
// kept), the key in an Authorization header (never a cookie: credentials "omit"), NDJSON streams.

const KEY = "skyllama.key";
// The console is served at <base>/ui/; the API lives at <base>/.
export const base = new URL("../", document.baseURI);

export function getKey() { return sessionStorage.getItem(KEY) || ""; }
export function setKey(key) {
  if (key) sessionStorage.setItem(KEY, key); else sessionStorage.removeItem(KEY);
}

export class ApiError extends Error {
  constructor(status, message) { super(message); this.status = status; }
}

function headers(json) {
  const h = {Accept: "application/json"};
  const key = getKey();
  if (key) h.Authorization = "Bearer " + key;
  if (json) h["Content-Type"] = "application/json";
  return h;
}

function errorText(data, fallback) {
  if (data && typeof data === "object" && data.error) {
    return typeof data.error === "string" ? data.error : (data.error.message || JSON.stringify(data.error));
  }
  return typeof data === "string" && data ? data : fallback;
}

/** One request; the decoded JSON answer. Errors become ApiError with the server's message. */
export async function api(method, path, body) {
  const init = {method, headers: headers(body !== undefined), credentials: "omit", cache: "no-store"};
  if (body !== undefined) init.body = JSON.stringify(body);
  const response = await fetch(new URL(path, base), init);
  const text = await response.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch { data = text; }
  if (!response.ok) throw new ApiError(response.status, errorText(data, response.statusText));
  return data;
}

/** POST with streaming on; yields each NDJSON event as it arrives. An error line throws. */
export async function* stream(path, body, signal) {
  const response = await fetch(new URL(path, base), {
    method: "POST", headers: headers(true), body: JSON.stringify({...body, stream: true}),
    credentials: "omit", cache: "no-store", signal,
  });
  if (!response.ok) {
    const text = await response.text();
    let data = text;
    try { data = JSON.parse(text); } catch { /* not JSON */ }
    throw new ApiError(response.status, errorText(data, response.statusText));
  }
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  const parse = (line) => {
    const event = JSON.parse(line);
    if (event && event.error) throw new ApiError(200, errorText(event, "error"));
    return event;
  };
  for (;;) {
    const {value, done} = await reader.read();
    if (done) break;
    buffer += value;
    let newline;
    while ((newline = buffer.indexOf("\n")) >= 0) {
      const line = buffer.slice(0, newline).trim();
      buffer = buffer.slice(newline + 1);
      if (line) yield parse(line);
    }
  }
  if (buffer.trim()) yield parse(buffer.trim());
}

/** The server's models (/api/tags), for the pickers. */
export async function models() {
  const data = await api("GET", "api/tags");
  return (data && data.models) || [];
}
