"""Ollama's prompt building: ``template/template.go`` ``Execute`` and ``server/prompt.go``.

A model template is rendered one of three ways, exactly as Ollama chooses:

1. ``/api/generate`` with a ``suffix`` (fill-in-the-middle): once, with ``.Prompt``/``.Suffix``.
2. Templates that mention ``.Messages``: once, with ``.Messages``, ``.Tools`` and ``.System``
   (all system messages joined by blank lines).
3. Legacy templates (``.System``/``.Prompt``/``.Response`` only): the chat is collated into
   turns, the template runs once per turn, and the last run is cut right after ``.Response`` so
   the prompt ends where the model should continue.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from . import _goast as ast
from ._apitypes import to_message, to_tools
from .errors import TemplateError
from .gotemplate import MAX_OUTPUT, TIMEOUT, Template, execute_nodes, parse, walk_nodes
from .tools import parse_tag

__all__ = ["RenderedPrompt", "describe_template", "render_chat", "render_generate", "template_vars"]

Message = Mapping[str, Any]
_RESPONSE = ast.Action(ast.Pipe(0, (), False, (ast.Command((ast.Field(("Response",)),)),)))


@dataclass(frozen=True)
class RenderedPrompt:
    """The prompt text, the images it refers to as ``[img-N]`` (N = index here), and how many
    leading messages were dropped to fit the context window."""

    prompt: str
    images: list[Any] = field(default_factory=list)
    dropped: int = 0

    def __str__(self) -> str:
        return self.prompt


# -- template analysis --------------------------------------------------------------------------
def template_vars(tmpl: Template) -> list[str]:
    """Ollama's ``Template.Vars``: lower-cased field and variable names used, sorted.

    As in Ollama, this includes ``response`` for templates that get ``{{ .Response }}`` appended.
    """
    names = _raw_names(tmpl)
    if "messages" not in names:
        names.add("response")
    return sorted(names)


def _raw_names(tmpl: Template) -> set[str]:
    names: set[str] = set()
    for node in walk_nodes(tmpl.nodes):
        if isinstance(node, ast.Field | ast.Variable):
            names.update(i.lower() for i in node.idents)
    return names


def _with_response(tmpl: Template) -> tuple[ast.Node, ...]:
    # Ollama's Parse appends {{ .Response }} to templates that mention neither.
    raw = _raw_names(tmpl)
    if "messages" in raw or "response" in raw:
        return tmpl.nodes
    return (*tmpl.nodes, _RESPONSE)


def _cut_after_response(nodes: tuple[ast.Node, ...]) -> tuple[ast.Node, ...]:
    """Ollama's deleteNode: keep everything up to the first ``.Response`` field, drop the rest."""
    cut = False

    def arg(a: ast.Arg) -> ast.Arg | None:
        nonlocal cut
        if isinstance(a, ast.Field) and "Response" in a.idents:
            cut = True
            return a
        if cut:
            return None
        return pipe(a) if isinstance(a, ast.Pipe) else a

    def pipe(p: ast.Pipe) -> ast.Pipe | None:
        if cut:
            return None
        cmds = []
        for c in p.cmds:
            args = tuple(x for x in (arg(a) for a in c.args) if x is not None)
            if not args:
                return None
            cmds.append(ast.Command(args))
        return replace(p, cmds=tuple(cmds))

    def node_list(ns: tuple[ast.Node, ...]) -> tuple[ast.Node, ...]:
        return tuple(x for x in (node(n) for n in ns) if x is not None)

    def node(n: ast.Node) -> ast.Node | None:
        if cut:
            return None
        if isinstance(n, ast.Action):
            p = pipe(n.pipe)
            return None if p is None else ast.Action(p)
        if isinstance(n, ast.Branch):
            # Like Ollama, only the branch bodies are searched, not the condition.
            body = node_list(n.body)
            else_ = None if n.else_ is None else (() if cut else node_list(n.else_))
            return replace(n, body=body, else_=else_)
        return n

    return node_list(nodes)


def _infer_thinking_tags(tmpl: Template) -> tuple[str, str]:
    """Ollama's ``thinking.InferTags``: the text around ``{{ .Thinking }}`` in a Messages range."""
    opening = closing = ""

    def visit_list(ns: tuple[ast.Node, ...] | None, ranges: list[ast.Range], lst: tuple[ast.Node, ...]) -> None:
        for n in ns or ():
            visit(n, ranges, lst)

    def visit(n: ast.Node, ranges: list[ast.Range], lst: tuple[ast.Node, ...]) -> None:
        nonlocal opening, closing
        if isinstance(n, ast.Action | ast.If | ast.With | ast.Range):
            for a in _pipe_args(n.pipe):
                if isinstance(a, ast.Field) and a.idents[0] == "Thinking" and ranges and any(
                        isinstance(x, ast.Field) and x.idents[0] == "Messages" for x in _pipe_args(ranges[-1].pipe)):
                    if isinstance(lst[0], ast.Text):
                        opening = lst[0].text.strip()
                    if isinstance(lst[-1], ast.Text):
                        closing = lst[-1].text.strip()
        if isinstance(n, ast.Branch):
            inner = [*ranges, n] if isinstance(n, ast.Range) else ranges
            visit_list(n.body, inner, n.body)
            if n.else_:
                visit_list(n.else_, inner, n.else_)

    visit_list(tmpl.nodes, [], tmpl.nodes)
    return opening, closing


