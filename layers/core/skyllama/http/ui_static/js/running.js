// Running: /api/ps (the fleet's on AWS) with live keep_alive countdowns, the queue and parallel
// figures per model, and Unload (keep_alive 0, as `ollama stop` does).

import {api, ApiError} from "./api.js";
import {$, bytes, h, say, seconds} from "./dom.js";

let rows = [];
let ticking = 0, polling = 0;

function until(row) {
  return seconds((Date.parse(row.expires_at) - Date.now()) / 1000);
}

function render() {
  $("#running-table tbody").replaceChildren(...rows.map((m) => h("tr", {dataset: {model: m.name}},
    h("td", {}, m.name), h("td", {className: "num"}, bytes(m.size)),
    h("td", {}, m.size_vram ? (m.size_vram >= m.size ? "100% GPU" : "CPU/GPU") : "100% CPU"),
    h("td", {className: "num"}, m.context_length || ""), h("td", {className: "num"}, m.running ?? ""),
    h("td", {className: "num"}, m.queued ?? ""), h("td", {className: "num"}, m.num_parallel ?? ""),
    h("td", {className: "until"}, until(m)),
    h("td", {}, h("button", {type: "button", onclick: () => unload(m.name).catch((e) => say(e.message, "error"))}, "Unload")))));
  $("#running-empty").hidden = rows.length > 0;
}

function tick() {
  for (const tr of document.querySelectorAll("#running-table tbody tr")) {
    const m = rows.find((r) => r.name === tr.dataset.model);
    if (m) tr.querySelector(".until").textContent = until(m);
  }
}

async function unload(model) {
  try {
    await api("POST", "api/generate", {model, prompt: "", keep_alive: 0, stream: false});
  } catch (e) {
    // an embedding model has no generate: its own route unloads it the same way
    if (!(e instanceof ApiError) || e.status !== 400) throw e;
    await api("POST", "api/embed", {model, input: [], keep_alive: 0});
  }
  say(`unloaded ${model}`);
  await refresh();
}

export async function refresh() {
  const data = await api("GET", "api/ps");
  rows = (data && data.models) || [];
  render();
}

export function start() {
  stop();
  ticking = setInterval(tick, 1000);
  polling = setInterval(() => refresh().catch(() => {}), 5000);
}

export function stop() {
  clearInterval(ticking);
  clearInterval(polling);
}

export function init() {}
