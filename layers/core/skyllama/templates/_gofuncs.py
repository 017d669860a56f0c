"""The functions a template can call: Go's builtins plus Ollama's ``template.FuncMap``.

Each takes already-evaluated arguments and returns a value, or raises ``FuncError`` with Go's
message. ``and``/``or`` are not here: they short-circuit, so the executor evaluates them itself.
"""

from __future__ import annotations

import datetime as _dt
import urllib.parse
from collections.abc import Callable
from typing import Any

from ._gofmt import go_sprint, go_sprintf, go_sprintln
from ._govalues import MISSING, is_nil, marshal, truth, type_name


class FuncError(Exception):
    """A function failed; the executor reports it as 'error calling NAME: message'."""


def _kind(v: Any) -> str:
    if is_nil(v):
        return "nil"
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, int):
        return "int"
    if isinstance(v, float):
        return "float"
    if isinstance(v, str):
        return "string"
    return "other"


def _eq2(a: Any, b: Any) -> bool:
    ka, kb = _kind(a), _kind(b)
    if ka != kb:
        if ka == "nil" or kb == "nil":
            return False  # Go: comparing an invalid value to anything of another kind is false
        raise FuncError("incompatible types for comparison")
    if ka == "other":
        if isinstance(a, list | dict) or isinstance(b, list | dict):
            raise FuncError(f"non-comparable type {type_name(a)}")
        return a is b or a == b
    return bool(a == b)


def eq(arg1: Any, *args: Any) -> bool:
    """eq a b c: a == b || a == c."""
    if not args:
        raise FuncError("missing argument for comparison")
    return any(_eq2(arg1, b) for b in args)


def ne(a: Any, b: Any) -> bool:
    return not _eq2(a, b)


def _lt(a: Any, b: Any) -> bool:
    ka, kb = _kind(a), _kind(b)
    if ka in ("nil", "bool", "other") or kb in ("nil", "bool", "other"):
        raise FuncError("invalid type for comparison")
    if ka != kb:
        raise FuncError("incompatible types for comparison")
    return bool(a < b)


def lt(a: Any, b: Any) -> bool:
    return _lt(a, b)


def le(a: Any, b: Any) -> bool:
    return _lt(a, b) or _eq2(a, b)


def gt(a: Any, b: Any) -> bool:
    return not le(a, b)


def ge(a: Any, b: Any) -> bool:
    return not _lt(a, b)


def not_(a: Any) -> bool:
    return not truth(a)


def length(v: Any) -> int:
    """len: bytes of a string, items of a slice or map."""
    if is_nil(v):
        raise FuncError("len of nil pointer" if v is None else "len of untyped nil")
    if isinstance(v, str):
        return len(v.encode("utf-8", "surrogatepass"))
    if isinstance(v, bytes | list | tuple | dict):
        return len(v)
    raise FuncError(f"len of type {type_name(v)}")


def _int_index(x: Any, what: str) -> int:
    if isinstance(x, bool) or not isinstance(x, int):
        raise FuncError(f"cannot index {what} with type {type_name(x)}")
    return x


def index(item: Any, *indexes: Any) -> Any:
    """index x 1 2: x[1][2]; a missing map key gives no value, as in Go."""
    for x in indexes:
        if is_nil(item):
            raise FuncError("index of untyped nil")
        if isinstance(item, dict):
            item = item.get(x, MISSING)
        elif isinstance(item, str | bytes | list | tuple):
            i = _int_index(x, "slice")
            data = item.encode() if isinstance(item, str) else item
            if not 0 <= i < len(data):
                raise FuncError(f"index out of range: {i}")
            item = data[i]
        else:
            raise FuncError(f"can't index item of type {type_name(item)}")
    return item


def slice_(item: Any, *indexes: Any) -> Any:
    """slice x 1 2: x[1:2] for strings (by byte) and slices."""
    if is_nil(item):
        raise FuncError("slice of untyped nil")
    if len(indexes) > 3:
        raise FuncError(f"too many slice indexes: {len(indexes)}")
    if isinstance(item, str):
        if len(indexes) == 3:
            raise FuncError("cannot 3-index slice a string")
        data: Any = item.encode("utf-8", "surrogatepass")
    elif isinstance(item, list | tuple | bytes):
        data = item
    else:
        raise FuncError(f"can't slice item of type {type_name(item)}")
    bounds = [0, len(data)]
    for n, x in enumerate(indexes[:2]):
        bounds[n] = _int_index(x, "slice")
    if len(indexes) == 3:
        cap = _int_index(indexes[2], "slice")
        if not bounds[1] <= cap <= len(data):
            raise FuncError(f"index out of range: {cap}")
    lo, hi = bounds
    if not 0 <= lo <= len(data) or not 0 <= hi <= len(data):
        raise FuncError(f"index out of range: {lo if not 0 <= lo <= len(data) else hi}")
    if lo > hi:
        raise FuncError(f"invalid slice index: {lo} > {hi}")
    out = data[lo:hi]
    if isinstance(item, str):
        return out.decode("utf-8", "replace")
    return out if isinstance(out, bytes) else list(out)


def _text(args: tuple[Any, ...]) -> str:
    if len(args) == 1 and isinstance(args[0], str):
        return args[0]
    return go_sprint(*args)


def html(*args: Any) -> str:
    s = _text(args)
    for a, b in (("&", "&amp;"), ("'", "&#39;"), ("<", "&lt;"), (">", "&gt;"), ('"', "&#34;"), ("\0", "\ufffd")):
        s = s.replace(a, b)
    return s


def js(*args: Any) -> str:
    out = []
    for ch in _text(args):
        if ch in "\\'\"":
            out.append("\\" + ch)
        elif ch in "<>&=" or ord(ch) < 0x20:
            out.append(f"\\u{ord(ch):04X}")
        else:
            out.append(ch)
    return "".join(out)


def urlquery(*args: Any) -> str:
    return urllib.parse.quote_plus(_text(args), safe="-_.~")


def printf(fmt: Any, *args: Any) -> str:
    if not isinstance(fmt, str):
        raise FuncError(f"wrong type for value; expected string; got {type_name(fmt)}")
    return go_sprintf(fmt, *args)


def to_json(v: Any) -> str:
    """Ollama's json: json.Marshal with the error ignored (an unsupported value gives "")."""
    try:
        return marshal(v)
    except (ValueError, RecursionError):
        return ""


def current_date(*_args: Any) -> str:
    """Ollama's currentDate: today as YYYY-MM-DD (the format argument is ignored, as in Ollama)."""
    return _dt.date.today().isoformat()


def yesterday_date(*_args: Any) -> str:
    return (_dt.date.today() - _dt.timedelta(days=1)).isoformat()


def to_typescript_type(v: Any) -> str:
    """Ollama's toTypeScriptType: a tool property's JSON-schema type as TypeScript."""
    method = getattr(v, "to_typescript_type", None)
    return str(method()) if method is not None else "any"


FUNCS: dict[str, Callable[..., Any]] = {
    "eq": eq, "ne": ne, "lt": lt, "le": le, "gt": gt, "ge": ge, "not": not_,
    "len": length, "index": index, "slice": slice_,
    "print": go_sprint, "printf": printf, "println": go_sprintln,
    "html": html, "js": js, "urlquery": urlquery,
    "json": to_json, "currentDate": current_date, "yesterdayDate": yesterday_date,
    "toTypeScriptType": to_typescript_type,
}
# Handled by the executor because they short-circuit or are unsupported:
SPECIAL = {"and", "or", "call"}
NAMES = frozenset(FUNCS) | SPECIAL
