"""Prompts from templates: a model's Go TEMPLATE layer, or its GGUF's own Jinja chat template.

Both run in skyllama's bounded sandboxes (``templates/``); llama.cpp never renders a template.
"""

from __future__ import annotations

from typing import Any

from ...engine.base import EngineModel
from ...templates.jinja import render_jinja
from ...templates.prompt import render_chat, render_generate
from .checks import Prepared
from .commands import Generate


def generate_prompt(prep: Prepared, command: Generate, context: EngineModel, think: bool | str | None) -> str:
    """The text an ``/api/generate`` request sends to the model: its template rendered (or the raw
    prompt), after the detokenized ``context`` of an earlier answer."""
    prefix = context.detokenize(command.context) if command.context else ""
    if command.raw:
        return prefix + command.prompt
    system = command.system if command.system is not None else (prep.model.system or "")
    template = command.template or prep.model.template
    if template:
        rendered = render_generate(template, prompt=command.prompt, system=system, suffix=command.suffix,
                                   history=prep.model.messages, think=think)
        return prefix + rendered.prompt
    messages = ([{"role": "system", "content": system}] if system else []) + list(prep.model.messages)
    messages.append({"role": "user", "content": command.prompt})
    return prefix + jinja_prompt(prep, messages, None, context)


def jinja_prompt(prep: Prepared, messages: list[dict[str, Any]], tools: list[Any] | None,
                  context: EngineModel) -> str:
    """Models without a template layer use their GGUF's own chat template (sandboxed Jinja)."""
    info = prep.info
    if info is None or not info.chat_template:
        return "\n\n".join(str(m.get("content") or "") for m in messages)
    special = {}
    for key in ("bos", "eos"):
        token_id = info.metadata.get(f"tokenizer.ggml.{key}_token_id")
        # the GGUF's own metadata, unchecked by llama.cpp here: an id past the vocabulary aborts (T-31)
        known = isinstance(token_id, int) and 0 <= token_id < (info.vocab_size or 0)
        special[key] = context.detokenize([int(token_id)]) if known and token_id is not None else ""
    return render_jinja(info.chat_template, messages, tools, bos_token=special["bos"], eos_token=special["eos"])


def chat_prompt(prep: Prepared, messages: list[dict[str, Any]], tools: list[Any] | None, context: EngineModel, *,
                think: bool | str | None, fit: bool, max_output: int, count: Any) -> str:
    """A chat's prompt: the Go template (dropping the oldest messages to fit the context when
    ``fit``), or the GGUF's Jinja template."""
    template = prep.model.template
    if not template:
        return jinja_prompt(prep, messages, tools, context)
    return render_chat(template, messages, tools, think=think, num_ctx=context.n_ctx if fit else None,
                       count_tokens=count, max_output=max_output).prompt
