"""Node types of a parsed Go template, mirroring ``text/template/parse/node.go``.

Ollama walks this tree (to find ``.Messages``, the tool-call tag or the thinking tags), so the
shapes follow Go's: a list of nodes, actions holding pipelines, pipelines holding commands.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeAlias


@dataclass(frozen=True, slots=True)
class Text:
    text: str


@dataclass(frozen=True, slots=True)
class Field:
    """``.A.B``: idents ("A", "B")."""

    idents: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Variable:
    """``$x.A``: idents ("$x", "A"); ``$`` alone is the data root."""

    idents: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Dot:
    pass


@dataclass(frozen=True, slots=True)
class Nil:
    pass


@dataclass(frozen=True, slots=True)
class Literal:
    """A bool, number or string constant, already converted to its Python value."""

    value: bool | int | float | str


@dataclass(frozen=True, slots=True)
class Identifier:
    """A function name."""

    name: str


@dataclass(frozen=True, slots=True)
class Chain:
    """``(pipeline).A.B``: fields applied to a non-field term."""

    node: Arg
    fields: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Command:
    args: tuple[Arg, ...]


@dataclass(frozen=True, slots=True)
class Pipe:
    line: int
    decl: tuple[str, ...]
    is_assign: bool
    cmds: tuple[Command, ...]


Arg: TypeAlias = Field | Variable | Dot | Nil | Literal | Identifier | Chain | Pipe


@dataclass(frozen=True, slots=True)
class Action:
    pipe: Pipe


@dataclass(frozen=True, slots=True)
class If:
    pipe: Pipe
    body: tuple[Node, ...]
    else_: tuple[Node, ...] | None


@dataclass(frozen=True, slots=True)
class With:
    pipe: Pipe
    body: tuple[Node, ...]
    else_: tuple[Node, ...] | None


@dataclass(frozen=True, slots=True)
class Range:
    pipe: Pipe
    body: tuple[Node, ...]
    else_: tuple[Node, ...] | None


@dataclass(frozen=True, slots=True)
class Break:
    pass


@dataclass(frozen=True, slots=True)
class Continue:
    pass


Node: TypeAlias = Text | Action | If | With | Range | Break | Continue
Branch = (If, With, Range)
