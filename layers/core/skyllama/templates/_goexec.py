"""Executor for parsed Go templates, following ``text/template/exec.go``.

Runs with Ollama's ``missingkey=zero`` option: a missing map key is "no value", not an error.
Execution is bounded: every node and loop iteration is a step, the wall-clock time is checked
as steps accumulate, and output beyond ``max_output`` characters stops the run. All failures
raise ``TemplateError``.
"""

from __future__ import annotations

import inspect
import time
from collections.abc import Sequence
from typing import Any

from . import _goast as ast
from ._gofuncs import FUNCS, FuncError
from ._govalues import MISSING, is_nil, sorted_keys, sprint, truth, type_name
from .errors import TemplateError

_NO_FINAL = object()  # Go's missingVal: "no value piped into this command"
_SIGNATURES = {name: inspect.signature(fn) for name, fn in FUNCS.items()}
_TIME_CHECK_EVERY = 256


class _Break(Exception):
    pass


class _Continue(Exception):
    pass


class Executor:
    """One execution of a template over one data value."""

    def __init__(self, root: Any, *, max_output: int, timeout: float) -> None:
        self.vars: list[list[Any]] = [["$", root]]
        self.out: list[str] = []
        self.size = 0
        self.max_output = max_output
        self.timeout = timeout
        self.deadline = time.monotonic() + timeout
        self.steps = 0
        self.line = 1

    def run(self, nodes: Sequence[ast.Node]) -> str:
        try:
            self.walk(self.vars[0][1], nodes)
        except RecursionError:
            raise TemplateError("template: executing: nesting too deep") from None
        return "".join(self.out)

    # -- bookkeeping ---------------------------------------------------------------------------
    def error(self, msg: str) -> TemplateError:
        return TemplateError(f"template: :{self.line}: executing: {msg}")

    def tick(self) -> None:
        self.steps += 1
        if self.steps % _TIME_CHECK_EVERY == 0 and time.monotonic() > self.deadline:
            raise TemplateError(f"template: execution took longer than {self.timeout:g}s")

    def write(self, s: str) -> None:
        self.size += len(s)
        if self.size > self.max_output:
            raise TemplateError(f"template: output is larger than {self.max_output} characters")
        self.out.append(s)

    def lookup(self, name: str) -> Any:
        for entry in reversed(self.vars):
            if entry[0] == name:
                return entry[1]
        raise self.error(f"undefined variable: {name}")

    def assign(self, name: str, value: Any) -> None:
        for entry in reversed(self.vars):
            if entry[0] == name:
                entry[1] = value
                return
        raise self.error(f"undefined variable: {name}")

    # -- statements ----------------------------------------------------------------------------
    def walk(self, dot: Any, nodes: Sequence[ast.Node]) -> None:
        for node in nodes:
            self.tick()
            if isinstance(node, ast.Text):
                self.write(node.text)
            elif isinstance(node, ast.Action):
                value = self.eval_pipeline(dot, node.pipe)
                if not node.pipe.decl:
                    self.write(sprint(value))
            elif isinstance(node, ast.If | ast.With):
                self.walk_if_or_with(dot, node)
            elif isinstance(node, ast.Range):
                self.walk_range(dot, node)
            elif isinstance(node, ast.Break):
                raise _Break
            elif isinstance(node, ast.Continue):
                raise _Continue

    def walk_if_or_with(self, dot: Any, node: ast.If | ast.With) -> None:
        mark = len(self.vars)
        try:
            value = self.eval_pipeline(dot, node.pipe)
            if truth(value):
                self.walk(value if isinstance(node, ast.With) else dot, node.body)
            elif node.else_ is not None:
                self.walk(dot, node.else_)
        finally:
            del self.vars[mark:]

    def walk_range(self, dot: Any, node: ast.Range) -> None:
        outer = len(self.vars)
        try:
            value = self.eval_pipeline(dot, node.pipe)
            if isinstance(value, bool) or not (is_nil(value) or isinstance(value, list | tuple | dict | bytes | int)):
                raise self.error(f"range can't iterate over {sprint(value)}")
            if isinstance(value, int) and len(node.pipe.decl) > 1:
                raise self.error(f"can't use {value} to iterate over more than one variable")
            if is_nil(value):
                items: Any = ()
            elif isinstance(value, dict):
                items = ((k, value[k]) for k in sorted_keys(value))
            elif isinstance(value, int):
                items = ((i, i) for i in range(value))
            else:
                items = enumerate(value)
            ran = False
            try:
                for index, elem in items:
                    ran = True
                    self.tick()
                    self.one_iteration(node, index, elem)
            except _Break:
                return
            if not ran and node.else_ is not None:
                self.walk(dot, node.else_)
        finally:
            del self.vars[outer:]

    def one_iteration(self, node: ast.Range, index: Any, elem: Any) -> None:
        mark = len(self.vars)
        decl, pipe = node.pipe.decl, node.pipe
        if decl:
            if pipe.is_assign:
                self.assign(decl[0], index if len(decl) > 1 else elem)
            else:
                self.vars[-1][1] = elem
        if len(decl) > 1:
            if pipe.is_assign:
                self.assign(decl[1], elem)
            else:
                self.vars[-2][1] = index
        try:
            self.walk(elem, node.body)
        except _Continue:
            pass
        finally:
            del self.vars[mark:]

    # -- expressions ---------------------------------------------------------------------------
    def eval_pipeline(self, dot: Any, pipe: ast.Pipe) -> Any:
        self.line = pipe.line
        value: Any = _NO_FINAL
        for cmd in pipe.cmds:
            value = self.eval_command(dot, cmd, value)
        for name in pipe.decl:
            if pipe.is_assign:
                self.assign(name, value)
            else:
                self.vars.append([name, value])
        return value

    def not_a_function(self, args: Sequence[ast.Arg], final: Any) -> None:
        if len(args) > 1 or final is not _NO_FINAL:
            raise self.error("can't give argument to non-function")

    def eval_command(self, dot: Any, cmd: ast.Command, final: Any) -> Any:
        first = cmd.args[0]
        if isinstance(first, ast.Field):
            return self.eval_fields(dot, dot, first.idents, cmd.args, final)
        if isinstance(first, ast.Chain):
            return self.eval_fields(dot, self.eval_arg(dot, first.node), first.fields, cmd.args, final)
        if isinstance(first, ast.Identifier):
            return self.call(dot, first.name, cmd.args[1:], final)
        if isinstance(first, ast.Variable):
            value = self.lookup(first.idents[0])
            if len(first.idents) == 1:
                self.not_a_function(cmd.args, final)
                return value
            return self.eval_fields(dot, value, first.idents[1:], cmd.args, final)
        self.not_a_function(cmd.args, final)
        if isinstance(first, ast.Pipe):
            return self.eval_pipeline(dot, first)
        if isinstance(first, ast.Nil):
            raise self.error("nil is not a command")
        return self.eval_arg(dot, first)

    def eval_arg(self, dot: Any, node: ast.Arg) -> Any:
        if isinstance(node, ast.Dot):
            return dot
        if isinstance(node, ast.Nil):
            return None
        if isinstance(node, ast.Literal):
            return node.value
        if isinstance(node, ast.Pipe):
            return self.eval_pipeline(dot, node)
        if isinstance(node, ast.Identifier):
            return self.call(dot, node.name, (), _NO_FINAL)
        return self.eval_command(dot, ast.Command((node,)), _NO_FINAL)

    def eval_fields(self, dot: Any, receiver: Any, idents: Sequence[str], args: Sequence[ast.Arg], final: Any) -> Any:
        for name in idents[:-1]:
            receiver = self.field(dot, receiver, name, (), _NO_FINAL)
        return self.field(dot, receiver, idents[-1], args[1:], final)

    def field(self, dot: Any, receiver: Any, name: str, args: Sequence[ast.Arg], final: Any) -> Any:
        has_args = bool(args) or final is not _NO_FINAL
        method = getattr(receiver, "go_methods", {}).get(name)
        if method is not None:
            values = [self.eval_arg(dot, a) for a in args] + ([] if final is _NO_FINAL else [final])
            try:
                return getattr(receiver, method)(*values)
            except TypeError:
                raise self.error(f"wrong number of args for {name}") from None
        if is_nil(receiver):
            return MISSING  # Go: a field of a nil interface is the zero value under missingkey=zero
        if isinstance(receiver, dict):
            if has_args:
                raise self.error(f"{name} is not a method but has arguments")
            return receiver.get(name, MISSING)
        if name in getattr(receiver, "go_fields", ()):
            if has_args:
                raise self.error(f"{name} has arguments but cannot be invoked as function")
            return getattr(receiver, name)
        raise self.error(f"can't evaluate field {name} in type {type_name(receiver)}")

    def call(self, dot: Any, name: str, arg_nodes: Sequence[ast.Arg], final: Any) -> Any:
        if name in ("and", "or"):
            return self.and_or(dot, name, arg_nodes, final)
        if name not in FUNCS:
            raise self.error(f"{name} is not supported")
        values = [self.eval_arg(dot, a) for a in arg_nodes] + ([] if final is _NO_FINAL else [final])
        try:
            _SIGNATURES[name].bind(*values)
        except TypeError:
            raise self.error(f"wrong number of args for {name}: got {len(values)}") from None
        try:
            result = FUNCS[name](*values)
        except FuncError as e:
            raise self.error(f"error calling {name}: {e}") from None
        # Strings built in variables (printf doubling) never reach write(); bound them here.
        if isinstance(result, str) and len(result) > self.max_output:
            raise TemplateError(f"template: a value is larger than {self.max_output} characters")
        return result

    def and_or(self, dot: Any, name: str, arg_nodes: Sequence[ast.Arg], final: Any) -> Any:
        if not arg_nodes and final is _NO_FINAL:
            raise self.error(f"wrong number of args for {name}: want at least 1 got 0")
        value: Any = None
        for node in arg_nodes:
            value = self.eval_arg(dot, node)
            if truth(value) == (name == "or"):
                return value
        if final is not _NO_FINAL:
            value = final
        return value
