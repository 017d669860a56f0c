// Keys (admin): create (the secret is shown once, here, and dropped from the page on Done or
// when the tab changes), list and revoke. The server keeps only each secret's sha256.

import {api} from "./api.js";
import {$, $$, h, say} from "./dom.js";

export async function refresh() {
  const keys = (await api("GET", "api/keys")).keys || [];
  $("#keys-table tbody").replaceChildren(...keys.map((k) => h("tr", {dataset: {key: k.id}},
    h("td", {}, h("code", {}, k.id)), h("td", {}, k.name), h("td", {}, k.owner), h("td", {}, (k.scopes || []).join(", ")),
    h("td", {}, Object.entries(k.quotas || {}).map(([q, v]) => `${q}=${v}`).join(", ") || "-"),
    h("td", {}, k.created_at || ""), h("td", {}, k.revoked ? "revoked" : "active"),
    h("td", {}, k.revoked ? "" : h("button", {type: "button", className: "danger",
      onclick: () => revoke(k.id).catch((e) => say(e.message, "error"))}, "Revoke")))));
}

async function revoke(id) {
  await api("DELETE", `api/keys/${encodeURIComponent(id)}`);
  say(`revoked ${id}`);
  await refresh();
}

export function hideSecret() {
  $("#newkey-secret-value").textContent = "";
  $("#newkey-secret").hidden = true;
}

async function create(event) {
  event.preventDefault();
  const number = (sel) => ($(sel).value ? Number($(sel).value) : undefined);
  const body = {name: $("#newkey-name").value.trim(), owner: $("#newkey-owner").value.trim(),
    scopes: $$("input[name=newkey-scope]:checked").map((c) => c.value), rpm: number("#newkey-rpm"),
    tokens_per_day: number("#newkey-tpd")};
  const answer = await api("POST", "api/keys", body);
  $("#newkey-secret-value").textContent = answer.secret;
  $("#newkey-secret").hidden = false;
  $("#key-create-form").reset();
  await refresh();
}

export function init() {
  $("#key-create-form").addEventListener("submit", (e) => create(e).catch((x) => say(x.message, "error")));
  $("#newkey-done").addEventListener("click", hideSecret);
}
