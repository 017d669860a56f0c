"""What skyllama supports of Ollama's API, route by route and field by field.

This table is the source of the README's compatibility section (``scripts/render_compat.py``
writes it; ``tests/unit/test_compat_table.py`` fails when the README, the app's route table or the
wire types drift from it). Status: ``supported``, ``partly`` (with what is missing) or ``not``
(with why). Routes marked ``skyllama`` are skyllama's own, not Ollama's.
"""

from __future__ import annotations

S, P, N, OWN = "supported", "partly", "not", "skyllama"

# (methods, path, status, note)
ROUTES: list[tuple[str, str, str, str]] = [
    ("GET HEAD", "/", S, "`Ollama is running`"),
    ("GET HEAD", "/api/version", S, ""),
    ("POST", "/api/generate", S, "see the field table"),
    ("POST", "/api/chat", S, "see the field table"),
    ("POST", "/api/embed", S, "concurrent requests are batched"),
    ("POST", "/api/embeddings", S, "legacy, not normalised"),
    ("POST", "/api/create", S, "JSON and Modelfile forms; GGUF and safetensors; quantize"),
    ("HEAD POST", "/api/blobs/{digest}", S, "streamed, verified; presigned S3 for large blobs on AWS"),
    ("GET HEAD", "/api/tags", S, "with `capabilities`"),
    ("POST", "/api/show", S, "`model_info` from a bounded GGUF reader; `capabilities`"),
    ("POST", "/api/copy", S, ""),
    ("DELETE", "/api/delete", S, "prunes blobs no other model uses"),
    ("POST", "/api/pull", S, "Ollama-protocol registries; resumable; outbound allowlist"),
    ("POST", "/api/push", S, "to Ollama-protocol registries (e.g. another skyllama)"),
    ("GET", "/api/ps", S, "plus `running`, `queued`, `num_parallel`"),
    ("GET", "/api/status", N, "ollama.com cloud status: skyllama has no cloud proxy"),
    ("POST", "/api/me", N, "ollama.com account: not applicable"),
    ("POST", "/api/signout", N, "ollama.com account: not applicable"),
    ("POST", "/api/experimental/web_search", N, "proxies ollama.com: not applicable"),
    ("POST", "/api/experimental/web_fetch", N, "proxies ollama.com: not applicable"),
    ("GET", "/api/experimental/model-recommendations", N, "ollama.com catalogue: not applicable"),
    ("POST", "/v1/chat/completions", S, "SSE, tools, response_format, logprobs and top_logprobs, "
                                        "`_debug_render_only`; `n` and `tool_choice` ignored, as Ollama "
                                        "ignores them (one choice; the model decides whether to call a tool)"),
    ("POST", "/v1/completions", S, "string prompt, suffix"),
    ("POST", "/v1/embeddings", S, "float and base64, dimensions; token-array input (the model's own ids; "
                                  "Ollama answers `invalid input type`)"),
    ("GET", "/v1/models", S, ""),
    ("GET", "/v1/models/{model}", S, ""),
    ("POST", "/v1/messages", S, "Anthropic Messages, streamed and not, tools; Ollama's checks and texts; "
                                "thinking a model lacks is dropped (Ollama's relax_thinking); stop_reason "
                                "`stop_sequence` names the one that fired (Ollama: `end_turn`); the stream's "
                                "input_tokens counted, not estimated; an unknown content block type is a 400 "
                                "(Ollama skips it silently)"),
    ("POST", "/v1/messages/count_tokens", S, "the rendered prompt counted by the model's tokenizer "
                                             "(Ollama has no route for it)"),
    ("POST", "/v1/responses", S, "string or item-list input, instructions, function tools and calls, "
                                 "text.format json_schema, reasoning, usage; streamed events with "
                                 "sequence numbers; no web_search (400), nothing stored, tool_choice ignored"),
    ("POST", "/v1/audio/transcriptions", N, "no audio models in the engine"),
    ("GET", "/api/usage", OWN, "per-key usage by day and model"),
    ("GET", "/api/requests", OWN, "in-flight request ids (admin)"),
    ("DELETE", "/api/requests/{request_id}", OWN, "cancel a generation by its X-Request-Id"),
    ("POST", "/api/blobs/{digest}/complete", OWN, "commit a presigned S3 upload after verifying it"),
    ("GET", "/metrics", OWN, "Prometheus text format"),
    ("GET", "/api/keys", OWN, "list API keys (admin; never secrets)"),
    ("POST", "/api/keys", OWN, "create an API key, its secret shown once (admin)"),
    ("DELETE", "/api/keys/{key_id}", OWN, "revoke an API key (admin)"),
    ("GET HEAD", "/ui", OWN, "the web console (redirects to `/ui/`)"),
    ("GET HEAD", "/ui/", OWN, "the web console: chat, models, running, usage, keys"),
    ("GET HEAD", "/ui/config.json", OWN, "the console's settings: auth on or off, prices"),
    ("GET HEAD", "/ui/{asset}", OWN, "the console's static files, shipped in the package"),
    ("GET HEAD", "/v2/", OWN, "registry protocol (also `/v2`); skyllama serves models to other instances"),
    ("GET HEAD PUT PATCH POST DELETE", "/v2/{rest}", OWN, "manifests, blobs with Range, uploads, mount, tags"),
]

