"""Go's ``fmt.Sprint``, ``Sprintln`` and ``Sprintf`` for the verbs templates use."""

from __future__ import annotations

import re
from typing import Any

from ._govalues import MISSING, format_float, sprint, type_name

_VERB = re.compile(r"%([-+# 0]*)(\d+|\*)?(?:\.(\d+|\*)?)?(.)?", re.S)


def go_sprint(*args: Any) -> str:
    """fmt.Sprint: a space between operands when neither is a string."""
    out: list[str] = []
    prev_string = False
    for i, a in enumerate(args):
        is_string = isinstance(a, str)
        if i > 0 and not is_string and not prev_string:
            out.append(" ")
        out.append(sprint(a, top=False) if a is not MISSING else "<nil>")
        prev_string = is_string
    return "".join(out)


def go_sprintln(*args: Any) -> str:
    """fmt.Sprintln: spaces between all operands and a trailing newline."""
    return " ".join(sprint(a, top=False) for a in args) + "\n"


def _bad(verb: str, arg: Any) -> str:
    return f"%!{verb}({type_name(arg)}={sprint(arg, top=False)})"


def _pad(s: str, flags: str, width: int | None) -> str:
    if width is None or len(s) >= width:
        return s
    if "-" in flags:
        return s.ljust(width)
    if "0" in flags and s[:1] in "+-" and s[1:2].isdigit():
        return s[0] + s[1:].rjust(width - 1, "0")
    if "0" in flags:
        return s.rjust(width, "0")
    return s.rjust(width)


def _quote(s: str) -> str:
    out = ['"']
    for ch in s:
        if ch in '"\\':
            out.append("\\" + ch)
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\t":
            out.append("\\t")
        elif ch == "\r":
            out.append("\\r")
        elif not ch.isprintable():
            out.append(f"\\x{ord(ch):02x}" if ord(ch) < 0x80 else f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    return "".join(out) + '"'


def _one(verb: str, flags: str, prec: int | None, arg: Any) -> str:
    is_int = isinstance(arg, int) and not isinstance(arg, bool)
    if verb == "v":
        return sprint(arg, top=False)
    if verb == "s":
        if isinstance(arg, str | list | tuple | dict) or hasattr(arg, "go_string"):
            text = sprint(arg, top=False)
            return text if prec is None else text[:prec]
        return _bad(verb, arg)
    if verb == "q":
        return _quote(arg) if isinstance(arg, str) else (repr(chr(arg)) if is_int else _bad(verb, arg))
    if verb == "t":
        return ("true" if arg else "false") if isinstance(arg, bool) else _bad(verb, arg)
    if verb in "dboxXc" and is_int:
        sign = "+" if "+" in flags and arg >= 0 else ""
        if verb == "c":
            return chr(arg)
        body = {"d": str(arg), "b": format(arg, "b"), "o": format(arg, "o"), "x": format(arg, "x"),
                "X": format(arg, "X")}[verb]
        return sign + body
    if verb in "xX" and isinstance(arg, str):
        out = arg.encode().hex()
        return out.upper() if verb == "X" else out
    if verb in "eEfFgG" and isinstance(arg, float | int) and not isinstance(arg, bool):
        f = float(arg)
        sign = "+" if "+" in flags and f >= 0 else ""
        if verb in "gG" and prec is None:
            return sign + format_float(f)
        py = format(f, f".{6 if prec is None else prec}{verb}")
        return sign + py
    return _bad(verb, arg)


def go_sprintf(fmt: str, *args: Any) -> str:
    """fmt.Sprintf with Go's error forms (%!d(string=x), %!v(MISSING), %!(EXTRA ...))."""
    out: list[str] = []
    argi = 0
    pos = 0
    while True:
        i = fmt.find("%", pos)
        if i < 0:
            out.append(fmt[pos:])
            break
        out.append(fmt[pos:i])
        m = _VERB.match(fmt, i)
        assert m is not None
        flags, width_s, prec_s, verb = m.groups()
        pos = m.end()
        if verb is None:
            out.append("%!(NOVERB)")
            break
        if verb == "%":
            out.append("%")
            continue
        width = prec = None
        if width_s == "*":
            width, argi = (args[argi] if argi < len(args) and isinstance(args[argi], int) else None), argi + 1
        elif width_s:
            width = int(width_s)
        if prec_s == "*":
            prec, argi = (args[argi] if argi < len(args) and isinstance(args[argi], int) else None), argi + 1
        elif prec_s:
            prec = int(prec_s)
        if argi >= len(args):
            out.append(f"%!{verb}(MISSING)")
            continue
        arg = args[argi]
        argi += 1
        out.append(_pad(_one(verb, flags, prec, None if arg is MISSING else arg), flags, width))
    if argi < len(args):
        extra = ", ".join(f"{type_name(a)}={sprint(a, top=False)}" for a in args[argi:])
        out.append(f"%!(EXTRA {extra})")
    return "".join(out)
