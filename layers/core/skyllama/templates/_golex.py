"""Lexer for Go's ``text/template`` syntax, following ``text/template/parse/lex.go``.

Trim markers are applied here, exactly as Go does: ``{{- `` removes all trailing
space/tab/CR/LF of the text before it, `` -}}`` all leading ones of the text after it. A
marker needs the space: ``{{-3}}`` is the number -3. Comments (``{{/* */}}``) produce no token.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import Enum, auto

from .errors import TemplateError

_SPACE = " \t\r\n"
_KEYWORDS = {"if", "else", "end", "range", "with", "break", "continue", "define", "template", "block"}
_NUMBER = re.compile(
    r"[+-]?(?:0[xX][0-9a-fA-F_]*(?:\.[0-9a-fA-F_]*)?(?:[pP][+-]?[0-9_]+)?"
    r"|0[oObB][0-9_]*|[0-9_]*\.?[0-9_]*(?:[eE][+-]?[0-9_]+)?)i?"
)


class Tok(Enum):
    TEXT = auto()
    LEFT = auto()
    RIGHT = auto()
    SPACE = auto()
    FIELD = auto()
    VARIABLE = auto()
    IDENT = auto()
    KEYWORD = auto()
    BOOL = auto()
    NIL = auto()
    DOT = auto()
    NUMBER = auto()
    CHAR_CONST = auto()
    STRING = auto()
    RAW_STRING = auto()
    ASSIGN = auto()
    DECLARE = auto()
    PIPE = auto()
    LPAREN = auto()
    RPAREN = auto()
    CHAR = auto()
    EOF = auto()


@dataclass(frozen=True, slots=True)
class Token:
    typ: Tok
    val: str
    line: int


def _is_alnum(c: str) -> bool:
    return c == "_" or c.isalnum()


class _Lexer:
    def __init__(self, text: str) -> None:
        self.s = text
        self.pos = 0
        self.line = 1
        self.tokens: list[Token] = []
        self.paren_depth = 0

    def error(self, msg: str) -> TemplateError:
        return TemplateError(f"template: :{self.line}: {msg}")

    def emit(self, typ: Tok, val: str) -> None:
        self.tokens.append(Token(typ, val, self.line))
        self.line += val.count("\n")

    def at_right_delim(self) -> tuple[bool, bool]:
        s, p = self.s, self.pos
        if p + 1 < len(s) and s[p] in _SPACE and s[p + 1] == "-" and s.startswith("}}", p + 2):
            return True, True
        return s.startswith("}}", p), False

    def run(self) -> list[Token]:
        s = self.s
        while self.pos < len(s):
            start = s.find("{{", self.pos)
            if start < 0:
                self.emit(Tok.TEXT, s[self.pos :])
                break
            after = s[start + 3 : start + 4]
            trim = s[start + 2 : start + 3] == "-" and after != "" and after in _SPACE
            text = s[self.pos : start]
            if trim:
                text = text.rstrip(_SPACE)
            if text:
                self.emit(Tok.TEXT, text)
            self.line += s.count("\n", self.pos + len(text), start)
            self.pos = start + 2 + (2 if trim else 0)
            if s.startswith("/*", self.pos):
                self.comment()
            else:
                self.emit(Tok.LEFT, "{{")
                self.inside_action()
        self.emit(Tok.EOF, "")
        return self.tokens

    def trim_following(self) -> None:
        end = self.pos
        while end < len(self.s) and self.s[end] in _SPACE:
            end += 1
        self.line += self.s.count("\n", self.pos, end)
        self.pos = end

    def comment(self) -> None:
        end = self.s.find("*/", self.pos + 2)
        if end < 0:
            raise self.error("unclosed comment")
        self.line += self.s.count("\n", self.pos, end)
        self.pos = end + 2
        delim, trim = self.at_right_delim()
        if not delim:
            raise self.error("comment ends before closing delimiter")
        self.pos += 4 if trim else 2
        if trim:
            self.trim_following()

    def inside_action(self) -> None:
        s = self.s
        while True:
            delim, trim = self.at_right_delim()
            if delim:
                if self.paren_depth:
                    raise self.error("unclosed left paren")
                self.pos += 4 if trim else 2
                self.emit(Tok.RIGHT, "}}")
                if trim:
                    self.trim_following()
                return
            if self.pos >= len(s):
                raise self.error("unclosed action")
            c = s[self.pos]
            if c in _SPACE:
                self.space()
            elif c == "=":
                self.single(Tok.ASSIGN)
            elif c == ":":
                if not s.startswith(":=", self.pos):
                    raise self.error("expected :=")
                self.pos += 2
                self.emit(Tok.DECLARE, ":=")
            elif c == "|":
                self.single(Tok.PIPE)
            elif c == '"':
                self.quote()
            elif c == "`":
                self.raw_quote()
            elif c == "'":
                self.char_const()
            elif c == "$":
                self.field_or_variable(Tok.VARIABLE)
            elif c == "." and not s[self.pos + 1 : self.pos + 2].isdigit():
                self.field_or_variable(Tok.FIELD)
            elif c in "+-." or c.isdigit():
                self.number()
            elif _is_alnum(c):
                self.identifier()
            elif c == "(":
                self.paren_depth += 1
                self.single(Tok.LPAREN)
            elif c == ")":
                self.paren_depth -= 1
                if self.paren_depth < 0:
                    raise self.error("unexpected right paren")
                self.single(Tok.RPAREN)
            elif c.isascii() and c.isprintable():
                self.single(Tok.CHAR)
            else:
                raise self.error(f"unrecognized character in action: U+{ord(c):04X}")

    def single(self, typ: Tok) -> None:
        self.emit(typ, self.s[self.pos])
        self.pos += 1

    def space(self) -> None:
        start = self.pos
        # Stop before " -}}" so the trim marker is seen by at_right_delim.
        while self.pos < len(self.s) and self.s[self.pos] in _SPACE:
            if self.s.startswith("-}}", self.pos + 1):
                break
            self.pos += 1
        self.emit(Tok.SPACE, self.s[start : self.pos])

    def at_terminator(self) -> bool:
        if self.pos >= len(self.s):
            return True
        c = self.s[self.pos]
        return c in _SPACE or c in ".,|:()" or self.s.startswith("}}", self.pos)

    def scan_alnum(self) -> str:
        start = self.pos
        while self.pos < len(self.s) and _is_alnum(self.s[self.pos]):
            self.pos += 1
        return self.s[start : self.pos]

    def field_or_variable(self, typ: Tok) -> None:
        lead = self.s[self.pos]
        self.pos += 1
        if self.at_terminator():
            self.emit(Tok.DOT if typ is Tok.FIELD else Tok.VARIABLE, lead)
            return
        name = self.scan_alnum()
        if not self.at_terminator():
            raise self.error(f"bad character U+{ord(self.s[self.pos]):04X}")
        self.emit(typ, lead + name)

    def identifier(self) -> None:
        word = self.scan_alnum()
        if not self.at_terminator():
            raise self.error(f"bad character U+{ord(self.s[self.pos]):04X}")
        if word in _KEYWORDS:
            self.emit(Tok.KEYWORD, word)
        elif word in ("true", "false"):
            self.emit(Tok.BOOL, word)
        elif word == "nil":
            self.emit(Tok.NIL, word)
        else:
            self.emit(Tok.IDENT, word)

    def number(self) -> None:
        m = _NUMBER.match(self.s, self.pos)
        text = m.group(0) if m else ""
        end = self.pos + len(text)
        if not text.strip("+-") or (end < len(self.s) and _is_alnum(self.s[end])):
            bad = self.s[self.pos : end + 1]
            raise self.error(f"bad number syntax: {bad!r}")
        self.pos = end
        self.emit(Tok.NUMBER, text)

    def quote(self) -> None:
        start = self.pos
        self.pos += 1
        while True:
            if self.pos >= len(self.s) or self.s[self.pos] == "\n":
                raise self.error("unterminated quoted string")
            c = self.s[self.pos]
            self.pos += 2 if c == "\\" else 1
            if c == '"':
                break
        self.emit(Tok.STRING, self.s[start : self.pos])

    def raw_quote(self) -> None:
        end = self.s.find("`", self.pos + 1)
        if end < 0:
            raise self.error("unterminated raw quoted string")
        text = self.s[self.pos : end + 1]
        self.pos = end + 1
        self.emit(Tok.RAW_STRING, text)

    def char_const(self) -> None:
        start = self.pos
        self.pos += 1
        while True:
            if self.pos >= len(self.s) or self.s[self.pos] == "\n":
                raise self.error("unterminated character constant")
            c = self.s[self.pos]
            self.pos += 2 if c == "\\" else 1
            if c == "'":
                break
        self.emit(Tok.CHAR_CONST, self.s[start : self.pos])


def lex(text: str) -> list[Token]:
    """Split template text into tokens; raises TemplateError on lexical errors."""
    return _Lexer(text).run()
