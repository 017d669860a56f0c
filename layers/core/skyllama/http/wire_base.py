"""The pydantic base of every request body type: unknown fields ignored, and text that is valid
Unicode only (T-36).

JSON may spell a lone UTF-16 surrogate (``"hi\\ud800"``); Python decodes it into a ``str`` that
cannot be encoded to UTF-8, so it fails much later, wherever the text meets a tokenizer, a
JSON response, SQLite or a file (a 500, or a runner error). It is refused here, once, when the
body is parsed: every string (and every object key) of the request, at any depth, so no route
needs its own check. Go's decoder (Ollama) replaces such a surrogate with U+FFFD; skyllama
answers 400 instead of changing what the client sent.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, model_validator
from pydantic_core import PydanticCustomError


def lone_surrogate(value: Any) -> str | None:
    """The first lone surrogate (as ``\\udXXX``) in the strings of a JSON value, or None."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if not item.isascii():
                try:
                    item.encode("utf-8")
                except UnicodeEncodeError as e:
                    return f"\\u{ord(item[e.start]):04x}"
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list | tuple):
            stack.extend(i for i in item if not isinstance(i, int | float | bool))
    return None


class WireBase(BaseModel):
    """Base of the wire types in ``types``, ``inference_types`` and ``openai_types``."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    @model_validator(mode="before")
    @classmethod
    def _valid_unicode(cls, data: Any) -> Any:
        found = lone_surrogate(data)
        if found is not None:
            raise PydanticCustomError("lone_surrogate", "text holds a lone surrogate ({found}), which is "
                                      "not valid Unicode", {"found": found})
        return data
