// Usage: requests, tokens and estimated cost per day and model for a key (GET /api/usage), an
// admin view across every key, the key's quota status, and the prices of the estimate (the
// server's SKYLLAMA_PRICES, by default the README's table; editable for this tab).

import {api} from "./api.js";
import {barChart} from "./chart.js";
import {$, dollars, h, say} from "./dom.js";
import {session} from "./session.js";

const PRICE_FIELDS = ["per_request", "per_gb_second", "memory_gb", "per_million_tokens"];
const PRICES = "skyllama.prices";

export function prices() {
  const saved = sessionStorage.getItem(PRICES);
  return saved ? JSON.parse(saved) : {...session.config.prices};
}

/** The estimated dollars of one model's day, as skyllama/pricing.py computes it. */
export function cost(entry, p = prices()) {
  const tokens = (entry.prompt_tokens || 0) + (entry.completion_tokens || 0);
  return (entry.requests || 0) * p.per_request + (entry.duration_ns || 0) / 1e9 * p.memory_gb * p.per_gb_second +
    tokens / 1e6 * p.per_million_tokens;
}

function dayLabels(days) {
  const out = [];
  const now = Date.now();
  for (let i = days - 1; i >= 0; i--) out.push(new Date(now - i * 86400000).toISOString().slice(0, 10));
  return out;
}

/** [{key, owner, date, model, requests, ...}] for the chosen key, or for every key. */
async function fetchRows(choice, days) {
  const ids = choice === "*"
    ? [...new Set([session.keyId, ...((await api("GET", "api/keys")).keys || []).map((k) => k.id)])]
    : [choice];
  const answers = await Promise.all(ids.filter(Boolean).map((id) =>
    api("GET", `api/usage?days=${days}${id === session.keyId ? "" : `&key=${encodeURIComponent(id)}`}`)));
  const rows = [];
  for (const answer of answers) {
    for (const day of answer.days || []) {
      for (const m of day.models || []) rows.push({key: answer.key, owner: answer.owner, date: day.date, ...m});
    }
  }
  return {rows, answers};
}

function series(rows, labels, by, value) {
  const names = [...new Set(rows.map((r) => r[by]))].sort();
  return names.map((name) => ({name, values: labels.map((day) =>
    rows.filter((r) => r[by] === name && r.date === day).reduce((sum, r) => sum + value(r), 0))}));
}

function quota(answer) {
  const box = $("#usage-quota");
  box.replaceChildren();
  if (!answer) return;
  const q = answer.quotas || {};
  const parts = [h("strong", {}, `${answer.key} (${answer.owner || "?"})`)];
  if (q.tokens_per_day) {
    parts.push(" tokens today ", h("progress", {max: q.tokens_per_day, value: Math.min(answer.tokens_today, q.tokens_per_day)}),
      ` ${answer.tokens_today} of ${q.tokens_per_day}`);
  } else {
    parts.push(` · ${answer.tokens_today} tokens today, no daily token quota`);
  }
  parts.push(q.rpm ? ` · ${q.rpm} requests per minute` : " · no requests-per-minute quota");
  box.append(h("p", {className: "quota"}, parts));
}

export async function refresh() {
  const choice = $("#usage-key").value || session.keyId;
  const days = Number($("#usage-days").value);
  const {rows, answers} = await fetchRows(choice, days);
  const labels = dayLabels(days);
  const p = prices();
  const by = choice === "*" ? "key" : "model";
  const count = (x) => (x >= 1000 ? `${(x / 1000).toFixed(x >= 10000 ? 0 : 1)}k` : String(Math.round(x)));
  $("#usage-charts").replaceChildren(
    barChart({title: `Requests per day by ${by}`, labels, series: series(rows, labels, by, (r) => r.requests), format: count}),
    barChart({title: `Tokens per day by ${by}`, labels,
      series: series(rows, labels, by, (r) => r.prompt_tokens + r.completion_tokens), format: count}),
    barChart({title: `Estimated cost per day by ${by}`, labels, series: series(rows, labels, by, (r) => cost(r, p)),
      format: dollars}));
  quota(choice === "*" ? null : answers[0]);
  const totals = new Map();
  for (const r of rows) {
    const k = `${r.key}\u0000${r.model}`;
    const t = totals.get(k) || {key: r.key, model: r.model, requests: 0, prompt_tokens: 0, completion_tokens: 0,
      embedding_inputs: 0, duration_ns: 0};
    for (const f of ["requests", "prompt_tokens", "completion_tokens", "embedding_inputs", "duration_ns"]) t[f] += r[f] || 0;
    totals.set(k, t);
  }
  $("#usage-table tbody").replaceChildren(...[...totals.values()].map((t) => h("tr", {},
    h("td", {}, t.key), h("td", {}, t.model), h("td", {className: "num"}, t.requests),
    h("td", {className: "num"}, t.prompt_tokens), h("td", {className: "num"}, t.completion_tokens),
    h("td", {className: "num"}, t.embedding_inputs), h("td", {className: "num"}, `${(t.duration_ns / 1e9).toFixed(2)} s`),
    h("td", {className: "num"}, dollars(cost(t, p))))));
}

function fillPrices() {
  const p = prices();
  for (const f of PRICE_FIELDS) $(`#price-${f}`).value = p[f];
}

export async function keysChanged() {
  const select = $("#usage-key");
  const current = select.value;
  const options = [h("option", {value: ""}, "this key")];
  if (session.admin) {
    options.push(h("option", {value: "*"}, "all keys"));
    for (const k of (await api("GET", "api/keys")).keys || []) {
      if (k.id !== session.keyId) options.push(h("option", {value: k.id}, `${k.id} (${k.name}, ${k.owner})`));
    }
  }
  select.replaceChildren(...options);
  if ([...select.options].some((o) => o.value === current)) select.value = current;
  fillPrices();
}

export function init() {
  $("#usage-form").addEventListener("submit", (e) => { e.preventDefault(); refresh().catch((x) => say(x.message, "error")); });
  $("#prices-form").addEventListener("submit", (e) => {
    e.preventDefault();
    const p = {};
    for (const f of PRICE_FIELDS) p[f] = Math.max(0, Number($(`#price-${f}`).value) || 0);
    sessionStorage.setItem(PRICES, JSON.stringify(p));
    refresh().catch((x) => say(x.message, "error"));
  });
  $("#prices-reset").addEventListener("click", () => {
    sessionStorage.removeItem(PRICES);
    fillPrices();
    refresh().catch((x) => say(x.message, "error"));
  });
}
