"""Ollama's wire types for the inference routes (``/api/generate``, ``/api/chat``, ``/api/embed``,
``/api/embeddings``), as pydantic models. Unknown fields are ignored as Go's decoder ignores them;
``options`` and ``keep_alive`` stay raw here and are checked by ``skyllama.options`` and
``skyllama.durations`` so their errors read as Ollama's do.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from .wire_base import WireBase


class _Wire(WireBase):  # unknown fields ignored; lone surrogates refused (T-36)
    pass


class InferenceRequest(_Wire):
    """Fields every inference request shares."""

    # Not required here: a missing or empty name gets each route's own Ollama text (generate and
    # embed: 404 "model '' not found"; chat and embeddings: 400 "model is required").
    model: str = Field("", description="Model name, e.g. `smollm2:135m`.")
    options: dict[str, Any] | None = Field(None, description="Model options (see the Modelfile docs).")
    keep_alive: Any = Field(None, description="Seconds or a Go duration; negative = forever, 0 = unload.")


class GenerateRequest(InferenceRequest):
    """``POST /api/generate``."""

    prompt: str = ""
    suffix: str = ""
    system: str | None = None
    template: str | None = None
    context: list[int] | None = Field(None, description="Deprecated: tokens returned by a previous call.")
    stream: bool | None = None
    raw: bool = False
    format: Any = Field(None, description='"json" or a JSON schema object.')
    images: list[str] | None = Field(None, description="Base64-encoded images.")
    think: bool | str | None = None
    truncate: bool | None = Field(None, description="Default true: drop the oldest history to fit num_ctx; false: 400.")
    shift: bool | None = Field(None, description="Default true: a full context drops half its history after num_keep and generation goes on; false: it ends with done_reason length.")
    logprobs: bool | None = None
    top_logprobs: int | None = Field(None, description="0-20 alternatives per token (400 outside).")
    debug_render_only: bool = Field(False, alias="_debug_render_only",
                                    description="Return the rendered prompt in `_debug_info`; the model does not run.")


class ChatMessage(_Wire):
    """One message of a chat."""

    role: str
    content: str = ""
    images: list[str] | None = None
    tool_calls: list[dict[str, Any]] | None = None
    tool_name: str | None = None
    tool_call_id: str | None = None
    thinking: str | None = None


class ChatRequest(InferenceRequest):
    """``POST /api/chat``."""

    messages: list[ChatMessage] | None = None
    tools: list[dict[str, Any]] | None = None
    stream: bool | None = None
    format: Any = None
    think: bool | str | None = None
    truncate: bool | None = Field(None, description="Default true: drop the oldest history to fit num_ctx; false: 400.")
    shift: bool | None = Field(None, description="Default true: a full context drops half its history after num_keep and generation goes on; false: it ends with done_reason length.")
    logprobs: bool | None = None
    top_logprobs: int | None = Field(None, description="0-20 alternatives per token (400 outside).")
    debug_render_only: bool = Field(False, alias="_debug_render_only",
                                    description="Return the rendered prompt in `_debug_info`; the model does not run.")


class EmbedRequest(InferenceRequest):
    """``POST /api/embed``: one string or a list; vectors are L2-normalised."""

    input: str | list[str] | None = None
    truncate: bool = True
    dimensions: int | None = Field(None, ge=1)


class OllamaEmbedRequest(EmbedRequest):
    """``POST /api/embed`` as Ollama decodes it: ``input`` is any JSON value, checked by the route,
    so a number or a list of numbers is Ollama's ``invalid input type``."""

    input: Any = Field(None, description="A string or a list of strings.")


class EmbeddingsRequest(InferenceRequest):
    """``POST /api/embeddings`` (legacy): one prompt, one raw vector."""

    prompt: str = ""
