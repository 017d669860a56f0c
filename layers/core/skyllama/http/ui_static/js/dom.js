// Small DOM helpers: elements are built with textContent only (never innerHTML), so nothing a
// model or a server says is ever parsed as markup.

export const $ = (selector, root = document) => root.querySelector(selector);
export const $$ = (selector, root = document) => Array.from(root.querySelectorAll(selector));

/** h("td", {className: "x", onclick: f}, "text", childNode, ...) */
export function h(tag, props = {}, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(props || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith("on")) el.addEventListener(name.slice(2), value);
    else if (name === "dataset") Object.assign(el.dataset, value);
    else if (name in el && name !== "list") el[name] = value;
    else el.setAttribute(name, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

export function bytes(n) {
  if (!n) return "0 B";
  const units = ["B", "KB", "MB", "GB", "TB"];
  let i = 0;
  while (n >= 1000 && i < units.length - 1) { n /= 1000; i++; }
  return `${n >= 100 || i === 0 ? Math.round(n) : n.toFixed(1)} ${units[i]}`;
}

export function seconds(s) {
  if (s < 0) return "stopping…";
  if (s > 10 * 365 * 86400) return "forever";
  const d = Math.floor(s / 86400), hh = Math.floor(s / 3600) % 24, m = Math.floor(s / 60) % 60;
  const sec = Math.floor(s % 60);
  if (d) return `${d}d ${hh}h`;
  if (hh) return `${hh}h ${m}m`;
  if (m) return `${m}m ${sec}s`;
  return `${sec}s`;
}

export function dollars(x) {
  if (!x) return "$0";
  return x < 0.01 ? `$${x.toPrecision(2)}` : `$${x.toFixed(2)}`;
}

let statusTimer = 0;
/** A line in the footer; errors stay until the next message. */
export function say(text, kind = "info") {
  const el = document.getElementById("status");
  el.textContent = text;
  el.className = kind;
  clearTimeout(statusTimer);
  if (kind !== "error") statusTimer = setTimeout(() => { el.textContent = ""; }, 6000);
}