def _pipe_args(p: ast.Pipe) -> list[ast.Arg]:
    out: list[ast.Arg] = []
    for c in p.cmds:
        for a in c.args:
            out.append(a)
            if isinstance(a, ast.Pipe):
                out.extend(_pipe_args(a))
    return out


def describe_template(text: str) -> dict[str, Any]:
    """What a Go model template uses, and the capabilities Ollama derives from it.

    ``capabilities`` follows ``server/images.go``: ``tools`` when ``.Tools`` is referenced,
    ``insert`` when ``.Suffix`` is, ``thinking`` when thinking tags can be inferred around
    ``.Thinking`` inside a ``range .Messages``. ``completion`` comes from the GGUF, not here.
    """
    tmpl = parse(text)
    names = template_vars(tmpl)
    opening, closing = _infer_thinking_tags(tmpl)
    thinking = bool(opening and closing)
    caps = [c for c, used in (("tools", "tools" in names), ("insert", "suffix" in names), ("thinking", thinking)) if used]
    return {
        "vars": names,
        "uses_messages": "messages" in names,
        "uses_tools": "tools" in names,
        "uses_suffix": "suffix" in names,
        "uses_thinking": thinking,
        "uses_think": "think" in names or "thinklevel" in names,
        "thinking_tags": (opening, closing) if thinking else None,
        "tool_call_tag": parse_tag(tmpl),
        "capabilities": caps,
    }


# -- rendering ----------------------------------------------------------------------------------
def _think_values(think: bool | str | None) -> dict[str, Any]:
    """api.ThinkValue: Bool() is true for true or a level; String() is the level ("medium" for true)."""
    levels = ("high", "medium", "low", "max")
    enabled = think is True or (isinstance(think, str) and think in levels)
    level = think if isinstance(think, str) else ("medium" if think is True else "")
    return {"Think": enabled, "ThinkLevel": level, "IsThinkSet": think is not None}


def _collate(msgs: Sequence[dict[str, Any]]) -> tuple[str, list[dict[str, Any]]]:
    """Merge consecutive same-role messages (not tool messages); collect the system text."""
    system: list[str] = []
    out: list[dict[str, Any]] = []
    for m in msgs:
        if m["role"] == "system":
            system.append(m["content"])
        if out and out[-1]["role"] == m["role"] and m["role"] != "tool":
            out[-1] = {**out[-1], "content": out[-1]["content"] + "\n\n" + m["content"]}
        else:
            out.append(m)
    return "\n\n".join(system), out


def _execute(tmpl: Template, msgs: Sequence[dict[str, Any]], tools: Sequence[Any] | None, think: bool | str | None,
             limits: dict[str, Any]) -> str:
    """Ollama's ``Template.Execute`` for a chat (the non-suffix paths)."""
    names = template_vars(tmpl)
    nodes = _with_response(tmpl)
    system, collated = _collate(msgs)
    thinkv = _think_values(think)
    if "messages" in names:
        data = {"System": system, "Messages": [to_message(m) for m in collated],
                "Tools": to_tools(None if tools is None else list(tools)), "Response": "", **thinkv}
        return execute_nodes(nodes, data, **limits)

    out: list[str] = []
    turn = {"System": "", "Prompt": "", "Response": ""}

    def run() -> None:
        out.append(execute_nodes(nodes, {**turn, **thinkv}, **limits))
        turn.update(System="", Prompt="", Response="")

    for m in collated:
        role = m["role"]
        if role == "system":
            if turn["Prompt"] or turn["Response"]:
                run()
            turn["System"] = m["content"]
        elif role == "user":
            if turn["Response"]:
                run()
            turn["Prompt"] = m["content"]
        elif role == "assistant":
            turn["Response"] = m["content"]
    out.append(execute_nodes(_cut_after_response(nodes), {**turn, **thinkv}, **limits))
    return "".join(out)


def _normalise(messages: Sequence[Any]) -> list[dict[str, Any]]:
    out = []
    for m in messages:
        d = dict(m.model_dump(exclude_none=True) if hasattr(m, "model_dump") else m)
        d["role"] = str(d.get("role") or "").lower()  # api.Message lower-cases roles on decode
        d["content"] = d.get("content") or ""
        out.append(d)
    return out


