"""Fallback renderer for a GGUF's own Jinja chat template (``tokenizer.chat_template``).

Chat templates come with downloaded models, so they are untrusted code (CVE-2024-34359). They
run only in jinja2's ``ImmutableSandboxedEnvironment``, with the globals Hugging Face
transformers provides (``raise_exception``, ``strftime_now``, a ``tojson`` filter), and bounds:

- reading a private attribute (``lipsum.__globals__``, ``''.__class__``) raises at once;
- ``range`` is capped, and ``*``/``**``/``%`` refuse results beyond the output limit;
- a trace hook stops template code that runs past the time limit (compiling included), and
  output is capped;
- nothing is evaluated at compile time: jinja2's optimizer folds constant expressions while
  compiling, outside every limit above (``{% if false %}{{ [[1]]|tojson(indent=10**8) }}{% endif %}``
  cost a minute of CPU), so the environment is built with ``optimized=False`` (T-33).

Every failure is a ``TemplateError`` with a short message.
"""

from __future__ import annotations

import datetime as _dt
import functools
import json
import re
import sys
import time
from collections.abc import Mapping, Sequence
from types import FrameType
from typing import Any

import jinja2
import jinja2.ext
import jinja2.filters
from jinja2.exceptions import SecurityError
from jinja2.sandbox import ImmutableSandboxedEnvironment

from .errors import TemplateError

__all__ = ["describe_jinja_template", "render_jinja"]

MAX_OUTPUT = 8 * 1024 * 1024
TIMEOUT = 2.0
MAX_RANGE = 100_000
MAX_INDENT = 64  # tojson's indent: json.dumps repeats it once per nesting level
_BIG_WIDTH = re.compile(r"%[-+ #0]*(\*|\d{6,})|\{[^}]*:[^}]*\d{6,}")


def _raise_exception(message: str) -> None:
    raise jinja2.exceptions.TemplateError(message)


def _tojson(x: Any, ensure_ascii: bool = False, indent: int | None = None,
            separators: tuple[str, str] | None = None, sort_keys: bool = False) -> str:
    # As transformers does: no HTML escaping (unlike jinja2's own tojson).
    if isinstance(indent, int | str) and not isinstance(indent, bool) and (
            indent if isinstance(indent, int) else len(indent)) > MAX_INDENT:
        raise SecurityError(f"tojson indent too large (more than {MAX_INDENT})")
    return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)


def _strftime_now(fmt: str) -> str:
    return _dt.datetime.now().strftime(fmt)


def _range(*args: int) -> range:
    r = range(*args)
    if len(r) > MAX_RANGE:
        raise SecurityError(f"range too big (more than {MAX_RANGE} items)")
    return r


class _Env(ImmutableSandboxedEnvironment):
    intercepted_binops = frozenset(["*", "**", "%"])

    def unsafe_undefined(self, obj: Any, attribute: str) -> jinja2.Undefined:
        # The stock sandbox returns an undefined that prints as ""; refuse outright instead.
        raise SecurityError(f"access to attribute {attribute!r} of {type(obj).__name__!r} object is unsafe")

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        if operator == "*":
            for seq, n in ((left, right), (right, left)):
                if isinstance(seq, str | list | tuple) and isinstance(n, int) and len(seq) * n > MAX_OUTPUT:
                    raise SecurityError("repetition result too large")
        elif operator == "**":
            if isinstance(left, int) and isinstance(right, int) and abs(left) > 1 and right * abs(left).bit_length() > 4096:
                raise SecurityError("power result too large")
        elif operator == "%" and isinstance(left, str) and _BIG_WIDTH.search(left):
            raise SecurityError("format width too large")
        return super().call_binop(context, operator, left, right)

    def call(__self, __context: Any, __obj: Any, *args: Any, **kwargs: Any) -> Any:  # noqa: N805
        if isinstance(getattr(__obj, "__self__", None), str):
            _check_string_growth(__obj.__name__, __obj.__self__, [*args, *kwargs.values()])
        return super().call(__context, __obj, *args, **kwargs)

    def wrap_str_format(self, value: Any) -> Any:
        # str.format / format_map called from a template: refuse huge field widths.
        if isinstance(getattr(value, "__self__", None), str) and _BIG_WIDTH.search(value.__self__):
            raise SecurityError("format width too large")
        return super().wrap_str_format(value)


def _format_filter(value: Any, *args: Any, **kwargs: Any) -> str:
    if _BIG_WIDTH.search(str(value)):
        raise SecurityError("format width too large")
    return str(jinja2.filters.do_format(value, *args, **kwargs))


_WIDTH_METHODS = {"center", "ljust", "rjust", "zfill", "expandtabs", "indent", "wordwrap"}


