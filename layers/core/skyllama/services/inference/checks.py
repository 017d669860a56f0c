"""Everything a request can get wrong, checked before the scheduler sees it (a 400 before any
model loads): the model and its options, keep_alive, format, images, sizes, think, logprobs."""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from typing import Any

from ...engine.base import Sampling
from ...engine.grammar import grammar_for_format
from ...errors import BadRequest, InvalidOption
from ...gguf_info import GGUFInfo
from ...keep_alive import KeepAlive
from ...option_bounds import OptionLimits, native_seed
from ...options import effective_options, parse_request_options
from ...settings import Settings
from ...templates.prompt import describe_template
from ..access.ownership import Caller
from ..models.catalog import Catalog, Model
from .commands import Chat, Generate, Sampled
from .images import check_image_format


@dataclass
class Prepared:
    """A validated request: the model, its options, sampling, grammar and keep_alive."""

    model: Model
    options: dict[str, Any]
    sampling: Sampling
    grammar: str | None
    keep_alive: KeepAlive | None
    capabilities: list[str]
    info: GGUFInfo | None


def prepare(catalog: Catalog, name: str, caller: Caller, raw_options: Any, keep_alive: Any, fmt: Any,
            limits: OptionLimits) -> Prepared:
    """Look the model up for ``caller`` (404) and check options, keep_alive and format (400).
    Blocking.

    Options are checked against their bounds (``limits``: from the server's settings) twice: the
    request's own, then the model's stored PARAMETERs that the request leaves in force."""
    model = catalog.get(name, caller)
    options = parse_request_options(raw_options, limits)
    ka = None if keep_alive is None else KeepAlive.parse(keep_alive)
    merged = effective_options(model.params, options, limits)
    merged["seed"] = native_seed(merged["seed"])  # llama.cpp's seed is a uint32
    layer = model.model_layer
    return Prepared(model, options, Sampling.from_options(merged), grammar_for_format(fmt), ka,
                    catalog.capabilities(model), catalog.gguf_info(layer.digest) if layer else None)


def check_images(images: list[str] | None, prepared: Prepared, name: str) -> list[bytes]:
    """Decode base64 images (400 when invalid, or when the model cannot see)."""
    decoded = []
    for i, image in enumerate(images or []):
        try:
            decoded.append(base64.b64decode(image, validate=True))
        except (binascii.Error, ValueError):
            raise BadRequest(f"illegal base64 data in image {i}") from None
    if decoded and "vision" not in prepared.capabilities:
        raise BadRequest(f'"{name}" does not support images')
    check_image_format(decoded)
    return decoded


def check_caps(settings: Settings, command: Sampled) -> None:
    """Request-size caps (T-13), before any lookup: num_predict, message and image counts, image size."""
    options = command.options if isinstance(command.options, dict) else {}
    predict = options.get("num_predict")
    if isinstance(predict, int | float) and predict > settings.max_num_predict:
        raise InvalidOption(f"num_predict {predict} exceeds the maximum {settings.max_num_predict}")
    messages = command.messages if isinstance(command, Chat) else []
    if len(messages) > settings.max_messages:
        raise BadRequest(f"too many messages ({len(messages)}, limit {settings.max_messages})")
    images = list(command.images) if isinstance(command, Generate) else []
    for message in messages:
        images += message.get("images") or []
    if len(images) > settings.max_images:
        raise BadRequest(f"too many images ({len(images)}, limit {settings.max_images})")
    limit = settings.max_image_bytes
    if any(len(image) > (limit + 2) // 3 * 4 + 4 for image in images):
        raise BadRequest(f"image too large (limit {limit} bytes)")


def require(prepared: Prepared, _asked: str, capability: str) -> None:
    """Ollama's ``CheckCapabilities`` error, which names the model in full, not as asked
    (``registry.ollama.ai/library/smollm2:135m does not support insert``)."""
    if capability not in prepared.capabilities:
        raise BadRequest(f"{prepared.model.name} does not support {capability}")


THINK_LEVELS = ("low", "medium", "high", "max")
LENGTH_ERROR = "the input length exceeds the context length"
# Longer than any tokenizer's token: text before a prompt's last n_ctx * 64 characters cannot
# reach a context of n_ctx tokens, so it is cut before tokenizing, as truncation would drop it.
MAX_TOKEN_CHARS = 64


def check_prompt_size(prompt: str, limit: int) -> None:
    """A rendered prompt over SKYLLAMA_MAX_PROMPT_BYTES is a 400 before tokenizing (T-33):
    llama.cpp's tokenizer is quadratic in a text's special tokens, and megabytes wedged a model."""
    size = len(prompt.encode("utf-8", errors="surrogatepass"))
    if size > limit:
        raise BadRequest(f"prompt too large: {size} bytes after rendering the template (limit {limit} bytes)")


def context_tail(prompt: str, n_ctx: int) -> str:
    """The end of ``prompt`` that can reach a context of ``n_ctx`` tokens (the engine keeps the
    last tokens of a longer prompt, as Ollama's runner does)."""
    keep = n_ctx * MAX_TOKEN_CHARS
    return prompt if len(prompt) <= keep else prompt[-keep:]


def check_think(command: Sampled, prep: Prepared, name: str) -> tuple[bool | str | None, tuple[str, str] | None]:
    """``think`` as Ollama reads it: 400 for an unknown level or a model without thinking; a
    thinking model defaults to thinking. Returns the value for the template and, when thinking
    is on, the tags that split the output."""
    think = command.think
    if isinstance(think, str) and think not in THINK_LEVELS:
        raise BadRequest(f'invalid think value: "{think}" (must be "high", "medium", "low", true, or false)')
    capable = "thinking" in prep.capabilities
    if think not in (None, False) and not capable:
        if isinstance(command, Chat) and command.relax_think:  # Ollama relaxes it to nil for Anthropic clients
            return None, None
        raise BadRequest(f'"{name}" does not support thinking')
    if think is None and capable:
        think = True
    if think in (None, False):
        return think, None
    tags = describe_template(prep.model.template)["thinking_tags"] if prep.model.template else None
    return think, tuple(tags) if tags else ("<think>", "</think>")


def check_token_inputs(inputs: list[list[int]], vocab_size: int | None, max_tokens: int) -> None:
    """Token-array embedding inputs: lists of the model's own token ids. An id outside the
    vocabulary aborts llama.cpp when it is detokenized (T-31), so each is checked first."""
    high = vocab_size - 1 if vocab_size else None
    for tokens in inputs:
        if len(tokens) > max_tokens:
            raise BadRequest(f"input has {len(tokens)} tokens, more than the limit {max_tokens}")
        for token in tokens:
            if isinstance(token, bool) or not isinstance(token, int):
                raise BadRequest("invalid input type")
            if token < 0 or (high is not None and token > high):
                limit = f"between 0 and {high}" if high is not None else "0 or more"
                raise BadRequest(f"input token {token} is outside the model's vocabulary (ids are {limit})")


def fired_stop(text: str, stops: list[str]) -> str | None:
    """The stop string that ended a generation whose raw output is ``text``: the engine cuts at
    the first occurrence of any of them, so the earliest found (the first listed on a tie)."""
    hits = [(text.find(stop), i, stop) for i, stop in enumerate(stops) if stop and stop in text]
    return min(hits)[2] if hits else None


def check_logprobs(command: Sampled) -> dict[str, Any]:
    """The engine's ``logprobs`` argument (only when asked, so engines without it still work)."""
    top = command.top_logprobs or 0
    if top < 0 or top > 20:
        raise BadRequest("top_logprobs must be between 0 and 20")
    return {"logprobs": top} if command.logprobs or top else {}
