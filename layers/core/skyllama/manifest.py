"""Ollama manifests: the JSON that names a model's config blob and its layers.

Byte-compatible with what Ollama writes (``manifest/manifest.go``): the same media types, the
same field order, no spaces, so a folder written by Ollama is served by skyllama and the reverse.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from .digests import Digest
from .errors import BadRequest

MANIFEST_MEDIA_TYPE = "application/vnd.docker.distribution.manifest.v2+json"
CONFIG_MEDIA_TYPE = "application/vnd.docker.container.image.v1+json"

MEDIA_MODEL = "application/vnd.ollama.image.model"
MEDIA_ADAPTER = "application/vnd.ollama.image.adapter"
MEDIA_PROJECTOR = "application/vnd.ollama.image.projector"
MEDIA_TEMPLATE = "application/vnd.ollama.image.template"
MEDIA_SYSTEM = "application/vnd.ollama.image.system"
MEDIA_PARAMS = "application/vnd.ollama.image.params"
MEDIA_MESSAGES = "application/vnd.ollama.image.messages"
MEDIA_LICENSE = "application/vnd.ollama.image.license"

# Limits that keep a hostile manifest (from a client or a rogue registry) cheap to reject.
MAX_MANIFEST_BYTES = 1 << 20
MAX_LAYERS = 256


@dataclass(frozen=True)
class Layer:
    """One blob of a model: its media type, digest and size (and, for copies, where it came from)."""

    media_type: str
    digest: Digest
    size: int
    from_: str | None = None

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"mediaType": self.media_type, "digest": str(self.digest), "size": self.size}
        if self.from_:
            d["from"] = self.from_
        return d


@dataclass(frozen=True)
class Manifest:
    config: Layer
    layers: tuple[Layer, ...] = field(default_factory=tuple)
    schema_version: int = 2
    media_type: str = MANIFEST_MEDIA_TYPE

    def to_bytes(self) -> bytes:
        """Ollama's ``json.Marshal`` form: compact, fields in Go struct order."""
        doc = {
            "schemaVersion": self.schema_version,
            "mediaType": self.media_type,
            "config": self.config.to_dict(),
            "layers": [layer.to_dict() for layer in self.layers],
        }
        return json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode()

    @property
    def digest(self) -> Digest:
        """The digest Ollama reports for a model: sha256 of the manifest bytes."""
        return Digest.of_bytes(self.to_bytes())

    @property
    def total_size(self) -> int:
        """Size reported by ``/api/tags``: config plus all layers, as Ollama sums it."""
        return self.config.size + sum(layer.size for layer in self.layers)

    def blobs(self) -> list[Digest]:
        """Every digest this manifest references, config first, without duplicates."""
        seen: dict[str, Digest] = {}
        for layer in (self.config, *self.layers):
            seen.setdefault(layer.digest.hex, layer.digest)
        return list(seen.values())

    def layers_of(self, media_type: str) -> list[Layer]:
        return [layer for layer in self.layers if layer.media_type == media_type]

    def layer_of(self, media_type: str) -> Layer | None:
        found = self.layers_of(media_type)
        return found[-1] if found else None

    @classmethod
    def parse(cls, data: bytes) -> Manifest:
        """Parse and validate manifest bytes; every digest is checked before it is used as a key."""
        if len(data) > MAX_MANIFEST_BYTES:
            raise BadRequest("manifest too large")
        try:
            doc = json.loads(data)
        except (ValueError, UnicodeDecodeError) as e:
            raise BadRequest("invalid manifest: not JSON") from e
        if not isinstance(doc, dict) or not isinstance(doc.get("config"), dict):
            raise BadRequest("invalid manifest: missing config")
        raw_layers = doc.get("layers") or []
        if not isinstance(raw_layers, list) or len(raw_layers) > MAX_LAYERS:
            raise BadRequest("invalid manifest: bad layer list")
        return cls(
            config=_parse_layer(doc["config"]),
            layers=tuple(_parse_layer(item) for item in raw_layers),
            schema_version=int(doc.get("schemaVersion", 2)),
            media_type=str(doc.get("mediaType", MANIFEST_MEDIA_TYPE)),
        )


def _parse_layer(item: object) -> Layer:
    if not isinstance(item, dict):
        raise BadRequest("invalid manifest: layer is not an object")
    size = item.get("size")
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise BadRequest("invalid manifest: bad layer size")
    media_type = item.get("mediaType")
    if not isinstance(media_type, str) or len(media_type) > 256:
        raise BadRequest("invalid manifest: bad media type")
    from_ = item.get("from")
    return Layer(media_type, Digest.parse(item.get("digest")), size, from_ if isinstance(from_, str) else None)


def config_document(
    *,
    model_format: str,
    model_family: str,
    model_families: Iterable[str],
    model_type: str,
    file_type: str,
    layer_digests: Iterable[Digest],
) -> bytes:
    """The config blob Ollama writes (``model.ConfigV2``): model details plus the rootfs diff ids."""
    doc = {
        "model_format": model_format,
        "model_family": model_family,
        "model_families": list(model_families) or None,
        "model_type": model_type,
        "file_type": file_type,
        "architecture": "amd64",
        "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": [str(d) for d in layer_digests]},
    }
    return json.dumps(doc, separators=(",", ":")).encode()