def _check_string_growth(name: str, value: Any, args: Sequence[Any]) -> None:
    """Refuse str methods/filters whose result would exceed the output limit before running them."""
    if name in _WIDTH_METHODS and any(isinstance(a, int) and a > MAX_OUTPUT // 8 for a in args):
        raise SecurityError(f"{name} width too large")
    if name == "replace" and isinstance(value, str) and len(args) >= 2:
        old, new = str(args[0]), str(args[1])
        hits = value.count(old) if old else len(value) + 1
        if len(value) + hits * max(0, len(new) - len(old)) > MAX_OUTPUT:
            raise SecurityError("replace result too large")


def _guarded_filter(name: str) -> Any:
    original = jinja2.filters.FILTERS[name]

    @functools.wraps(original)
    def guarded(*args: Any, **kwargs: Any) -> Any:
        value_index = 1 if getattr(original, "jinja_pass_arg", None) else 0
        _check_string_growth(name, args[value_index], [*args[value_index + 1 :], *kwargs.values()])
        return original(*args, **kwargs)

    return guarded


def _make_env() -> _Env:
    env = _Env(trim_blocks=True, lstrip_blocks=True, extensions=[jinja2.ext.loopcontrols], optimized=False)
    env.filters["tojson"] = _tojson
    env.filters["format"] = _format_filter
    for name in ("center", "indent", "wordwrap", "replace"):
        env.filters[name] = _guarded_filter(name)
    env.globals.update(raise_exception=_raise_exception, strftime_now=_strftime_now, range=_range)
    return env


_ENV = _make_env()


@functools.lru_cache(maxsize=32)
def _compile(source: str) -> jinja2.Template:
    previous = sys.gettrace()
    sys.settrace(_Deadline(TIMEOUT))  # parsing and code generation are bounded in time too
    try:
        return _ENV.from_string(source)
    except jinja2.TemplateSyntaxError as e:
        raise TemplateError(f"chat template: line {e.lineno}: {e.message}") from None
    except (RecursionError, MemoryError):
        raise TemplateError("chat template: too complex to compile") from None
    finally:
        sys.settrace(previous)


class _Deadline:
    """A trace hook that aborts template code (filename "<template>") past its deadline."""

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self.deadline = time.monotonic() + timeout

    def check(self) -> None:
        if time.monotonic() > self.deadline:
            raise TemplateError(f"chat template: rendering took longer than {self.timeout:g}s")

    def __call__(self, frame: FrameType, event: str, arg: Any) -> Any:
        self.check()
        return self._local if frame.f_code.co_filename == "<template>" else None

    def _local(self, frame: FrameType, event: str, arg: Any) -> Any:
        self.check()
        return self._local


def _jinja_messages(messages: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Ollama messages in the shape HF chat templates expect (tool calls as OpenAI does)."""
    out = []
    for m in messages:
        d = {k: v for k, v in dict(m).items() if k != "images"}
        if d.get("tool_calls"):
            d["tool_calls"] = [{"type": "function", **dict(tc)} for tc in d["tool_calls"]]
        if d.get("role") == "tool" and d.get("tool_name") and "name" not in d:
            d["name"] = d["tool_name"]
        if d.get("thinking"):
            d.setdefault("reasoning_content", d["thinking"])
        out.append(d)
    return out


def render_jinja(template: str, messages: Sequence[Mapping[str, Any]], tools: Sequence[Any] | None = None, *,
                 bos_token: str = "", eos_token: str = "", add_generation_prompt: bool = True,
                 extra: Mapping[str, Any] | None = None, max_output: int = MAX_OUTPUT,
                 timeout: float = TIMEOUT) -> str:
    """Render a Jinja chat template in the sandbox; raises TemplateError on any failure."""
    compiled = _compile(template)
    context = {**(extra or {}), "messages": _jinja_messages(messages), "tools": list(tools) if tools else None,
               "bos_token": bos_token, "eos_token": eos_token, "add_generation_prompt": add_generation_prompt}
    deadline = _Deadline(timeout)
    previous = sys.gettrace()
    parts: list[str] = []
    size = 0
    sys.settrace(deadline)
    try:
        for chunk in compiled.generate(**context):
            size += len(chunk)
            if size > max_output:
                raise TemplateError(f"chat template: output is larger than {max_output} characters")
            parts.append(chunk)
            deadline.check()
    except TemplateError:
        raise
    except SecurityError as e:
        raise TemplateError(f"chat template: unsafe operation: {e}") from None
    except jinja2.exceptions.TemplateError as e:
        raise TemplateError(f"chat template: {e.message or type(e).__name__}") from None
    except (RecursionError, MemoryError):
        raise TemplateError("chat template: too deep or too large") from None
    except Exception as e:  # template code can raise anything (KeyError, TypeError, ...)
        raise TemplateError(f"chat template: {type(e).__name__}: {e}") from None
    finally:
        sys.settrace(previous)
    return "".join(parts)


def describe_jinja_template(text: str) -> dict[str, Any]:
    """Capabilities Ollama reads from a GGUF chat template (``server/images.go``)."""
    tools = "tools" in text or "tool_call" in text
    thinking = ("<think>" in text and "</think>" in text) or (
        ("content.split('</think>')" in text or 'content.split("</think>")' in text)
        and "reasoning_content" not in text and "<SPECIAL_12>" not in text)
    return {"uses_tools": tools, "uses_thinking": thinking,
            "capabilities": [c for c, used in (("tools", tools), ("thinking", thinking)) if used]}
