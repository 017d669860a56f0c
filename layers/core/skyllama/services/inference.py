"""Generate, chat and embed as async event streams; HTTP decides the shape (``http/ndjson.py``).

Everything a request can get wrong is checked before the scheduler sees it, so a bad request is a
400 before any model loads. Generation runs in a worker thread that owns the runner's context for
the whole request and feeds an asyncio queue; the consumer going away (client disconnect) sets a
cancel flag the engine checks between tokens, and the lease is released only once the thread has
stopped touching the context.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import threading
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from typing import Any

from ..engine.base import EngineModel, Generated, Sampling, TokenLogprob
from ..engine.grammar import grammar_for_format
from ..errors import BadRequest, InvalidOption
from ..gguf_info import GGUFInfo
from ..keep_alive import KeepAlive
from ..option_bounds import OptionLimits, check_context_tokens, native_seed
from ..options import effective_options, parse_request_options
from ..timefmt import now_rfc3339
from . import cancel as cancellation
from .catalog import Catalog, Model
from .metrics import observe_generation
from .scheduler import Lease, Scheduler

Event = dict[str, Any]
ROLES = frozenset({"system", "user", "assistant", "tool"})


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


def prepare(catalog: Catalog, name: str, raw_options: Any, keep_alive: Any, fmt: Any = None,
            limits: OptionLimits | None = None) -> Prepared:
    """Look the model up (404) and check options, keep_alive and format (400). Blocking.

    Options are checked against their bounds (``limits``: from the server's settings) twice: the
    request's own, then the model's stored PARAMETERs that the request leaves in force."""
    limits = limits or OptionLimits()
    model = catalog.get(name)
    options = parse_request_options(raw_options, limits)
    ka = None if keep_alive is None else KeepAlive.parse(keep_alive)
    merged = effective_options(model.params, options, limits)
    merged["seed"] = native_seed(merged["seed"])  # llama.cpp's seed is a uint32
    layer = model.model_layer
    return Prepared(model, options, Sampling.from_options(merged), grammar_for_format(fmt), ka,
                    catalog.capabilities(model), catalog.gguf_info(layer.digest) if layer else None)


def limits_of(scheduler: Scheduler) -> OptionLimits:
    """The option bounds this server's settings imply (T-31)."""
    return OptionLimits.from_settings(scheduler.settings)


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
    if decoded:  # the llama.cpp engine here has no multimodal projector support yet
        raise BadRequest(f'"{name}" images are not supported by this server\'s engine')
    return decoded


def check_caps(settings: Any, req: Any) -> None:
    """Request-size caps (T-13), before any lookup: num_predict, message and image counts, image size."""
    options = req.options if isinstance(req.options, dict) else {}
    predict = options.get("num_predict")
    if isinstance(predict, int | float) and predict > settings.max_num_predict:
        raise InvalidOption(f"num_predict {predict} exceeds the maximum {settings.max_num_predict}")
    messages = getattr(req, "messages", None) or []
    if len(messages) > settings.max_messages:
        raise BadRequest(f"too many messages ({len(messages)}, limit {settings.max_messages})")
    images = list(getattr(req, "images", None) or [])
    for message in messages:
        images += message.images or []
    if len(images) > settings.max_images:
        raise BadRequest(f"too many images ({len(images)}, limit {settings.max_images})")
    limit = settings.max_image_bytes
    if any(len(image) > (limit + 2) // 3 * 4 + 4 for image in images):
        raise BadRequest(f"image too large (limit {limit} bytes)")


def require(prepared: Prepared, name: str, capability: str) -> None:
    if capability not in prepared.capabilities:
        raise BadRequest(f'"{name}" does not support {capability}')


def _chunk(name: str, **fields: Any) -> Event:
    return {"model": name, "created_at": now_rfc3339(), **fields}


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


def check_think(req: Any, prep: Prepared, name: str) -> tuple[bool | str | None, tuple[str, str] | None]:
    """``think`` as Ollama reads it: 400 for an unknown level or a model without thinking; a
    thinking model defaults to thinking. Returns the value for the template and, when thinking
    is on, the tags that split the output."""
    from ..templates.prompt import describe_template

    think = req.think
    if isinstance(think, str) and think not in THINK_LEVELS:
        raise BadRequest(f'invalid think value: "{think}" (must be "high", "medium", "low", true, or false)')
    capable = "thinking" in prep.capabilities
    if think not in (None, False) and not capable:
        raise BadRequest(f'"{name}" does not support thinking')
    if think is None and capable:
        think = True
    if think in (None, False):
        return think, None
    tags = describe_template(prep.model.template)["thinking_tags"] if prep.model.template else None
    return think, tuple(tags) if tags else ("<think>", "</think>")


def check_logprobs(req: Any) -> dict[str, Any]:
    """The engine's ``logprobs`` argument (only when asked, so engines without it still work)."""
    top = getattr(req, "top_logprobs", None) or 0
    if top < 0 or top > 20:
        raise BadRequest("top_logprobs must be between 0 and 20")
    return {"logprobs": top} if getattr(req, "logprobs", False) or top else {}


def _metrics(gen: Generated, lease: Lease, started: int) -> Event:
    observe_generation(lease.runner.model.name.display(), load_ns=lease.load_duration,
                       prompt_eval_ns=gen.prompt_eval_duration, eval_count=gen.eval_count, eval_ns=gen.eval_duration)
    reason = "cancel" if cancellation.was_cancelled() else gen.done_reason
    return {"done_reason": reason, "total_duration": time.perf_counter_ns() - started,
            "load_duration": lease.load_duration, "prompt_eval_count": gen.prompt_eval_count,
            "prompt_eval_duration": gen.prompt_eval_duration, "eval_count": gen.eval_count,
            "eval_duration": gen.eval_duration}


def _settle(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


async def in_worker(work: Callable[[threading.Event], Iterator[Any]]) -> AsyncIterator[Any]:
    """Run a blocking iterator in its own thread and yield its items on the event loop.

    Closing this generator (disconnect) sets the cancel flag and waits for the thread to end.
    """
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
    cancel = threading.Event()
    closing = threading.Event()
    cancellation.watch(cancel)  # DELETE /api/requests/{id} stops the engine; the stream still ends
    finished: asyncio.Future[None] = loop.create_future()

    def put(kind: str, value: Any) -> None:
        loop.call_soon_threadsafe(queue.put_nowait, (kind, value))

    def run() -> None:
        try:
            for item in work(cancel):
                put("item", item)
                if closing.is_set():
                    break
        except BaseException as e:  # noqa: BLE001 - handed to the consumer
            put("error", e)
        finally:
            put("end", None)
            loop.call_soon_threadsafe(_settle, finished)

    threading.Thread(target=run, name="skyllama-generate", daemon=True).start()
    try:
        while True:
            kind, value = await queue.get()
            # Text that piled up while the client was being served goes out as one chunk: on a
            # busy CPU this keeps per-token HTTP work from slowing the decode threads.
            while isinstance(value, str) and not queue.empty() and isinstance(queue._queue[0][1], str):  # type: ignore[attr-defined]
                value += queue.get_nowait()[1]
            if kind == "end":
                return
            if kind == "error":
                raise value
            yield value
    finally:
        closing.set()
        cancel.set()
        cancelled = False
        while not finished.done():  # the context is ours until the thread lets go of it
            try:
                await asyncio.shield(finished)
            except asyncio.CancelledError:
                cancelled = True
        if cancelled:
            raise asyncio.CancelledError


# -- generate ---------------------------------------------------------------------------------------

async def generate(catalog: Catalog, scheduler: Scheduler, req: Any) -> AsyncGenerator[Event, None]:
    """``/api/generate`` events: text chunks, then a final chunk with metrics and ``context``."""
    started = time.perf_counter_ns()
    name = req.model
    check_caps(scheduler.settings, req)
    if req.raw and (req.template or req.system or req.context):
        raise BadRequest("raw mode does not support template, system, or context")
    prep = await asyncio.to_thread(prepare, catalog, name, req.options, req.keep_alive, req.format,
                                    limits_of(scheduler))
    prep.sampling.shift = req.shift is not False  # Ollama's default: shift the context when full
    if "embedding" in prep.capabilities and "completion" not in prep.capabilities:
        raise BadRequest(f'"{name}" does not support generate')
    # token ids go to llama.cpp's vocabulary lookup (std::vector::at): out of range aborts the process
    check_context_tokens(req.context, prep.info.vocab_size if prep.info else None, limits_of(scheduler))
    check_images(req.images, prep, name)
    if req.suffix and not req.raw:
        require(prep, name, "insert")
    think, tags = check_think(req, prep, name)
    logprobs = check_logprobs(req)
    if not req.prompt and not req.suffix:
        async for event in _load_or_unload(scheduler, prep, name, {"response": ""}):
            yield event
        return
    async with scheduler.acquire(prep.model, prep.options, prep.keep_alive) as lease:
        def work(cancel: threading.Event) -> Iterator[Any]:
            prompt = _render_generate(prep, req, lease.context, think)
            check_prompt_size(prompt, scheduler.settings.max_prompt_bytes)
            tokens = lease.context.tokenize(context_tail(prompt, lease.context.n_ctx))
            if req.truncate is False and len(tokens) >= lease.context.n_ctx:
                raise BadRequest(LENGTH_ERROR)
            yield from lease.context.generate(tokens, prep.sampling, grammar=prep.grammar, cancel=cancel,
                                              **logprobs)
            yield tokens

        final: Generated | None = None
        split = _Split(tags)
        async for item in in_worker(work):
            if isinstance(item, str | TokenLogprob):
                thinking, text, lps = split.feed(item)
                if text or thinking or lps:
                    yield _chunk(name, response=text, **_extra(thinking, lps), done=False)
            elif isinstance(item, Generated):
                final = item
            elif final is not None:
                thinking, text, lps = split.finish()
                done = _chunk(name, response=text, **_extra(thinking, lps), done=True,
                              **_metrics(final, lease, started))
                if not req.raw:
                    done["context"] = list(item) + final.tokens
                yield done


class _Split:
    """Output pieces into (thinking, content, logprobs), thinking split by the template's tags."""

    def __init__(self, tags: tuple[str, str] | None) -> None:
        from ..templates.thinking import ThinkingParser

        self.parser = ThinkingParser(*tags) if tags else None
        self.logprobs: list[Event] = []

    def feed(self, item: str | TokenLogprob) -> tuple[str, str, list[Event]]:
        if isinstance(item, TokenLogprob):
            self.logprobs.append(item.to_api())
            return "", "", []
        thinking, text = self.parser.feed(item) if self.parser else ("", item)
        lps, self.logprobs = self.logprobs, []
        return thinking, text, lps

    def finish(self) -> tuple[str, str, list[Event]]:
        thinking, text = self.parser.finish() if self.parser else ("", "")
        lps, self.logprobs = self.logprobs, []
        return thinking, text, lps


def _extra(thinking: str, logprobs: list[Event]) -> Event:
    return {**({"thinking": thinking} if thinking else {}), **({"logprobs": logprobs} if logprobs else {})}


def _render_generate(prep: Prepared, req: Any, context: EngineModel, think: bool | str | None = None) -> str:
    from ..templates.prompt import render_generate

    prefix = context.detokenize(req.context) if req.context else ""
    if req.raw:
        return prefix + req.prompt
    system = req.system if req.system is not None else (prep.model.system or "")
    template = req.template or prep.model.template
    if template:
        rendered = render_generate(template, prompt=req.prompt, system=system, suffix=req.suffix,
                                   history=prep.model.messages, think=think)
        return prefix + rendered.prompt
    messages = ([{"role": "system", "content": system}] if system else []) + list(prep.model.messages)
    messages.append({"role": "user", "content": req.prompt})
    return prefix + _render_jinja(prep, messages, None, context)


def _render_jinja(prep: Prepared, messages: list[dict[str, Any]], tools: list[Any] | None,
                  context: EngineModel) -> str:
    """Models without a template layer use their GGUF's own chat template (sandboxed Jinja)."""
    from ..templates.jinja import render_jinja

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


async def _load_or_unload(scheduler: Scheduler, prep: Prepared, name: str, empty: Event) -> AsyncIterator[Event]:
    """Empty prompt/messages: ``keep_alive`` 0 unloads now, anything else loads the model."""
    if prep.keep_alive is not None and prep.keep_alive.unload_now:
        await scheduler.unload(prep.model)
        yield _chunk(name, **empty, done=True, done_reason="unload")
        return
    async with scheduler.acquire(prep.model, prep.options, prep.keep_alive):
        pass
    yield _chunk(name, **empty, done=True, done_reason="load")


# -- chat -------------------------------------------------------------------------------------------

async def chat(catalog: Catalog, scheduler: Scheduler, req: Any) -> AsyncGenerator[Event, None]:
    """``/api/chat`` events: content chunks, tool-call chunks, then a final chunk with metrics."""
    from ..templates.gotemplate import parse
    from ..templates.tools import ToolCallParser

    started = time.perf_counter_ns()
    name = req.model
    check_caps(scheduler.settings, req)
    prep = await asyncio.to_thread(prepare, catalog, name, req.options, req.keep_alive, req.format,
                                    limits_of(scheduler))
    prep.sampling.shift = req.shift is not False  # Ollama's default: shift the context when full
    if "embedding" in prep.capabilities and "completion" not in prep.capabilities:
        raise BadRequest(f'"{name}" does not support chat')
    messages = req.messages or []
    for message in messages:
        if message.role not in ROLES:
            raise BadRequest(f"invalid role: {message.role!r}, expected system, user, assistant or tool")
        check_images(message.images, prep, name)
    template = prep.model.template
    if req.tools and template:
        require(prep, name, "tools")
    think, tags = check_think(req, prep, name)
    logprobs = check_logprobs(req)
    if not messages:
        async for event in _load_or_unload(scheduler, prep, name, {"message": {"role": "assistant", "content": ""}}):
            yield event
        return
    msgs = list(prep.model.messages) + [m.model_dump(exclude_none=True) for m in messages]
    if prep.model.system and msgs[0].get("role") != "system":
        msgs.insert(0, {"role": "system", "content": prep.model.system})
    parser = ToolCallParser(req.tools, template=parse(template) if template else None) if req.tools else None
    async with scheduler.acquire(prep.model, prep.options, prep.keep_alive) as lease:
        def work(cancel: threading.Event) -> Iterator[Any]:
            context = lease.context
            if template:
                from ..templates.prompt import render_chat

                fit = req.truncate is not False  # truncate (default): drop the oldest messages
                prompt = render_chat(template, msgs, req.tools, think=think, num_ctx=context.n_ctx if fit else None,
                                     count_tokens=lambda text: len(context.tokenize(context_tail(text, context.n_ctx))),
                                     max_output=scheduler.settings.max_prompt_bytes).prompt
            else:
                prompt = _render_jinja(prep, msgs, req.tools, context)
            check_prompt_size(prompt, scheduler.settings.max_prompt_bytes)
            tokens = context.tokenize(context_tail(prompt, context.n_ctx))
            if req.truncate is False and len(tokens) >= context.n_ctx:
                raise BadRequest(LENGTH_ERROR)
            yield from context.generate(tokens, prep.sampling, grammar=prep.grammar, cancel=cancel, **logprobs)

        split = _Split(tags)
        async for item in in_worker(work):
            if isinstance(item, str | TokenLogprob):
                thinking, text, lps = split.feed(item)
                content, calls = parser.feed(text) if parser and text else (text, [])
                if content or thinking or lps:
                    message = {"role": "assistant", "content": content, **({"thinking": thinking} if thinking else {})}
                    yield _chunk(name, message=message, **_extra("", lps), done=False)
                if calls:
                    yield _chunk(name, message={"role": "assistant", "content": "",
                                                "tool_calls": [c.to_api() for c in calls]}, done=False)
            elif isinstance(item, Generated):
                thinking, text, lps = split.finish()
                content, calls = parser.feed(text) if parser and text else (text, [])
                rest = content + (parser.finish() if parser else "")
                message = {"role": "assistant", "content": rest, **({"thinking": thinking} if thinking else {})}
                if calls:
                    message["tool_calls"] = [c.to_api() for c in calls]
                yield _chunk(name, message=message, **_extra("", lps), done=True, **_metrics(item, lease, started))


# -- embeddings -------------------------------------------------------------------------------------

async def embed(catalog: Catalog, scheduler: Scheduler, req: Any) -> Event:
    """``/api/embed``: L2-normalised vectors (cut to ``dimensions`` and re-normalised if asked)."""
    started = time.perf_counter_ns()
    prep = await asyncio.to_thread(prepare, catalog, req.model, req.options, req.keep_alive, None,
                                    limits_of(scheduler))
    inputs = [req.input] if isinstance(req.input, str) and req.input else list(req.input or [])
    if isinstance(req.input, str) and not req.input:
        inputs = []
    if inputs and scheduler.settings.embed_batching:
        vectors, count, load = await scheduler.embed_batcher.embed(prep.model, prep.options, prep.keep_alive,
                                                                   inputs, truncate=req.truncate)
    else:
        async with scheduler.acquire(prep.model, prep.options, prep.keep_alive) as lease:
            if not inputs:
                return {"model": req.model, "embeddings": []}
            vectors, count = await asyncio.to_thread(lease.context.embed, inputs, normalize=True,
                                                     truncate=req.truncate)
        load = lease.load_duration
    if req.dimensions:
        vectors = [_l2(v[: req.dimensions]) for v in vectors]
    return {"model": req.model, "embeddings": vectors, "total_duration": time.perf_counter_ns() - started,
            "load_duration": load, "prompt_eval_count": count}


async def embeddings(catalog: Catalog, scheduler: Scheduler, req: Any) -> Event:
    """``/api/embeddings`` (legacy): one raw, un-normalised vector."""
    prep = await asyncio.to_thread(prepare, catalog, req.model, req.options, req.keep_alive, None,
                                    limits_of(scheduler))
    async with scheduler.acquire(prep.model, prep.options, prep.keep_alive) as lease:
        if not req.prompt:
            return {"embedding": []}
        vectors, _count = await asyncio.to_thread(lease.context.embed, [req.prompt], normalize=False)
    return {"embedding": vectors[0]}


def _l2(vector: list[float]) -> list[float]:
    norm = sum(x * x for x in vector) ** 0.5
    return [x / norm for x in vector] if norm > 0 else vector


# -- stream:false -----------------------------------------------------------------------------------

def merge_generate(events: list[Event]) -> Event:
    """One object for ``stream:false``: the text concatenated, the final chunk's metrics."""
    merged = dict(events[-1]) if events else {}
    merged["response"] = "".join(e.get("response", "") for e in events)
    thinking = "".join(e.get("thinking", "") for e in events)
    if thinking:
        merged["thinking"] = thinking
    logprobs = [lp for e in events for lp in e.get("logprobs", [])]
    if logprobs:
        merged["logprobs"] = logprobs
    return merged


def merge_chat(events: list[Event]) -> Event:
    merged = dict(events[-1]) if events else {}
    calls = [c for e in events for c in e.get("message", {}).get("tool_calls", [])]
    message: Event = {"role": "assistant",
                      "content": "".join(e.get("message", {}).get("content", "") for e in events)}
    thinking = "".join(e.get("message", {}).get("thinking", "") for e in events)
    if thinking:
        message["thinking"] = thinking
    if calls:
        message["tool_calls"] = calls
    merged["message"] = message
    logprobs = [lp for e in events for lp in e.get("logprobs", [])]
    if logprobs:
        merged["logprobs"] = logprobs
    return merged
