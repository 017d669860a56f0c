"""``Inference``: generate, chat and embed, from typed commands to typed events (``commands.py``).

Everything a request can get wrong is checked first (``checks.py``), so a bad request is a 400
before any model loads. Generation runs in a worker thread that owns the runner's context for the
whole request (``worker.py``); the events are rendered by the fronts in ``http/``.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import AsyncGenerator, AsyncIterator, Iterator
from dataclasses import replace
from typing import Any

from ...engine.base import EngineModel, Generated, TokenLogprob, l2_normalized
from ...errors import BadRequest
from ...keep_alive import KeepAlive
from ...option_bounds import OptionLimits, check_context_tokens
from ...settings import Settings
from ...templates.gotemplate import parse
from ...templates.thinking import ThinkingParser
from ...templates.tools import ToolCallParser
from ..metrics import Metrics
from ..models.catalog import Catalog
from .cancel import Handle
from .checks import (
    LENGTH_ERROR,
    Prepared,
    check_caps,
    check_images,
    check_logprobs,
    check_prompt_size,
    check_think,
    check_token_inputs,
    context_tail,
    fired_stop,
    prepare,
    require,
)
from .commands import (
    Chat,
    Done,
    Embed,
    Embeddings,
    Event,
    Generate,
    LegacyEmbed,
    Piece,
    Rendered,
    Request,
    Timings,
)
from .images import image_tokens, mark_messages, with_markers
from .prompts import chat_prompt, generate_prompt
from .scheduler import Lease, Scheduler
from .worker import in_worker

ROLES = frozenset({"system", "user", "assistant", "tool"})
log = logging.getLogger(__name__)


class Inference:
    """The inference service: the catalogue to find models, the scheduler to run them."""

    def __init__(self, settings: Settings, catalog: Catalog, scheduler: Scheduler, limits: OptionLimits,
                 metrics: Metrics) -> None:
        self.settings = settings
        self.catalog = catalog
        self.scheduler = scheduler
        self.limits = limits
        self.metrics = metrics

    async def _prepare(self, command: Request, fmt: Any = None) -> Prepared:
        return await asyncio.to_thread(prepare, self.catalog, command.model, command.caller, command.options,
                                       command.keep_alive, fmt, self.limits)

    # -- generate ---------------------------------------------------------------------------------

    async def _generate_plan(self, command: Generate) -> tuple[Prepared, bool | str | None, Any, dict[str, Any]]:
        """Every check of a generate command (a 400 before any model loads): what it runs with."""
        name = command.model
        check_caps(self.settings, command)
        if command.raw and (command.template or command.system or command.context):
            raise BadRequest("raw mode does not support template, system, or context")
        prep = await self._prepare(command, command.format)
        prep.sampling.shift = command.shift is not False  # Ollama's default: shift the context when full
        if "embedding" in prep.capabilities and "completion" not in prep.capabilities:
            raise BadRequest(f'"{name}" does not support generate')
        # token ids go to llama.cpp's vocabulary lookup (std::vector::at): out of range aborts the runner
        check_context_tokens(command.context, prep.info.vocab_size if prep.info else None, self.limits)
        check_images(command.images, prep, name)
        if command.suffix and not command.raw:
            require(prep, name, "insert")
        think, tags = check_think(command, prep, name)
        return prep, think, tags, check_logprobs(command)

    async def generate(self, command: Generate) -> AsyncGenerator[Event, None]:
        """Text pieces, then :class:`Done` with the figures and ``context``."""
        started = time.perf_counter_ns()
        prep, think, tags, logprobs = await self._generate_plan(command)
        if not command.prompt and not command.suffix:
            yield await self._load_or_unload(prep)
            return
        images = check_images(command.images, prep, command.model)
        # the image markers go in front of the prompt (a raw prompt places its own [img-N])
        marked = replace(command, prompt=with_markers(command.prompt, 0, len(images))) \
            if images and not command.raw else command
        async with self.scheduler.acquire(prep.model, prep.options, prep.keep_alive) as lease:
            def prompt_tokens() -> list[int]:
                context = lease.context
                prompt = generate_prompt(prep, marked, context, think)
                return self._tokens(context, prompt, command.truncate, len(images))

            tokens = await asyncio.to_thread(prompt_tokens)
            split = _Split(tags)
            async for item in _generation(lease.context, tokens, prep, logprobs, command.cancel, images):
                if isinstance(item, Generated):
                    context = None if command.raw else [t for t in tokens if t >= 0] + item.tokens
                    stop = await self._stop_of(item, lease, prep)
                    yield self._done(item, lease, started, command.cancel, split.finish(), context, stop)
                else:
                    piece = split.feed(item)
                    if piece:
                        yield piece

    # -- chat -------------------------------------------------------------------------------------

    async def _chat_plan(self, command: Chat) -> tuple[Prepared, bool | str | None, Any, dict[str, Any]]:
        """Every check of a chat command (a 400 before any model loads): what it runs with."""
        name = command.model
        check_caps(self.settings, command)
        prep = await self._prepare(command, command.format)
        prep.sampling.shift = command.shift is not False
        if "embedding" in prep.capabilities and "completion" not in prep.capabilities:
            raise BadRequest(f'"{name}" does not support chat')
        for message in command.messages:
            if message.get("role") not in ROLES:
                raise BadRequest(f"invalid role: {message.get('role')!r}, expected system, user, assistant or tool")
            check_images(message.get("images"), prep, name)
        if command.tools:  # without a Go template, only when the GGUF's Jinja template has tools
            require(prep, name, "tools")
        think, tags = check_think(command, prep, name)
        return prep, think, tags, check_logprobs(command)

    def _chat_prompt(self, prep: Prepared, command: Chat, context: EngineModel, think: bool | str | None,
                     fit: bool) -> str:
        """A chat's prompt: the model's MESSAGEs and SYSTEM, then the request's messages. Blocking."""
        messages, _count = mark_messages(list(prep.model.messages) + list(command.messages))
        if prep.model.system and (not messages or messages[0].get("role") != "system"):
            messages.insert(0, {"role": "system", "content": prep.model.system})
        return chat_prompt(prep, messages, command.tools, context, think=think, fit=fit,
                           max_output=self.settings.max_prompt_bytes,
                           count=lambda text: len(context.tokenize(context_tail(text, context.n_ctx))))

    async def chat(self, command: Chat) -> AsyncGenerator[Event, None]:
        """Content and tool-call pieces, then :class:`Done` with the figures."""
        started = time.perf_counter_ns()
        prep, think, tags, logprobs = await self._chat_plan(command)
        if not command.messages:
            yield await self._load_or_unload(prep)
            return
        template = prep.model.template
        tools = command.tools
        parser = ToolCallParser(tools, template=parse(template) if template else None) if tools else None
        images = [image for m in command.messages for image in check_images(m.get("images"), prep, command.model)]
        async with self.scheduler.acquire(prep.model, prep.options, prep.keep_alive) as lease:
            def prompt_tokens() -> list[int]:
                prompt = self._chat_prompt(prep, command, lease.context, think, command.truncate is not False)
                return self._tokens(lease.context, prompt, command.truncate, len(images))

            tokens = await asyncio.to_thread(prompt_tokens)
            split = _Split(tags)
            counted: int | None = len(tokens)  # the first piece carries the prompt's token count
            async for item in _generation(lease.context, tokens, prep, logprobs, command.cancel, images):
                if isinstance(item, str | TokenLogprob):
                    piece = split.feed(item)
                    content, calls = parser.feed(piece.text) if parser and piece.text else (piece.text, [])
                    if content or piece.thinking or piece.logprobs:
                        yield Piece(content, piece.thinking, logprobs=piece.logprobs, prompt_tokens=counted)
                        counted = None
                    if calls:
                        yield Piece(tool_calls=tuple(c.to_api() for c in calls), prompt_tokens=counted)
                        counted = None
                elif isinstance(item, Generated):
                    piece = split.finish()
                    content, calls = parser.feed(piece.text) if parser and piece.text else (piece.text, [])
                    rest = content + (parser.finish() if parser else "")
                    last = Piece(rest, piece.thinking, tuple(c.to_api() for c in calls), piece.logprobs)
                    stop = await self._stop_of(item, lease, prep)
                    yield self._done(item, lease, started, command.cancel, last, None, stop)

    # -- rendering only ---------------------------------------------------------------------------

    async def render(self, command: Generate | Chat) -> Rendered:
        """The prompt a generate or chat command would send, and its token count, without running
        the model (``_debug_render_only``; Anthropic's ``count_tokens``). The model is loaded, as
        Ollama does: ``context`` is detokenized with it, and a chat's truncation counts with it.
        A chat with ``truncate: false`` renders every message (nothing dropped to fit)."""
        if isinstance(command, Generate):
            prep, think, _tags, _lp = await self._generate_plan(command)
        else:
            prep, think, _tags, _lp = await self._chat_plan(command)
        async with self.scheduler.acquire(prep.model, prep.options, prep.keep_alive) as lease:
            def render() -> Rendered:
                context = lease.context
                if isinstance(command, Generate):
                    prompt = generate_prompt(prep, command, context, think)
                    images = len(command.images)
                else:
                    prompt = self._chat_prompt(prep, command, context, think, command.truncate is not False)
                    images = sum(len(m.get("images") or []) for m in command.messages)
                check_prompt_size(prompt, self.settings.max_prompt_bytes)
                return Rendered(prompt, len(context.tokenize(prompt)), images)

            return await asyncio.to_thread(render)

    # -- embeddings -------------------------------------------------------------------------------

    async def embed(self, command: Embed) -> Embeddings:
        """L2-normalised vectors (cut to ``dimensions`` and normalised again, if asked)."""
        started = time.perf_counter_ns()
        prep = await self._prepare(command)
        inputs = command.inputs
        if command.token_inputs:
            check_token_inputs(command.token_inputs, prep.info.vocab_size if prep.info else None,
                               self.limits.max_context_tokens)
            async with self.scheduler.acquire(prep.model, prep.options, prep.keep_alive) as lease:
                def embed_tokens() -> tuple[list[list[float]], int]:
                    # the engine embeds text: the ids are detokenized (ordinary text tokenizes back to the same ids)
                    texts = [lease.context.detokenize(tokens) for tokens in command.token_inputs or []]
                    return lease.context.embed(texts, normalize=True, truncate=command.truncate)

                vectors, count = await asyncio.to_thread(embed_tokens)
            load = lease.load_duration
        elif inputs and self.settings.embed_batching:
            vectors, count, load = await self.scheduler.embed_batcher.embed(
                prep.model, prep.options, prep.keep_alive, inputs, truncate=command.truncate)
        else:
            async with self.scheduler.acquire(prep.model, prep.options, prep.keep_alive) as lease:
                if not inputs:
                    return Embeddings([], 0, time.perf_counter_ns() - started, lease.load_duration)
                vectors, count = await asyncio.to_thread(lease.context.embed, inputs, normalize=True,
                                                         truncate=command.truncate)
            load = lease.load_duration
        if command.dimensions:
            vectors = [l2_normalized(v[: command.dimensions]) for v in vectors]
        return Embeddings(vectors, count, time.perf_counter_ns() - started, load)

    async def legacy_embed(self, command: LegacyEmbed) -> list[float]:
        """One raw, un-normalised vector (``/api/embeddings``)."""
        prep = await self._prepare(command)
        async with self.scheduler.acquire(prep.model, prep.options, prep.keep_alive) as lease:
            if not command.prompt:
                return []
            vectors, _count = await asyncio.to_thread(lease.context.embed, [command.prompt], normalize=False)
        return vectors[0]

    # -- loading ----------------------------------------------------------------------------------

    async def load(self, name: str, keep_alive: KeepAlive | None = None, *, until: float | None = None) -> None:
        """Load a model and hold it for ``keep_alive`` (preload, warm-ups: the operator's, so no
        caller); ``until`` overrides the expiry (a warm-up holds a model until the fleet's ``expires_at``)."""
        prep = await asyncio.to_thread(prepare, self.catalog, name, None, None, None, None, self.limits)
        async with self.scheduler.acquire(prep.model, prep.options, keep_alive, until=until):
            pass

    async def preload(self, models: dict[str, str]) -> None:
        """``SKYLLAMA_PRELOAD``: each model with its keep_alive (in the background; one failing
        entry never stops the others)."""
        for name, keep_alive in models.items():
            try:
                await self.load(name, KeepAlive.parse(keep_alive) if keep_alive else None)
                log.info("preloaded %s", name)
            except Exception as e:  # noqa: BLE001 - one bad entry must not stop the others
                log.warning("could not preload %s: %s", name, e)

    async def _load_or_unload(self, prep: Prepared) -> Done:
        """An empty prompt or message list: ``keep_alive`` 0 unloads now, anything else loads."""
        if prep.keep_alive is not None and prep.keep_alive.unload_now:
            await self.scheduler.unload(prep.model)
            return Done("unload")
        async with self.scheduler.acquire(prep.model, prep.options, prep.keep_alive):
            pass
        return Done("load")

    def _tokens(self, context: EngineModel, prompt: str, truncate: bool | None, images: int = 0) -> list[int]:
        """The prompt's tokens (what can reach the context); 400 when too large, or too long
        with ``truncate: false``. Blocking: tokenizing may be a round trip to the runner. With
        ``images``, their ``[img-N]`` markers become placeholders (``images.py``), and nothing is
        cut: the engine refuses a prompt that does not fit rather than cut an image in half."""
        check_prompt_size(prompt, self.settings.max_prompt_bytes)
        tokens = image_tokens(context, prompt, images) if images else context.tokenize(context_tail(prompt, context.n_ctx))
        if truncate is False and len(tokens) >= context.n_ctx:
            raise BadRequest(LENGTH_ERROR)
        return tokens

    async def _stop_of(self, gen: Generated, lease: Lease, prep: Prepared) -> str | None:
        """Which stop string ended a generation (Anthropic reports it): its raw output, detokenized,
        searched for the stops in force. Only when it stopped with stops set (one round trip)."""
        stops = prep.sampling.stop
        if gen.done_reason != "stop" or not stops or not gen.tokens:
            return None
        text = await asyncio.to_thread(lease.context.detokenize, gen.tokens)
        return fired_stop(text, stops)

    def _done(self, gen: Generated, lease: Lease, started: int, handle: Handle | None, last: Piece,
              context: list[int] | None, stop: str | None = None) -> Done:
        try:
            self.metrics.observe(lease.runner.model.name.display(), load_ns=lease.load_duration,
                                 prompt_eval_ns=gen.prompt_eval_duration, eval_count=gen.eval_count,
                                 eval_ns=gen.eval_duration)
        except Exception:  # noqa: BLE001 - metrics must never fail a request
            pass
        reason = "cancel" if handle is not None and handle.cancelled else gen.done_reason
        timings = Timings(total=time.perf_counter_ns() - started, load=lease.load_duration,
                          prompt_eval_count=gen.prompt_eval_count, prompt_eval=gen.prompt_eval_duration,
                          eval_count=gen.eval_count, eval=gen.eval_duration)
        return Done(reason, last, timings, context, stop if reason == "stop" else None)


