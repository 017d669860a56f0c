// Chat playground: any model, streamed answers, Stop (the request is aborted: the server sees
// the client leave and cancels the generation), system prompt, options, JSON / JSON-schema
// format, tools, images for vision models, and each answer's timings from its final chunk.

import {ApiError, models, stream} from "./api.js";
import {$, $$, h, say} from "./dom.js";

const state = {messages: [], controller: null, models: []};

function readOptions() {
  const options = {};
  for (const name of ["temperature", "num_predict", "num_ctx", "seed"]) {
    const value = $(`#opt-${name}`).value.trim();
    if (value !== "") options[name] = Number(value);
  }
  return options;
}

function readFormat() {
  const choice = $("input[name=chat-format]:checked").value;
  if (choice === "json") return "json";
  if (choice === "schema") return JSON.parse($("#chat-schema").value || "{}");
  return undefined;
}

function readImages() {
  const files = Array.from($("#chat-images").files || []);
  return Promise.all(files.map((file) => new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.onload = () => resolve(String(reader.result).split(",", 2)[1]);
    reader.onerror = () => reject(reader.error);
    reader.readAsDataURL(file);
  })));
}

/** The timings line of a finished answer (Ollama's final chunk: durations in ns). */
export function timings(final, firstTokenMs) {
  const parts = [];
  if (firstTokenMs !== null) parts.push(`first token ${Math.round(firstTokenMs)} ms`);
  const serverTtft = ((final.load_duration || 0) + (final.prompt_eval_duration || 0)) / 1e6;
  if (final.prompt_eval_duration !== undefined) parts.push(`server TTFT ${Math.round(serverTtft)} ms`);
  if (final.eval_count && final.eval_duration) {
    parts.push(`${(final.eval_count / (final.eval_duration / 1e9)).toFixed(1)} tokens/s`);
  }
  if (final.eval_count !== undefined) parts.push(`${final.eval_count} tokens`);
  if (final.prompt_eval_count !== undefined) parts.push(`prompt ${final.prompt_eval_count}`);
  if (final.done_reason) parts.push(`done: ${final.done_reason}`);
  return parts.join(" · ");
}

function bubble(role, text) {
  const body = h("div", {className: "content"}, text);
  const item = h("li", {className: `msg ${role}`}, h("span", {className: "role"}, role), body,
    h("div", {className: "timings"}));
  $("#chat-log").append(item);
  item.scrollIntoView({block: "end"});
  return item;
}

function busy(on) {
  $("#chat-send").disabled = on;
  $("#chat-stop").disabled = !on;
}

async function send(event) {
  event.preventDefault();
  const text = $("#chat-input").value;
  const model = $("#chat-model").value;
  if (!model) { say("Pick a model first (none is installed?)", "error"); return; }
  if (!text.trim()) return;
  let format, tools;
  try {
    format = readFormat();
    tools = $("#chat-tools-on").checked ? JSON.parse($("#chat-tools").value || "[]") : undefined;
  } catch (e) {
    say(`Not valid JSON: ${e.message}`, "error");
    return;
  }
  const images = await readImages();
  const user = {role: "user", content: text};
  if (images.length) user.images = images;
  state.messages.push(user);
  bubble("user", text);
  $("#chat-input").value = "";
  $("#chat-images").value = "";
  const system = $("#chat-system").value.trim();
  const body = {model, messages: [...(system ? [{role: "system", content: system}] : []), ...state.messages],
    options: readOptions()};
  const keepAlive = $("#opt-keep_alive").value.trim();
  if (keepAlive) body.keep_alive = /^-?\d+$/.test(keepAlive) ? Number(keepAlive) : keepAlive;
  if (format !== undefined) body.format = format;
  if (tools) body.tools = tools;

  const item = bubble("assistant", "");
  item.classList.add("streaming");
  const content = $(".content", item);
  const controller = new AbortController();
  state.controller = controller;
  busy(true);
  const started = performance.now();
  let firstTokenMs = null, answer = "", calls = [], final = null;
  try {
    for await (const chunk of stream("api/chat", body, controller.signal)) {
      const message = chunk.message || {};
      if (message.content) {
        if (firstTokenMs === null) firstTokenMs = performance.now() - started;
        answer += message.content;
        content.textContent = answer;
      }
      if (message.tool_calls) calls = calls.concat(message.tool_calls);
      if (chunk.done) final = chunk;
    }
    if (calls.length) item.append(h("pre", {className: "tool-calls"}, JSON.stringify(calls, null, 2)));
    state.messages.push({role: "assistant", content: answer, ...(calls.length ? {tool_calls: calls} : {})});
    if (final) $(".timings", item).textContent = timings(final, firstTokenMs);
  } catch (e) {
    if (e.name === "AbortError") {
      item.classList.add("stopped");
      $(".timings", item).textContent = `stopped after ${answer.length} characters`;
      state.messages.push({role: "assistant", content: answer});
    } else {
      item.classList.add("failed");
      $(".timings", item).textContent = e instanceof ApiError ? `error: ${e.message}` : String(e);
      state.messages.pop();  // the user's turn is not kept: it can be sent again
    }
  } finally {
    item.classList.remove("streaming");
    state.controller = null;
    busy(false);
  }
}

function pickModel() {
  const found = state.models.find((m) => m.name === $("#chat-model").value);
  const vision = Boolean(found && (found.capabilities || []).includes("vision"));
  $("#chat-images").disabled = !vision;
  $("#chat-images-hint").hidden = vision;
}

export async function refresh() {
  const select = $("#chat-model");
  const current = select.value;
  state.models = (await models()).filter((m) => !(m.capabilities || []).length ||
    (m.capabilities || []).includes("completion"));
  select.replaceChildren(...state.models.map((m) => h("option", {value: m.name}, m.name)));
  if (state.models.some((m) => m.name === current)) select.value = current;
  pickModel();
}

export function init() {
  $("#chat-form").addEventListener("submit", send);
  $("#chat-input").addEventListener("keydown", (e) => {
    if (e.key === "Enter" && !e.shiftKey) { e.preventDefault(); $("#chat-form").requestSubmit(); }
  });
  $("#chat-stop").addEventListener("click", () => state.controller && state.controller.abort());
  $("#chat-clear").addEventListener("click", () => { state.messages = []; $("#chat-log").replaceChildren(); });
  $("#chat-model").addEventListener("change", pickModel);
  for (const radio of $$("input[name=chat-format]")) {
    radio.addEventListener("change", () => { $("#chat-schema").hidden = radio.value !== "schema" || !radio.checked; });
  }
  $("#chat-tools-on").addEventListener("change", (e) => { $("#chat-tools").hidden = !e.target.checked; });
}
