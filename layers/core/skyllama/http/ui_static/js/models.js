// Models: the list with capabilities, size, quantization and family; show (parameters,
// template, Modelfile); copy and delete; pull with a live progress bar; create from a Modelfile.

import {api, models, stream} from "./api.js";
import {$, bytes, h, say} from "./dom.js";

let selected = null;

function row(m) {
  const d = m.details || {};
  return h("tr", {dataset: {model: m.name}},
    h("td", {}, m.name), h("td", {}, d.family || ""), h("td", {}, d.parameter_size || ""),
    h("td", {}, d.quantization_level || ""), h("td", {className: "num"}, bytes(m.size)),
    h("td", {}, (m.capabilities || []).map((c) => h("span", {className: "tag"}, c))),
    h("td", {}, m.modified_at ? new Date(m.modified_at).toLocaleString() : ""),
    h("td", {}, h("button", {type: "button", onclick: () => show(m.name)}, "Show")));
}

export async function refresh() {
  const list = await models();
  $("#models-table tbody").replaceChildren(...list.map(row));
  if (selected && !list.some((m) => m.name === selected)) $("#model-detail").hidden = true;
}

async function show(name) {
  const info = await api("POST", "api/show", {model: name});
  selected = name;
  $("#model-detail-name").textContent = name;
  $("#model-parameters").textContent = info.parameters || "(none)";
  $("#model-template").textContent = info.template || "(none)";
  $("#model-modelfile").textContent = info.modelfile || "";
  $("#model-delete").textContent = "Delete";
  $("#model-detail").hidden = false;
}

async function copy(event) {
  event.preventDefault();
  const destination = $("#model-copy-to").value.trim();
  if (!selected || !destination) return;
  await api("POST", "api/copy", {source: selected, destination});
  say(`copied ${selected} to ${destination}`);
  $("#model-copy-to").value = "";
  await refresh();
}

async function remove() {
  const button = $("#model-delete");
  if (button.textContent !== "Really delete?") { button.textContent = "Really delete?"; return; }
  await api("DELETE", "api/delete", {model: selected});
  say(`deleted ${selected}`);
  $("#model-detail").hidden = true;
  selected = null;
  await refresh();
}

async function pull(event) {
  event.preventDefault();
  const model = $("#pull-name").value.trim();
  if (!model) return;
  const bar = $("#pull-progress"), status = $("#pull-status");
  bar.hidden = false; bar.value = 0;
  // One bar over every layer: the sum of each digest's completed bytes over the sum of totals.
  const layers = new Map();
  try {
    for await (const event of stream("api/pull", {model, insecure: $("#pull-insecure").checked})) {
      if (event.digest && event.total) layers.set(event.digest, [event.completed || 0, event.total]);
      let done = 0, total = 0;
      for (const [c, t] of layers.values()) { done += c; total += t; }
      if (total) bar.value = done / total;
      status.textContent = event.status + (total ? ` (${bytes(done)} of ${bytes(total)})` : "");
      if (event.status === "success") bar.value = 1;
    }
    await refresh();
  } catch (e) {
    status.textContent = `error: ${e.message}`;
  }
}

async function create(event) {
  event.preventDefault();
  const model = $("#create-name").value.trim();
  const status = $("#create-status");
  try {
    for await (const line of stream("api/create", {model, modelfile: $("#create-modelfile").value})) {
      status.textContent = line.status || "";
    }
    await refresh();
  } catch (e) {
    status.textContent = `error: ${e.message}`;
  }
}

export function init() {
  $("#models-refresh").addEventListener("click", () => refresh().catch((e) => say(e.message, "error")));
  $("#model-copy-form").addEventListener("submit", (e) => copy(e).catch((x) => say(x.message, "error")));
  $("#model-delete").addEventListener("click", () => remove().catch((x) => say(x.message, "error")));
  $("#pull-form").addEventListener("submit", pull);
  $("#create-form").addEventListener("submit", create);
}
