"""Images in prompts, as Ollama places them: each message's images become ``[img-N]`` markers
(``server/prompt.go``: in front of the content, or in place of the content's ``[img]``
markers), the template renders them as text, and the prompt's tokens carry
:func:`~skyllama.engine.base.image_placeholder` where each marker was, with the text between
markers tokenized piece by piece as llama.cpp's ``mtmd_tokenize`` does (only the first piece
gets the tokenizer's BOS). The engine evaluates the images there (``engine/vision.py``).
"""

from __future__ import annotations

import re
from typing import Any

from ...engine.base import EngineModel, image_placeholder
from ...errors import BadRequest

MARKER = re.compile(r"\[img-(\d+)\]")
# What llama.cpp's stb_image decodes, by signature: anything else fails inside the runner, after
# the response has begun, so it is a 400 here.
_SIGNATURES = (b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"GIF87a", b"GIF89a", b"BM")


def check_image_format(images: list[bytes]) -> None:
    for i, data in enumerate(images):
        if not data.startswith(_SIGNATURES):
            raise BadRequest(f"image {i} is not a PNG, JPEG, GIF or BMP image")


def with_markers(content: str, first: int, count: int) -> str:
    """``content`` with the markers of images ``first .. first + count - 1``."""
    prefix = ""
    for index in range(first, first + count):
        tag = f"[img-{index}]"
        if "[img]" in content:
            content = content.replace("[img]", tag, 1)
        else:
            prefix += tag
    return prefix + content


def mark_messages(messages: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], int]:
    """Copies of ``messages`` with their images' markers and without the images themselves (so
    no template renderer tags them again); the number of images. Numbering runs over every
    message, so a message dropped to fit the context leaves the others' numbers unchanged."""
    marked, count = [], 0
    for message in messages:
        images = message.get("images") or []
        if images:
            content = with_markers(str(message.get("content") or ""), count, len(images))
            message = {k: v for k, v in message.items() if k != "images"} | {"content": content}
            count += len(images)
        marked.append(message)
    return marked, count


def image_tokens(context: EngineModel, prompt: str, count: int) -> list[int]:
    """``prompt``'s tokens with each ``[img-N]`` marker as image N's placeholder."""
    tokens: list[int] = []
    pos = 0
    first = True
    for match in MARKER.finditer(prompt):
        index = int(match.group(1))
        if index >= count:
            raise BadRequest(f"invalid image index: {index}")
        tokens += context.tokenize(prompt[pos:match.start()], add_special=None if first else False)
        tokens.append(image_placeholder(index))
        pos, first = match.end(), False
    tokens += context.tokenize(prompt[pos:], add_special=None if first else False)
    return tokens
