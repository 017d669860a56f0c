"""Parser for Go's ``text/template``, following ``text/template/parse/parse.go``.

Produces the nodes of ``_goast``. Checks what Go checks at parse time: unknown functions,
undefined variables, ``break``/``continue`` outside ``range``, stray ``else``/``end``.
``define``, ``template`` and ``block`` are rejected: Ollama templates never define sub-templates.
"""

from __future__ import annotations

from collections.abc import Collection

from . import _goast as ast
from ._golex import Tok, Token, lex
from ._gostrings import parse_number, unquote
from .errors import TemplateError

MAX_DEPTH = 100  # nesting of control structures and parentheses; keeps Python's stack safe


class _End:
    pass


class _Else:
    def __init__(self, line: int) -> None:
        self.line = line


class _Parser:
    def __init__(self, tokens: list[Token], funcs: Collection[str]) -> None:
        self.toks = tokens
        self.i = 0
        self.funcs = funcs
        self.vars: list[str] = ["$"]
        self.range_depth = 0
        self.depth = 0

    # -- token helpers -------------------------------------------------------------------------
    def error(self, msg: str, tok: Token | None = None) -> TemplateError:
        line = (tok or self.toks[min(self.i, len(self.toks) - 1)]).line
        return TemplateError(f"template: :{line}: {msg}")

    def next(self) -> Token:
        tok = self.toks[self.i]
        self.i += 1
        return tok

    def peek(self) -> Token:
        return self.toks[self.i]

    def next_non_space(self) -> Token:
        tok = self.next()
        while tok.typ is Tok.SPACE:
            tok = self.next()
        return tok

    def peek_non_space(self) -> Token:
        tok = self.next_non_space()
        self.i -= 1
        return tok

    def expect(self, typ: Tok, context: str) -> Token:
        tok = self.next_non_space()
        if tok.typ is not typ:
            raise self.unexpected(tok, context)
        return tok

    def unexpected(self, tok: Token, context: str) -> TemplateError:
        if tok.typ is Tok.EOF:
            return self.error(f"unexpected EOF in {context}", tok)
        return self.error(f"unexpected {tok.val!r} in {context}", tok)

    def enter(self) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise self.error("template nesting too deep")

    # -- lists and actions ---------------------------------------------------------------------
    def parse(self) -> tuple[ast.Node, ...]:
        nodes: list[ast.Node] = []
        while self.peek().typ is not Tok.EOF:
            n = self.text_or_action()
            if isinstance(n, _End | _Else):
                raise self.error(f"unexpected {{{{{'end' if isinstance(n, _End) else 'else'}}}}}")
            if n is not None:
                nodes.append(n)
        return tuple(nodes)

    def item_list(self) -> tuple[tuple[ast.Node, ...], _End | _Else]:
        nodes: list[ast.Node] = []
        while self.peek_non_space().typ is not Tok.EOF:
            n = self.text_or_action()
            if isinstance(n, _End | _Else):
                return tuple(nodes), n
            if n is not None:
                nodes.append(n)
        raise self.error("unexpected EOF")

    def text_or_action(self) -> ast.Node | _End | _Else | None:
        tok = self.next_non_space()
        if tok.typ is Tok.TEXT:
            return ast.Text(tok.val)
        if tok.typ is Tok.LEFT:
            return self.action()
        raise self.unexpected(tok, "input")

    def action(self) -> ast.Node | _End | _Else:
        tok = self.next_non_space()
        if tok.typ is Tok.KEYWORD:
            word = tok.val
            if word in ("break", "continue"):
                self.expect(Tok.RIGHT, f"{{{{{word}}}}}")
                if self.range_depth == 0:
                    raise self.error(f"{{{{{word}}}}} outside {{{{range}}}}", tok)
                return ast.Break() if word == "break" else ast.Continue()
            if word == "else":
                nxt = self.peek_non_space()
                if not (nxt.typ is Tok.KEYWORD and nxt.val in ("if", "with")):
                    self.expect(Tok.RIGHT, "else")
                return _Else(tok.line)
            if word == "end":
                self.expect(Tok.RIGHT, "end")
                return _End()
            if word in ("if", "with", "range"):
                return self.control(word)
            raise self.error(f"{{{{{word}}}}} is not supported in model templates", tok)
        self.i -= 1
        return ast.Action(self.pipeline("command", Tok.RIGHT))

    def control(self, context: str) -> ast.Node:
        self.enter()
        mark = len(self.vars)
        pipe = self.pipeline(context, Tok.RIGHT)
        if context == "range":
            self.range_depth += 1
        body, nxt = self.item_list()
        if context == "range":
            self.range_depth -= 1
        else_: tuple[ast.Node, ...] | None = None
        if isinstance(nxt, _Else):
            follow = self.peek()
            if context in ("if", "with") and follow.typ is Tok.KEYWORD and follow.val == context:
                self.next()
                else_ = (self.control(context),)  # "else if" is an if nested in the else list
            else:
                else_, end = self.item_list()
                if not isinstance(end, _End):
                    raise self.error("expected end; found {{else}}")
        del self.vars[mark:]
        self.depth -= 1
        if context == "if":
            return ast.If(pipe, body, else_)
        if context == "with":
            return ast.With(pipe, body, else_)
        return ast.Range(pipe, body, else_)

    # -- pipelines -----------------------------------------------------------------------------
    def pipeline(self, context: str, end: Tok) -> ast.Pipe:
        line = self.peek_non_space().line
        decl: list[str] = []
        is_assign = False
        while self.peek_non_space().typ is Tok.VARIABLE:
            start = self.i
            var = self.next_non_space()
            nxt = self.peek_non_space()
            if nxt.typ in (Tok.ASSIGN, Tok.DECLARE):
                self.next_non_space()
                is_assign = nxt.typ is Tok.ASSIGN
                decl.append(var.val)
                if is_assign and var.val not in self.vars:
                    raise self.error(f"undefined variable {var.val!r}", var)
                self.vars.append(var.val)
                break
            if nxt.typ is Tok.CHAR and nxt.val == ",":
                self.next_non_space()
                decl.append(var.val)
                self.vars.append(var.val)
                if context == "range" and len(decl) < 2 and self.peek_non_space().typ is Tok.VARIABLE:
                    continue
                raise self.error(f"too many declarations in {context}", var)
            self.i = start
            break
        cmds: list[ast.Command] = []
        while True:
            tok = self.next_non_space()
            if tok.typ is end:
                break
            if tok.typ in (Tok.BOOL, Tok.CHAR_CONST, Tok.DOT, Tok.FIELD, Tok.IDENT, Tok.NUMBER, Tok.NIL,
                           Tok.RAW_STRING, Tok.STRING, Tok.VARIABLE, Tok.LPAREN):
                self.i -= 1
                cmds.append(self.command())
            else:
                raise self.unexpected(tok, context)
        if not cmds:
            raise self.error(f"missing value for {context}")
        for n, cmd in enumerate(cmds[1:], start=2):
            if isinstance(cmd.args[0], ast.Literal | ast.Dot | ast.Nil):
                raise self.error(f"non executable command in pipeline stage {n}")
        return ast.Pipe(line, tuple(decl), is_assign, tuple(cmds))

    def command(self) -> ast.Command:
        args: list[ast.Arg] = []
        while True:
            self.peek_non_space()
            operand = self.operand()
            if operand is not None:
                args.append(operand)
            tok = self.next()
            if tok.typ is Tok.SPACE:
                continue
            if tok.typ in (Tok.RIGHT, Tok.RPAREN):
                self.i -= 1
            elif tok.typ is not Tok.PIPE:
                raise self.unexpected(tok, "operand")
            break
        if not args:
            raise self.error("empty command")
        return ast.Command(tuple(args))

    def operand(self) -> ast.Arg | None:
        node = self.term()
        if node is None or self.peek().typ is not Tok.FIELD:
            return node
        fields: list[str] = []
        while self.peek().typ is Tok.FIELD:
            fields.append(self.next().val[1:])
        if isinstance(node, ast.Field):
            return ast.Field(node.idents + tuple(fields))
        if isinstance(node, ast.Variable):
            return ast.Variable(node.idents + tuple(fields))
        if isinstance(node, ast.Literal | ast.Nil | ast.Dot):
            raise self.error("unexpected . after term")
        return ast.Chain(node, tuple(fields))

    def term(self) -> ast.Arg | None:
        tok = self.next_non_space()
        typ = tok.typ
        if typ is Tok.IDENT:
            if tok.val not in self.funcs:
                raise self.error(f'function "{tok.val}" not defined', tok)
            return ast.Identifier(tok.val)
        if typ is Tok.DOT:
            return ast.Dot()
        if typ is Tok.NIL:
            return ast.Nil()
        if typ is Tok.VARIABLE:
            name = tok.val.split(".")[0]
            if name not in self.vars:
                raise self.error(f"undefined variable {name!r}", tok)
            return ast.Variable((name,))
        if typ is Tok.FIELD:
            return ast.Field((tok.val[1:],))
        if typ is Tok.BOOL:
            return ast.Literal(tok.val == "true")
        if typ in (Tok.NUMBER, Tok.CHAR_CONST):
            try:
                return ast.Literal(parse_number(tok.val))
            except ValueError as e:
                raise self.error(str(e), tok) from None
        if typ in (Tok.STRING, Tok.RAW_STRING):
            try:
                return ast.Literal(unquote(tok.val))
            except ValueError as e:
                raise self.error(str(e), tok) from None
        if typ is Tok.LPAREN:
            self.enter()
            pipe = self.pipeline("parenthesized pipeline", Tok.RPAREN)
            self.depth -= 1
            return pipe
        self.i -= 1
        return None


def parse_nodes(text: str, funcs: Collection[str]) -> tuple[ast.Node, ...]:
    """Parse template text into its root node list; raises TemplateError."""
    return _Parser(lex(text), funcs).parse()
