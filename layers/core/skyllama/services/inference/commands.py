"""The typed boundary of inference: the commands a front sends, the events the service yields.

The Ollama, OpenAI and Anthropic fronts (``http/``) each build these commands from their own wire
types and render the events in their own shape; the service never sees a wire type and never
builds a response. ``options``, ``keep_alive``, ``format`` and ``think`` arrive as the client sent
them: the service checks them, so their errors read the same on every front.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from ..access.ownership import Caller
from .cancel import Handle

Message = dict[str, Any]  # role, content, images, tool_calls, tool_name, tool_call_id, thinking


@dataclass(frozen=True)
class Request:
    """What every inference command carries: the model, its options, who asks, and the handle
    through which ``DELETE /api/requests/{id}`` cancels it."""

    model: str
    caller: Caller
    options: Any = None
    keep_alive: Any = None
    cancel: Handle | None = None


@dataclass(frozen=True)
class Sampled(Request):
    """A generation's controls, shared by generate and chat."""

    format: Any = None  # "json", a JSON schema, or nothing
    think: bool | str | None = None
    truncate: bool | None = None  # default: drop what does not fit; False: 400
    shift: bool | None = None  # default: a full context shifts; False: it ends with "length"
    logprobs: bool = False
    top_logprobs: int = 0


@dataclass(frozen=True)
class Generate(Sampled):
    """``/api/generate`` (and OpenAI's ``/v1/completions``)."""

    prompt: str = ""
    suffix: str = ""
    system: str | None = None
    template: str | None = None
    context: list[int] | None = None
    raw: bool = False
    images: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Chat(Sampled):
    """``/api/chat`` (and OpenAI's ``/v1/chat/completions``, Anthropic's ``/v1/messages``)."""

    messages: list[Message] = field(default_factory=list)
    tools: list[dict[str, Any]] | None = None
    # Anthropic's front: thinking asked of a model without it is dropped, not refused (Ollama's relax_thinking)
    relax_think: bool = False


@dataclass(frozen=True)
class Embed(Request):
    """``/api/embed``: normalised vectors, cut to ``dimensions`` when asked."""

    inputs: list[str] = field(default_factory=list)
    truncate: bool = True
    dimensions: int | None = None
    token_inputs: list[list[int]] | None = None  # OpenAI's token-array input, in the model's own token ids


@dataclass(frozen=True)
class LegacyEmbed(Request):
    """``/api/embeddings``: one raw vector of one prompt."""

    prompt: str = ""


# -- events -------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Piece:
    """Output as it is produced: text, thinking, tool calls (parsed from the text), logprobs."""

    text: str = ""
    thinking: str = ""
    tool_calls: tuple[dict[str, Any], ...] = ()
    logprobs: tuple[dict[str, Any], ...] = ()
    prompt_tokens: int | None = None  # on a chat's first piece: what a stream's header reports (Anthropic)

    def __bool__(self) -> bool:
        return bool(self.text or self.thinking or self.tool_calls or self.logprobs)


@dataclass(frozen=True)
class Timings:
    """A generation's figures, in Ollama's units (nanoseconds, token counts)."""

    total: int
    load: int
    prompt_eval_count: int
    prompt_eval: int
    eval_count: int
    eval: int


@dataclass(frozen=True)
class Done:
    """The end: why (``stop``, ``length``, ``cancel``; ``load``/``unload`` for an empty request),
    the last piece of output, the figures, and for generate the ``context`` to send back."""

    reason: str
    last: Piece = Piece()
    timings: Timings | None = None
    context: list[int] | None = None
    stop_sequence: str | None = None  # the stop string that ended it (reason ``stop``), if one did


Event = Piece | Done


@dataclass(frozen=True)
class Result:
    """A whole generation at once (``stream: false``): every piece joined, and its end."""

    text: str
    thinking: str
    tool_calls: list[dict[str, Any]]
    logprobs: list[dict[str, Any]]
    done: Done

    @classmethod
    def of(cls, events: Iterable[Event]) -> Result:
        pieces: list[Piece] = []
        done = Done("stop")
        for event in events:
            if isinstance(event, Done):
                done = event
                pieces.append(event.last)
            else:
                pieces.append(event)
        return cls(text="".join(p.text for p in pieces), thinking="".join(p.thinking for p in pieces),
                   tool_calls=[c for p in pieces for c in p.tool_calls],
                   logprobs=[lp for p in pieces for lp in p.logprobs], done=done)


@dataclass(frozen=True)
class Rendered:
    """What a generate or chat command would send the model, without running it
    (``_debug_render_only``, Anthropic's ``count_tokens``): the prompt and its token count."""

    prompt: str
    tokens: int
    image_count: int = 0


@dataclass(frozen=True)
class Embeddings:
    """``/api/embed``'s result: one vector per input, their token count, the figures."""

    vectors: list[list[float]]
    prompt_eval_count: int
    total: int
    load: int
