"""Go ``text/template`` in pure Python, for Ollama model templates.

    >>> parse("{{- range .Messages }}{{ .Role }}: {{ .Content }}\\n{{ end }}").execute(
    ...     {"Messages": [{"Role": "user", "Content": "hi"}]})
    'user: hi\\n'

Supported: fields (``.A.B``), ``$``/variables (``:=``, ``=``), ``{{-``/``-}}`` trimming,
comments, ``if``/``else if``/``with``/``range`` (lists, maps, ints; ``$i, $v :=``; ``else``;
``break``/``continue``), pipelines, parentheses, all literal forms, Go's builtin functions
(``call`` excepted) and Ollama's ``json``, ``currentDate``, ``yesterdayDate`` and
``toTypeScriptType``. How values print and compare is described in ``_govalues``.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from typing import Any

from . import _goast as ast
from ._goexec import Executor
from ._gofuncs import NAMES
from ._goparse import parse_nodes
from .errors import TemplateError

__all__ = ["MAX_OUTPUT", "TIMEOUT", "Template", "TemplateError", "parse"]

MAX_OUTPUT = 8 * 1024 * 1024  # characters; a prompt larger than this is an attack or a mistake
TIMEOUT = 2.0  # seconds of execution per render


class Template:
    """A parsed template: immutable, safe to share between threads and requests."""

    __slots__ = ("nodes", "text")

    def __init__(self, text: str, nodes: tuple[ast.Node, ...]) -> None:
        self.text = text
        self.nodes = nodes

    def __repr__(self) -> str:
        return f"Template({self.text[:40]!r}...)"

    def execute(self, data: Any, *, max_output: int = MAX_OUTPUT, timeout: float = TIMEOUT) -> str:
        """Render the template with ``data`` as dot; raises TemplateError on any failure."""
        return execute_nodes(self.nodes, data, max_output=max_output, timeout=timeout)

    def walk(self) -> Iterator[ast.Node | ast.Arg]:
        """Every node of the tree, depth first, including pipeline arguments."""
        yield from walk_nodes(self.nodes)


def execute_nodes(nodes: tuple[ast.Node, ...], data: Any, *, max_output: int = MAX_OUTPUT,
                  timeout: float = TIMEOUT) -> str:
    """Execute a (possibly rewritten) node list; see ``Template.execute``."""
    return Executor(data, max_output=max_output, timeout=timeout).run(nodes)


def walk_nodes(nodes: tuple[ast.Node, ...] | None) -> Iterator[ast.Node | ast.Arg]:
    for node in nodes or ():
        yield node
        if isinstance(node, ast.Action):
            yield from walk_args(node.pipe)
        elif isinstance(node, ast.Branch):
            yield from walk_args(node.pipe)
            yield from walk_nodes(node.body)
            yield from walk_nodes(node.else_)


def walk_args(arg: ast.Arg) -> Iterator[ast.Node | ast.Arg]:
    yield arg
    if isinstance(arg, ast.Pipe):
        for cmd in arg.cmds:
            for a in cmd.args:
                yield from walk_args(a)
    elif isinstance(arg, ast.Chain):
        yield from walk_args(arg.node)


@functools.lru_cache(maxsize=128)
def parse(text: str) -> Template:
    """Parse template text (cached by text); raises TemplateError with Go's message."""
    if not isinstance(text, str):
        raise TemplateError("template: not a string")
    try:
        return Template(text, parse_nodes(text, NAMES))
    except RecursionError:
        raise TemplateError("template: nesting too deep") from None
