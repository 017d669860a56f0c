"""How Go sees template data: truth, ``fmt`` printing (``%v``) and ``encoding/json`` output.

Python values stand in for Go ones: ``str``, ``bool``, ``int``, ``float`` (float64), ``list``
(slices), ``dict`` (maps, printed with sorted keys), ``None`` (nil) and ``MISSING`` (Go's
"invalid value": a missing map key, printed as ``<no value>``). Objects may also implement:

- ``go_fields``: the ordered names of a Go struct's fields (``{{ .Field }}`` reads attributes);
- ``go_string()``: Go's ``String()`` method, used by ``fmt`` when printing the value;
- ``go_json()``: a plain value to marshal in its place (Go's ``MarshalJSON``/struct tags).
"""

from __future__ import annotations

import base64
import json
import math
from decimal import Decimal
from typing import Any


class _Missing:
    """Go's invalid reflect.Value: what a missing map key evaluates to."""

    _instance: _Missing | None = None

    def __new__(cls) -> _Missing:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "<no value>"

    def __bool__(self) -> bool:
        return False


MISSING = _Missing()


class NilSlice(list[Any]):
    """A nil Go slice: empty, prints as ``[]``, marshals as ``null``."""

    def go_json(self) -> Any:
        return None


def is_nil(v: Any) -> bool:
    return v is None or v is MISSING


def truth(v: Any) -> bool:
    """Go's template truth: false, 0, nil and empty string/slice/map are false; structs are true."""
    if is_nil(v):
        return False
    if isinstance(v, bool):
        return v
    if isinstance(v, int | float):
        return v != 0
    if isinstance(v, str | bytes | list | tuple | dict):
        return len(v) > 0
    return True


def type_name(v: Any) -> str:
    """The Go type name used in error messages."""
    if is_nil(v):
        return "<nil>"
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, int):
        return "int"
    if isinstance(v, float):
        return "float64"
    if isinstance(v, str):
        return "string"
    if isinstance(v, bytes):
        return "[]uint8"
    if hasattr(v, "go_type"):
        return str(v.go_type)
    if isinstance(v, list | tuple):
        return "[]interface {}"
    if isinstance(v, dict):
        return "map[string]interface {}"
    return type(v).__name__


def _shortest(f: float) -> tuple[str, int]:
    """Shortest round-trip decimal digits of a positive float and the decimal point position."""
    _, digits, exp = Decimal(repr(f)).as_tuple()
    text = "".join(map(str, digits)).rstrip("0") or "0"
    dp = len(digits) + int(exp)
    return text, dp


def _exp_form(digits: str, dp: int, two_digit_exp: bool) -> str:
    mant = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
    e = dp - 1
    width = 2 if two_digit_exp else 1
    return f"{mant}e{'+' if e >= 0 else '-'}{abs(e):0{width}d}"


def _fixed_form(digits: str, dp: int) -> str:
    if dp <= 0:
        return "0." + "0" * -dp + digits
    if dp >= len(digits):
        return digits + "0" * (dp - len(digits))
    return digits[:dp] + "." + digits[dp:]


def format_float(f: float) -> str:
    """Go's ``%v`` for float64 (strconv 'g' with shortest digits: 1e+06, 123456, 0.0001)."""
    if math.isnan(f):
        return "NaN"
    if math.isinf(f):
        return "+Inf" if f > 0 else "-Inf"
    if f == 0:
        return "-0" if math.copysign(1, f) < 0 else "0"
    sign = "-" if f < 0 else ""
    digits, dp = _shortest(abs(f))
    if dp - 1 < -4 or dp - 1 >= 6:  # strconv 'g' with shortest digits decides at precision 6
        return sign + _exp_form(digits, dp, True)
    return sign + _fixed_form(digits, dp)


def json_float(f: float) -> str:
    """Go's encoding/json float64 form (plain unless < 1e-6 or >= 1e21)."""
    if math.isnan(f) or math.isinf(f):
        raise ValueError(f"json: unsupported value: {format_float(f)}")
    if f == 0:
        return "-0" if math.copysign(1, f) < 0 else "0"
    sign = "-" if f < 0 else ""
    digits, dp = _shortest(abs(f))
    if abs(f) < 1e-6 or abs(f) >= 1e21:
        return sign + _exp_form(digits, dp, False)
    return sign + _fixed_form(digits, dp)


def sprint(v: Any, top: bool = True) -> str:
    """Go's ``fmt.Sprint`` of one value (``%v``), honouring ``go_string`` as Go honours String()."""
    if v is MISSING:
        return "<no value>" if top else "<nil>"
    if v is None:
        return "<nil>"
    stringer = getattr(v, "go_string", None)
    if stringer is not None:
        return str(stringer())
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return format_float(v)
    if isinstance(v, str):
        return v
    if isinstance(v, bytes | bytearray):
        return "[" + " ".join(str(b) for b in v) + "]"
    if isinstance(v, list | tuple):
        return "[" + " ".join(sprint(x, False) for x in v) + "]"
    if isinstance(v, dict):
        return "map[" + " ".join(f"{sprint(k, False)}:{sprint(v[k], False)}" for k in sorted_keys(v)) + "]"
    fields = getattr(v, "go_fields", None)
    if fields is not None:
        body = "{" + " ".join(sprint(getattr(v, f), False) for f in fields) + "}"
        return ("&" if top and getattr(v, "go_pointer", False) else "") + body
    return str(v)


def sorted_keys(d: dict[Any, Any]) -> list[Any]:
    """Map keys in Go's fmt/range order (sorted; mixed types grouped by type name)."""
    try:
        return sorted(d)
    except TypeError:
        return sorted(d, key=lambda k: (type(k).__name__, str(k)))


_HTML_SAFE = str.maketrans({"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028", "\u2029": "\\u2029"})


def json_string(s: str) -> str:
    return json.dumps(s, ensure_ascii=False).translate(_HTML_SAFE)


def marshal(v: Any) -> str:
    """Go's ``json.Marshal`` (HTML-safe escaping, sorted map keys, float64 number form)."""
    if is_nil(v):
        return "null"
    custom = getattr(v, "go_json", None)
    if custom is not None:
        return marshal(custom())
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return json_float(v)
    if isinstance(v, str):
        return json_string(v)
    if isinstance(v, bytes | bytearray):
        return json_string(base64.b64encode(bytes(v)).decode())
    if isinstance(v, list | tuple):
        return "[" + ",".join(marshal(x) for x in v) + "]"
    if isinstance(v, Ordered):
        return "{" + ",".join(f"{json_string(k)}:{marshal(x)}" for k, x in v.items()) + "}"
    if isinstance(v, dict):
        return "{" + ",".join(f"{json_string(str(k))}:{marshal(v[k])}" for k in sorted(v, key=str)) + "}"
    fields = getattr(v, "go_fields", None)
    if fields is not None:
        return "{" + ",".join(f"{json_string(f)}:{marshal(getattr(v, f))}" for f in fields) + "}"
    raise ValueError(f"json: unsupported type: {type_name(v)}")


class Ordered(dict[str, Any]):
    """A JSON object whose keys keep their insertion order (Go struct tags, ordered maps)."""

