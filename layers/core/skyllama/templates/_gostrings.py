"""Go literal syntax: ``strconv.Unquote`` for string/char constants, and number constants."""

from __future__ import annotations

import re

_SIMPLE = {"a": "\a", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v", "\\": "\\"}
_ESCAPE = re.compile(r"\\(?:([abfnrtv\\'\"])|x([0-9a-fA-F]{2})|u([0-9a-fA-F]{4})|U([0-9a-fA-F]{8})|([0-7]{3})|(.?))", re.S)


def _unescape(body: str, quote: str) -> str:
    raw = bytearray()

    def flush_char(ch: str) -> None:
        raw.extend(ch.encode("utf-8", "surrogatepass"))

    pos = 0
    for m in _ESCAPE.finditer(body):
        raw.extend(body[pos : m.start()].encode("utf-8", "surrogatepass"))
        pos = m.end()
        simple, hex2, u4, u8, octal, bad = m.groups()
        if simple is not None:
            if simple in "'\"" and simple != quote:
                raise ValueError("invalid syntax")
            flush_char(_SIMPLE.get(simple, simple))
        elif hex2 is not None:
            raw.append(int(hex2, 16))  # \x is a byte, as in Go
        elif octal is not None:
            value = int(octal, 8)
            if value > 255:
                raise ValueError("invalid syntax")
            raw.append(value)
        elif u4 is not None or u8 is not None:
            cp = int(u4 or u8, 16)
            if cp > 0x10FFFF or 0xD800 <= cp <= 0xDFFF:
                raise ValueError("invalid syntax")
            flush_char(chr(cp))
        else:
            del bad
            raise ValueError("invalid syntax")
    raw.extend(body[pos:].encode("utf-8", "surrogatepass"))
    return raw.decode("utf-8", "replace")


def unquote(token: str) -> str:
    """Go's strconv.Unquote for "..." and `...` literals (raw strings drop carriage returns)."""
    if token.startswith("`"):
        return token[1:-1].replace("\r", "")
    body = token[1:-1]
    if "\n" in body:
        raise ValueError("invalid syntax")
    return _unescape(body, '"')


def parse_number(text: str) -> int | float:
    """Go's number constants: ints (decimal, 0x, 0o, 0b, leading-0 octal), floats and 'c' runes."""
    if text.startswith("'"):
        value = _unescape(text[1:-1], "'")
        if len(value) != 1:
            raise ValueError(f"malformed character constant: {text}")
        return ord(value)
    if text.endswith("i"):
        raise ValueError(f"complex constants are not supported: {text}")
    clean = text.replace("_", "")
    sign = -1 if clean.startswith("-") else 1
    digits = clean.lstrip("+-")
    lower = digits.lower()
    try:
        if lower.startswith("0x"):
            if "." in lower or "p" in lower:
                return sign * float.fromhex(digits)
            return sign * int(digits, 16)
        if lower.startswith(("0o", "0b")):
            return sign * int(digits, 0)
        if any(c in lower for c in ".e"):
            return sign * float(digits)
        if len(digits) > 1 and digits.startswith("0"):
            return sign * int(digits, 8)
        return sign * int(digits)
    except ValueError:
        raise ValueError(f"bad number syntax: {text!r}") from None
