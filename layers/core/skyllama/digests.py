"""Content digests as a value object: ``sha256:<hex>`` or ``sha256-<hex>``, 64 lower-case hex.

Every storage key for a blob is built by :meth:`Digest.blob_key` from a validated digest, so
nothing a client sends is ever joined into a path or an S3 key unchecked.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from .errors import InvalidDigest

_DIGEST = re.compile(r"sha256[:-]([0-9a-f]{64})")


@dataclass(frozen=True, order=True)
class Digest:
    """A sha256 digest; ``hex`` is always 64 lower-case hexadecimal characters."""

    hex: str

    @classmethod
    def parse(cls, text: object) -> Digest:
        """Accept ``sha256:<hex>`` or ``sha256-<hex>``; anything else is :class:`InvalidDigest`."""
        if not isinstance(text, str):
            raise InvalidDigest("invalid digest format")
        m = _DIGEST.fullmatch(text)
        if m is None:
            raise InvalidDigest("invalid digest format")
        return cls(m.group(1))

    @classmethod
    def of_bytes(cls, data: bytes) -> Digest:
        return cls(hashlib.sha256(data).hexdigest())

    def __post_init__(self) -> None:
        if not re.fullmatch(r"[0-9a-f]{64}", self.hex):
            raise InvalidDigest("invalid digest format")

    def __str__(self) -> str:
        return f"sha256:{self.hex}"

    @property
    def filename(self) -> str:
        """``sha256-<hex>``: the blob's file name in Ollama's layout."""
        return f"sha256-{self.hex}"

    def blob_key(self) -> str:
        """``blobs/sha256-<hex>``: the blob's key relative to the model folder or bucket prefix."""
        return f"blobs/{self.filename}"

    @property
    def short(self) -> str:
        """The 12 hex digits Ollama shows in progress lines (``pulling 6a0746a1ec1a``)."""
        return self.hex[:12]