async def _generation(context: EngineModel, tokens: list[int], prep: Prepared, logprobs: dict[str, Any],
                      handle: Handle | None, images: list[bytes] | None = None,
                      ) -> AsyncIterator[str | TokenLogprob | Generated]:
    """The engine's items on the event loop: straight from a runner (``astream``), or from a
    worker thread that owns an in-process context (``worker.in_worker``). ``images`` go only to
    an engine that sees them (``engine/vision.py``): the placeholders in ``tokens`` are theirs."""
    if images:
        logprobs = {**logprobs, "images": images}
    astream = getattr(context, "astream", None)
    if astream is None:
        def work(cancel: threading.Event) -> Iterator[Any]:
            return context.generate(tokens, prep.sampling, grammar=prep.grammar, cancel=cancel, **logprobs)

        async for item in in_worker(work, handle):
            yield item
        return
    cancel = threading.Event()  # the explicit cancel (DELETE /api/requests/{id}); a disconnect closes the stream
    if handle is not None:
        handle.watch(cancel)
    stream = astream(tokens, prep.sampling, grammar=prep.grammar, cancel=cancel, **logprobs)
    try:
        async for item in stream:
            yield item
    finally:
        await stream.aclose()


class _Split:
    """Output into pieces (thinking, content, logprobs), thinking split by the template's tags."""

    def __init__(self, tags: tuple[str, str] | None) -> None:
        self.parser = ThinkingParser(*tags) if tags else None
        self.logprobs: list[dict[str, Any]] = []

    def feed(self, item: str | TokenLogprob) -> Piece:
        if isinstance(item, TokenLogprob):
            self.logprobs.append(item.to_api())
            return Piece()
        thinking, text = self.parser.feed(item) if self.parser else ("", item)
        lps, self.logprobs = self.logprobs, []
        return Piece(text, thinking, logprobs=tuple(lps))

    def finish(self) -> Piece:
        thinking, text = self.parser.finish() if self.parser else ("", "")
        lps, self.logprobs = self.logprobs, []
        return Piece(text, thinking, logprobs=tuple(lps))


async def collect(events: AsyncIterator[Event]) -> list[Event]:
    return [event async for event in events]