# route -> (field, status, note)
FIELDS: dict[str, list[tuple[str, str, str]]] = {
    "/api/generate": [
        ("model", S, ""), ("prompt", S, "empty prompt loads (`load`); with keep_alive 0 unloads"),
        ("suffix", S, "fill-in-middle when the template uses .Suffix, else 400"),
        ("system", S, ""), ("template", S, "Go template, rendered by skyllama's own engine"),
        ("context", S, "returned and accepted"), ("stream", S, ""), ("raw", S, ""),
        ("format", S, "`json` or a JSON schema, enforced with a grammar"),
        ("images", S, "through the model's vision projector (llama.cpp's mtmd), at Ollama's `[img-N]` places; "
                      "PNG, JPEG, GIF or BMP, else 400; a model without a projector is Ollama's 400"),
        ("options", S, "every option mapped or documented as having no effect; a value of the wrong type is a "
                       "400 with Ollama's text (`option \"stop\" must be of type array`), where Ollama answers 500"),
        ("keep_alive", S, ""), ("think", S, "for models whose template supports thinking"),
        ("truncate", S, ""),
        ("shift", S, "default true: a full context drops half its history after `num_keep`; "
                     "false: done_reason `length`"),
        ("logprobs", S, ""), ("top_logprobs", S, "0 to 20"),
        ("_debug_render_only", S, "the rendered prompt in `_debug_info` (one object, streamed or not); "
                                  "the model is loaded, as Ollama does, but does not run"),
    ],
    "/api/chat": [
        ("model", S, ""), ("messages", S, "roles system/user/assistant/tool; tool_name, tool_call_id"),
        ("tools", S, "tool calls parsed from the output, streamed with id and index"),
        ("stream", S, ""), ("format", S, "`json` or a JSON schema"), ("options", S, ""),
        ("keep_alive", S, ""), ("think", S, ""), ("truncate", S, "drops the oldest messages to fit"),
        ("shift", P, "as on /api/generate"), ("logprobs", S, ""), ("top_logprobs", S, ""),
        ("_debug_render_only", S, "as on /api/generate: system, tools and the model's MESSAGEs rendered"),
    ],
    "/api/embed": [
        ("model", S, ""), ("input", S, "string or list, batched"), ("truncate", S, "false + too long: 400"),
        ("dimensions", S, "truncate and re-normalise"), ("options", S, ""), ("keep_alive", S, ""),
    ],
    "/api/embeddings": [("model", S, ""), ("prompt", S, ""), ("options", S, ""), ("keep_alive", S, "")],
    "/api/create": [
        ("model", S, "`name` accepted too"), ("from", S, "a model name or a blob digest; never a server path"),
        ("files", S, "GGUF, or safetensors + config + tokenizer (converted)"), ("adapters", S, "GGUF LoRA, or a PEFT "
         "safetensors LoRA (adapter_config.json + adapter_model.safetensors) converted to one for llama and qwen2 "
         "bases; checked against the base (architecture, tensor names and shapes) and applied at Ollama's scale 1.0"),
        ("template", S, ""), ("system", S, ""), ("license", S, ""), ("parameters", S, "typed; unknown names 400"),
        ("messages", S, ""), ("quantize", S, "llama.cpp's quantizer"), ("quantization", S, "deprecated alias"),
        ("modelfile", S, "FROM, PARAMETER, TEMPLATE, SYSTEM, MESSAGE, LICENSE, ADAPTER"),
        ("path", N, "names a file on the server: refused"), ("stream", S, ""),
    ],
    "/api/show": [("model", S, ""), ("verbose", S, "adds tensors"), ("system", P, "accepted, not applied"),
                  ("template", P, "accepted, not applied"), ("options", P, "accepted, not applied")],
    "/api/copy": [("source", S, ""), ("destination", S, "")],
    "/api/delete": [("model", S, "")],
}


def render() -> str:
    """The README's compatibility section (between its markers)."""
    lines = ["| route | status | notes |", "|---|---|---|"]
    for methods, path, status, note in ROUTES:
        lines.append(f"| `{methods} {path}` | {status} | {note} |")
    for route, fields in FIELDS.items():
        lines += ["", f"`{route}` fields:", "", "| field | status | notes |", "|---|---|---|"]
        lines += [f"| `{name}` | {status} | {note} |" for name, status, note in fields]
    return "\n".join(lines)
