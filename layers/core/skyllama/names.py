"""Model names as a value object, following Ollama's grammar (``types/model/name.go``).

    {host}/{namespace}/{model}:{tag}

Defaults fill what is missing: host ``registry.ollama.ai``, namespace ``library``, tag
``latest``. Each part starts with a letter, digit or ``_``; then letters, digits, ``_``, ``-``
and ``.`` follow (no ``.`` in the namespace; the host may also hold ``:`` for a port). The host
may be up to 255 characters, other parts up to 80. Names compare case-insensitively but keep the
case they were written in.

Ollama allows a 350-character host, but every part is a folder or file name under
``manifests/`` and a file system refuses a name over 255 bytes (``File name too long``, which
Ollama itself hits): the limit is checked here, once, so every route that takes a name (create,
copy, pull, push, show, delete) answers the same 400 (T-36). Parts are ASCII, so characters are
bytes; a DNS name is at most 253 characters anyway.
"""

from __future__ import annotations

from dataclasses import dataclass

from .errors import InvalidName

DEFAULT_HOST = "registry.ollama.ai"
DEFAULT_NAMESPACE = "library"
DEFAULT_TAG = "latest"

_HOST_MAX = 255  # a file name's limit (NAME_MAX); Ollama's 350 cannot be stored on disk
_PART_MAX = 80


def _is_word_char(c: str) -> bool:
    return c.isascii() and (c.isalnum() or c == "_")


def _valid_part(kind: str, s: str) -> bool:
    if not s or len(s) > (_HOST_MAX if kind == "host" else _PART_MAX):
        return False
    if not _is_word_char(s[0]):
        return False
    for c in s[1:]:
        if _is_word_char(c) or c in "_-":
            continue
        if c == "." and kind != "namespace":
            continue
        if c == ":" and kind == "host":
            continue
        return False
    return True


@dataclass(frozen=True)
class ModelName:
    """A fully qualified model name. Build it with :meth:`parse`."""

    host: str
    namespace: str
    model: str
    tag: str

    @classmethod
    def parse(cls, text: str) -> ModelName:
        """Parse a name as Ollama does, fill defaults, and validate every part.

        Raises :class:`InvalidName` for anything outside the grammar, including paths such as
        ``../../etc/passwd`` and names with too many parts such as ``a/b/c/d/e``.
        """
        if not isinstance(text, str) or not text.strip():
            raise InvalidName("invalid model name: the name is empty")
        raw = text.strip()
        for scheme in ("https://", "http://"):
            if raw.startswith(scheme):
                raw = raw[len(scheme) :]
        if "@" in raw:  # a trailing digest pins a version; the name part is what we store
            raw = raw.split("@", 1)[0]
        tag = DEFAULT_TAG
        slash = raw.rfind("/")
        colon = raw.rfind(":")
        if colon > slash:
            raw, tag = raw[:colon], raw[colon + 1 :]
        parts = raw.split("/")
        if len(parts) == 1:
            host, namespace, model = DEFAULT_HOST, DEFAULT_NAMESPACE, parts[0]
        elif len(parts) == 2:
            host, namespace, model = DEFAULT_HOST, parts[0], parts[1]
        elif len(parts) == 3:
            host, namespace, model = parts
        else:
            raise InvalidName(f"invalid model name {text!r}: too many '/' separated parts")
        name = cls(host=host, namespace=namespace, model=model, tag=tag)
        for kind, value in (("host", host), ("namespace", namespace), ("model", model), ("tag", tag)):
            if not _valid_part(kind, value):
                raise InvalidName(f"invalid model name {text!r}: bad {kind} {value!r}")
        return name

    @property
    def key(self) -> tuple[str, str, str, str]:
        """Case-folded identity: two names with the same key are the same model."""
        return (self.host.lower(), self.namespace.lower(), self.model.lower(), self.tag.lower())

    def same_as(self, other: ModelName) -> bool:
        return self.key == other.key

    def __str__(self) -> str:
        return f"{self.host}/{self.namespace}/{self.model}:{self.tag}"

    def display(self) -> str:
        """The shortest form Ollama shows: default host and namespace dropped."""
        if self.host.lower() == DEFAULT_HOST:
            if self.namespace.lower() == DEFAULT_NAMESPACE:
                return f"{self.model}:{self.tag}"
            return f"{self.namespace}/{self.model}:{self.tag}"
        return str(self)

    def path_parts(self) -> tuple[str, str, str, str]:
        """The four path segments under ``manifests/`` (validated, so safe to join)."""
        return (self.host, self.namespace, self.model, self.tag)

    def storage_key(self) -> str:
        """``manifests/<host>/<namespace>/<model>/<tag>``, as Ollama lays it out."""
        return "manifests/" + "/".join(self.path_parts())

    @classmethod
    def from_path_parts(cls, parts: tuple[str, ...] | list[str]) -> ModelName:
        """Inverse of :meth:`path_parts`, validating each part (used when listing stores)."""
        if len(parts) != 4:
            raise InvalidName("invalid manifest path")
        host, namespace, model, tag = parts
        name = cls(host, namespace, model, tag)
        for kind, value in zip(("host", "namespace", "model", "tag"), parts, strict=True):
            if not _valid_part(kind, value):
                raise InvalidName(f"invalid manifest path part {value!r}")
        return name
