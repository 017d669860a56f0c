"""Where images go in a prompt (``services/inference/images.py``), as Ollama's ``server/prompt.go``
places them: ``[img-N]`` in front of the content or in place of ``[img]``, numbered across
messages, and the text between markers tokenized piece by piece as ``mtmd_tokenize`` does."""

from __future__ import annotations

import pytest

from skyllama.engine.base import image_placeholder
from skyllama.errors import BadRequest
from skyllama.services.inference.images import check_image_format, image_tokens, mark_messages, with_markers


class Chars:
    """A tokenizer whose tokens are code points; BOS (1) only when add_special is not False."""

    n_ctx = 64

    def tokenize(self, text: str, *, add_special: bool | None = None) -> list[int]:
        return ([1] if add_special is not False else []) + [ord(c) for c in text]


def test_markers_prefix_or_fill_img() -> None:
    assert with_markers("hi", 0, 2) == "[img-0][img-1]hi"
    assert with_markers("a [img] b", 3, 1) == "a [img-3] b"
    assert with_markers("a [img] b", 0, 2) == "[img-1]a [img-0] b"


def test_messages_are_numbered_across_and_lose_their_images() -> None:
    marked, count = mark_messages([{"role": "user", "content": "a", "images": ["x"]},
                                   {"role": "assistant", "content": "b"},
                                   {"role": "user", "content": "see [img]", "images": ["y", "z"]}])
    assert count == 3
    assert [m["content"] for m in marked] == ["[img-0]a", "b", "[img-2]see [img-1]"]
    assert all("images" not in m for m in marked)


def test_image_tokens_place_placeholders_and_bos_once() -> None:
    tokens = image_tokens(Chars(), "ab[img-1]c[img-0]", 2)  # type: ignore[arg-type]
    assert tokens == [1, ord("a"), ord("b"), image_placeholder(1), ord("c"), image_placeholder(0)]
    with pytest.raises(BadRequest, match="invalid image index: 2"):
        image_tokens(Chars(), "[img-2]", 2)  # type: ignore[arg-type]


def test_image_formats() -> None:
    check_image_format([b"\x89PNG\r\n\x1a\n...", b"\xff\xd8\xff\xe0", b"GIF89a", b"BM.."])
    with pytest.raises(BadRequest, match="image 1 is not a PNG"):
        check_image_format([b"GIF87a", b"RIFF....WEBP"])
