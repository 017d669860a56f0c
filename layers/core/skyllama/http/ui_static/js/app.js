// The console's entry point: the key form, the tabs, and who the key belongs to.

import {api, ApiError, getKey, setKey} from "./api.js";
import * as chat from "./chat.js";
import {$, $$, say} from "./dom.js";
import * as keys from "./keys.js";
import * as modelsTab from "./models.js";
import * as running from "./running.js";
import {session} from "./session.js";
import * as usage from "./usage.js";

const TABS = {chat, models: modelsTab, running, usage, keys};

function report(error) {
  if (error instanceof ApiError && error.status === 401) {
    say(session.config.auth ? "This server needs an API key: paste one above." : "unauthorized", "error");
    $("#api-key").focus();
  } else {
    say(error.message || String(error), "error");
  }
}

async function whoami() {
  session.keyId = ""; session.owner = ""; session.admin = false;
  const who = $("#whoami");
  who.textContent = "";
  if (session.config.auth && !getKey()) { who.textContent = "no key"; return; }
  const mine = await api("GET", "api/usage?days=1");
  session.keyId = mine.key; session.owner = mine.owner;
  try {
    await api("GET", "api/keys");
    session.admin = true;
  } catch (e) {
    if (!(e instanceof ApiError) || e.status !== 403) throw e;
  }
  who.textContent = `${mine.key} · ${mine.owner}${session.admin ? " · admin" : ""}`;
  $("#tabs [data-tab=keys]").hidden = !session.admin;
}

async function open(name) {
  if (!TABS[name]) name = "chat";
  for (const panel of $$("[data-panel]")) panel.hidden = panel.dataset.panel !== name;
  for (const button of $$("#tabs button")) button.classList.toggle("active", button.dataset.tab === name);
  keys.hideSecret();  // a new key's secret never outlives the view it was shown in
  running.stop();
  if (location.hash !== `#${name}`) history.replaceState(null, "", `#${name}`);
  try {
    if (name === "usage") await usage.keysChanged();
    await TABS[name].refresh();
    if (name === "running") running.start();
  } catch (e) {
    report(e);
  }
}

async function useKey(event) {
  event.preventDefault();
  setKey($("#api-key").value.trim());
  $("#api-key").value = "";
  await boot();
}

async function boot() {
  try {
    await whoami();
  } catch (e) {
    report(e);
  }
  await open(location.hash.slice(1));
}

async function main() {
  session.config = await api("GET", "ui/config.json");
  $("#version").textContent = session.config.version || "";
  for (const tab of Object.values(TABS)) tab.init();
  for (const button of $$("#tabs button")) button.addEventListener("click", () => open(button.dataset.tab));
  $("#key-form").addEventListener("submit", (e) => useKey(e).catch(report));
  $("#forget-key").addEventListener("click", () => { setKey(""); boot(); });
  await boot();
  document.body.dataset.ready = "true";  // for tests and scripts: the first view is drawn
}

main().catch(report);