def _tag_images(msgs: list[dict[str, Any]], start: int) -> tuple[list[dict[str, Any]], list[Any]]:
    """Ollama's imageTaggedMessages: prefix (or fill ``[img]``) with ``[img-N]`` per image."""
    images: list[Any] = []
    out = list(msgs)
    for i in range(start, len(out)):
        prefix, content = "", out[i]["content"]
        for image in out[i].get("images") or ():
            tag = f"[img-{len(images)}]"
            images.append(image)
            if "[img]" in content:
                content = content.replace("[img]", tag, 1)
            else:
                prefix += tag
        out[i] = {**out[i], "content": prefix + content}
    return out, images


def _fits(tmpl: Template, msgs: list[dict[str, Any]], i: int, tools: Sequence[Any] | None, think: bool | str | None,
          limits: dict[str, Any], num_ctx: int, count_tokens: Callable[[str], int], image_tokens: int) -> bool:
    """Whether the chat from message ``i`` on (system messages before it kept) fits ``num_ctx``;
    a render past the output limit does not fit (the final render reports it)."""
    system = [m for m in msgs[:i] if m["role"] == "system"]
    try:
        text = _execute(tmpl, system + msgs[i:], tools, think, limits)
    except TemplateError:
        return False
    return count_tokens(text) + image_tokens * sum(len(m.get("images") or ()) for m in msgs[i:]) <= num_ctx


def _first_fitting(count: int, fits: Callable[[int], bool]) -> int:
    """The first message index whose chat fits (the last message is always kept).

    Ollama's ``chatPrompt`` tries each start in turn, rendering and tokenizing the chat every
    time: thousands of messages made that quadratic (T-33). Dropping messages never makes a
    prompt longer, so a binary search finds the same start in log2(count) renders.
    """
    low, high = 0, count - 1
    while low < high:
        mid = (low + high) // 2
        if fits(mid):
            high = mid
        else:
            low = mid + 1
    return low


def render_chat(template: str, messages: Sequence[Any], tools: Sequence[Any] | None = None, *,
                think: bool | str | None = None, num_ctx: int | None = None,
                count_tokens: Callable[[str], int] | None = None, image_tokens: int = 0,
                max_output: int = MAX_OUTPUT, timeout: float = TIMEOUT) -> RenderedPrompt:
    """Render a chat the way Ollama's ``chatPrompt`` does.

    ``messages`` are API message dicts (role, content, images, tool_calls, tool_name,
    tool_call_id, thinking); ``tools`` API tool dicts (``None`` = none sent). With ``num_ctx``
    and ``count_tokens``, leading messages are dropped until the prompt fits (system messages
    are kept, the last message always is), counting ``image_tokens`` per image.
    """
    tmpl = parse(template)
    msgs = _normalise(messages)
    limits = {"max_output": max_output, "timeout": timeout}
    start = 0
    if num_ctx is not None and count_tokens is not None and msgs:
        start = _first_fitting(len(msgs), lambda i: _fits(tmpl, msgs, i, tools, think, limits, num_ctx,
                                                           count_tokens, image_tokens))
    system = [m for m in msgs[:start] if m["role"] == "system"]
    tagged, images = _tag_images(msgs, start)
    prompt = _execute(tmpl, system + tagged[start:], tools, think, limits)
    return RenderedPrompt(prompt, images, start)


def render_generate(template: str, *, prompt: str, system: str = "", suffix: str = "", response: str = "",
                    images: Sequence[Any] = (), history: Sequence[Any] = (), think: bool | str | None = None,
                    max_output: int = MAX_OUTPUT, timeout: float = TIMEOUT) -> RenderedPrompt:
    """Render an ``/api/generate`` prompt as Ollama's GenerateHandler does.

    With a ``suffix`` the template runs once with ``.Prompt``/``.Suffix``. Otherwise the request
    becomes a chat: the system message (request's, else the model's, passed as ``system``), the
    model's stored ``history`` messages, and a user message with the prompt and images, rendered
    with an empty (not absent) tool list. A non-empty ``response`` is added as a final assistant
    message for the model to continue (an skyllama extension; Ollama has no such field).
    """
    tmpl = parse(template)
    if prompt and suffix:
        data = {"Prompt": prompt, "Suffix": suffix, "Response": "", **_think_values(think)}
        nodes = _with_response(tmpl)
        return RenderedPrompt(execute_nodes(nodes, data, max_output=max_output, timeout=timeout), list(images))
    msgs: list[Any] = [{"role": "system", "content": system}] if system else []
    msgs += list(history)
    msgs.append({"role": "user", "content": prompt, "images": list(images)})
    if response:
        msgs.append({"role": "assistant", "content": response})
    return render_chat(template, msgs, [], think=think, max_output=max_output, timeout=timeout)
