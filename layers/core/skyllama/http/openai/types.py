"""OpenAI's wire types for the ``/v1`` routes, as Ollama accepts them (``openai/openai.go``).

Unknown fields (``n``, ``user``, ``logit_bias``, ``tool_choice`` ...) are ignored, as Go's decoder
ignores them in Ollama (one choice; the model decides whether to call a tool); the translation to
Ollama requests lives in ``http/openai/compat.py``, the Responses API's in ``http/openai/responses.py``.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from ..wire_base import WireBase


class _Wire(WireBase):  # unknown fields ignored; lone surrogates refused (T-36)
    pass


class StreamOptions(_Wire):
    """``stream_options``: ``include_usage`` adds a final chunk with ``usage`` and no choices."""

    include_usage: bool = False


class Message(_Wire):
    """A chat message: ``content`` is a string, a list of text/image parts, or null with tool calls."""

    role: str
    content: Any = None
    name: str | None = None
    tool_calls: list[Any] | None = None
    tool_call_id: str | None = None
    reasoning: str | None = None


class _Sampling(_Wire):
    model: str = Field(..., description="Model name, e.g. `smollm2:135m`.")
    stream: bool | None = False
    stream_options: StreamOptions | None = None
    max_tokens: int | None = Field(None, description="Becomes `num_predict`.")
    seed: int | None = None
    stop: Any = Field(None, description="A string or a list of strings.")
    temperature: float | None = Field(None, description="Defaults to 1.0, as OpenAI's.")
    top_p: float | None = Field(None, description="Defaults to 1.0, as OpenAI's.")
    frequency_penalty: float | None = None
    presence_penalty: float | None = None


class ChatCompletionRequest(_Sampling):
    """``POST /v1/chat/completions``."""

    messages: list[Message] = Field(default_factory=list)
    max_completion_tokens: int | None = Field(None, description="Used when `max_tokens` is not given.")
    response_format: dict[str, Any] | None = Field(
        None, description='`{"type": "json_object"}` or `{"type": "json_schema", "json_schema": {"schema": ...}}`.')
    tools: list[dict[str, Any]] | None = None
    reasoning: dict[str, Any] | None = Field(None, description='`{"effort": "low"|"medium"|"high"|"none"}`.')
    reasoning_effort: str | None = None
    logprobs: bool | None = Field(None, description="Each output token's log-probability in `choices[].logprobs`.")
    top_logprobs: int | None = Field(None, description="0-20 alternatives per token (400 outside).")
    debug_render_only: bool = Field(False, alias="_debug_render_only",
                                    description="Return the rendered prompt in `_debug_info`; the model does not run.")


class CompletionRequest(_Sampling):
    """``POST /v1/completions``: a single string prompt, with an optional ``suffix``."""

    prompt: Any = ""
    suffix: str | None = None


class EmbeddingRequest(_Wire):
    """``POST /v1/embeddings``: a string, a list of strings, a token array (the model's own token
    ids) or a list of token arrays."""

    model: str
    input: Any = None
    encoding_format: str | None = Field(None, description="`float` (default) or `base64`.")
    dimensions: int | None = Field(None, ge=1)


class ResponsesRequest(_Wire):
    """``POST /v1/responses`` (OpenAI's Responses API, as Ollama's ``openai/responses.go`` takes it)."""

    model: str = Field(..., description="Model name, e.g. `smollm2:135m`.")
    input: Any = Field(None, description="A string (one user message) or a list of input items.")
    instructions: str | None = Field(None, description="A system message in front of the input.")
    max_output_tokens: int | None = Field(None, description="Becomes `num_predict`.")
    reasoning: dict[str, Any] | None = Field(None, description='`{"effort": "low"|"medium"|"high"|"none"}`.')
    temperature: float | None = Field(None, description="Defaults to 1.0, as OpenAI's.")
    top_p: float | None = None
    text: dict[str, Any] | None = Field(None, description='`{"format": {"type": "json_schema", "schema": ...}}`.')
    tools: list[dict[str, Any]] | None = Field(None, description="Function tools (`namespace` groups expanded).")
    stream: bool | None = False
    truncation: str | None = None
    background: bool | None = False
