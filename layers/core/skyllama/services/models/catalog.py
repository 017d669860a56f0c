"""The model catalogue: names to manifests to models, and the management operations on them
(``/api/tags``, ``/api/show``, ``/api/copy``, ``/api/delete``).

Every operation that reads or changes a model takes the ``caller`` (``access.ownership.Caller``):
another owner's private model answers exactly as a missing one.
"""

from __future__ import annotations

import json
import logging
import threading
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from ...digests import Digest
from ...errors import BadRequest, ModelNotFound, SkyllamaError
from ...gguf_info import SHOW_DELETED_KEYS, GGUFInfo, read_gguf
from ...manifest import (
    MEDIA_ADAPTER,
    MEDIA_LICENSE,
    MEDIA_MESSAGES,
    MEDIA_MODEL,
    MEDIA_PARAMS,
    MEDIA_PROJECTOR,
    MEDIA_SYSTEM,
    MEDIA_TEMPLATE,
    Layer,
    Manifest,
)
from ...modelfile import render_modelfile, shown_options
from ...names import ModelName
from ...options import format_parameters
from ...ports import BlobStore, ManifestStore, StoredManifest
from ...templates import describe_jinja_template, describe_template
from ...timefmt import rfc3339
from ..access.ownership import Caller, Ownership
from .projectors import projector_info

log = logging.getLogger(__name__)


@dataclass
class Model:
    """A model as stored: its name, manifest and the contents of its small layers."""

    name: ModelName
    manifest: Manifest
    modified_at: datetime
    config: dict[str, Any] = field(default_factory=dict)
    template: str | None = None
    system: str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    messages: list[dict[str, Any]] = field(default_factory=list)
    licenses: list[str] = field(default_factory=list)

    @property
    def digest(self) -> Digest:
        return self.manifest.digest

    @property
    def model_layer(self) -> Layer | None:
        return self.manifest.layer_of(MEDIA_MODEL)

    @property
    def adapters(self) -> list[Layer]:
        return self.manifest.layers_of(MEDIA_ADAPTER)

    @property
    def projectors(self) -> list[Layer]:
        return self.manifest.layers_of(MEDIA_PROJECTOR)

    def details(self) -> dict[str, Any]:
        """Ollama's ``details`` object, from the config blob."""
        families = self.config.get("model_families")
        return {
            "parent_model": "",
            "format": self.config.get("model_format") or "gguf",
            "family": self.config.get("model_family") or "",
            "families": families if families else None,
            "parameter_size": self.config.get("model_type") or "",
            "quantization_level": self.config.get("file_type") or "",
        }


def template_capabilities(template: str | None, chat_template: str | None = None) -> set[str]:
    """What a model's template lets it do (``tools``, ``insert``, ``thinking``), by Ollama's rules:
    the Go template layer when there is one, else the GGUF's own Jinja chat template."""
    try:
        if template:
            return set(describe_template(template)["capabilities"])
        if chat_template:
            return set(describe_jinja_template(chat_template)["capabilities"])
    except SkyllamaError:
        log.warning("unparsable template; reporting no template capabilities")
    return set()


class Catalog:
    """Reads and changes models through the blob and manifest stores."""

    def __init__(self, blobs: BlobStore, manifests: ManifestStore, ownership: Ownership) -> None:
        self.blobs = blobs
        self.manifests = manifests
        self.ownership = ownership
        self._gguf_cache: dict[str, GGUFInfo] = {}
        self._gguf_lock = threading.Lock()

    # -- reading -------------------------------------------------------------------------------

    def get(self, name_text: str, caller: Caller) -> Model:
        """The model called ``name_text``; :class:`ModelNotFound` (404) when there is none or
        ``caller`` may not see it."""
        name = ModelName.parse(name_text)
        stored = self.manifests.get(name)
        if stored is None:
            raise ModelNotFound(f"model '{name_text}' not found")
        self.ownership.check_read(caller, stored.name, f"model '{name_text}' not found")
        return self._load(stored)

    def _load(self, stored: StoredManifest) -> Model:
        manifest = Manifest.parse(stored.data)
        model = Model(name=stored.name, manifest=manifest, modified_at=stored.modified_at)
        model.config = self._json_blob(manifest.config.digest, default={})
        for layer in manifest.layers:
            if layer.media_type == MEDIA_TEMPLATE:
                model.template = self._text_blob(layer.digest)
            elif layer.media_type == MEDIA_SYSTEM:
                model.system = self._text_blob(layer.digest)
            elif layer.media_type == MEDIA_PARAMS:
                model.params = self._json_blob(layer.digest, default={})
            elif layer.media_type == MEDIA_MESSAGES:
                model.messages = self._json_blob(layer.digest, default=[])
            elif layer.media_type == MEDIA_LICENSE:
                model.licenses.append(self._text_blob(layer.digest))
        return model

    def _text_blob(self, digest: Digest) -> str:
        return self.blobs.read_bytes(digest).decode("utf-8", errors="replace")

    def _json_blob(self, digest: Digest, default: Any) -> Any:
        try:
            value = json.loads(self.blobs.read_bytes(digest))
        except (ValueError, SkyllamaError):
            log.warning("unreadable JSON layer %s", digest)
            return default
        return value if isinstance(value, type(default)) else default

    def gguf_info(self, digest: Digest) -> GGUFInfo:
        """The validated header of a model blob, cached by digest (blobs never change)."""
        with self._gguf_lock:
            cached = self._gguf_cache.get(digest.hex)
        if cached is not None:
            return cached
        info = read_gguf(self.blobs.local_path(digest))
        with self._gguf_lock:
            self._gguf_cache[digest.hex] = info
        return info

    def model_path(self, model: Model) -> Path:
        layer = model.model_layer
        if layer is None:
            raise BadRequest(f"model '{model.name.display()}' has no model weights")
        return self.blobs.local_path(layer.digest)

    def capabilities(self, model: Model) -> list[str]:
        caps: set[str] = set()
        layer = model.model_layer
        info = self.gguf_info(layer.digest) if layer else None
        if info is not None and info.is_embedding_model:
            caps.add("embedding")
        else:
            caps.add("completion")
            caps |= template_capabilities(model.template, info.chat_template if info else None)
        if model.projectors or (info is not None and info.arch_value("vision.block_count") is not None):
            caps.add("vision")
        order = ["completion", "tools", "insert", "vision", "embedding", "thinking"]
        return [c for c in order if c in caps]

    # -- the API's views ----------------------------------------------------------------------

    def list_models(self, caller: Caller) -> list[dict[str, Any]]:
        """``/api/tags``: the models ``caller`` may see, newest first; one unreadable manifest
        never hides the others."""
        entries = []
        stored_list = self.manifests.list()
        readable = self.ownership.visible(caller, (s.name for s in stored_list))
        for stored in stored_list:
            if stored.name.key not in readable:
                continue
            try:
                model = self._load(stored)
            except SkyllamaError as e:
                log.warning("skipping model %s: %s", stored.name, e)
                continue
            entries.append((model.modified_at, {
                "name": model.name.display(),
                "model": model.name.display(),
                "modified_at": rfc3339(model.modified_at),
                "size": model.manifest.total_size,
                "digest": model.digest.hex,
                "details": model.details(),
                **self._capabilities_field(model),
            }))
        entries.sort(key=lambda item: item[0], reverse=True)
        return [entry for _, entry in entries]

    def _capabilities_field(self, model: Model) -> dict[str, Any]:
        """``capabilities`` for a ``/api/tags`` entry (Ollama v0.30); omitted, never fatal, when
        the model's weights cannot be read."""
        try:
            return {"capabilities": self.capabilities(model)}
        except (SkyllamaError, OSError) as e:
            log.warning("no capabilities for %s: %s", model.name, e)
            return {}

    def show(self, name_text: str, caller: Caller, verbose: bool = False, system: str | None = None,
             options: dict[str, Any] | None = None) -> dict[str, Any]:
        """``/api/show`` as Ollama's GetModelInfo: the request's ``system`` replaces the model's
        (answer and Modelfile), its ``options`` join the Modelfile's PARAMETERs (not
        ``parameters``); ``verbose`` reads every array of the GGUF header."""
        model = self.get(name_text, caller)
        if system:
            model.system = system
        layer = model.model_layer
        info = self.gguf_info(layer.digest) if layer else None
        if verbose and layer is not None:
            info = read_gguf(self.blobs.local_path(layer.digest), all_arrays=True)
        response: dict[str, Any] = {}
        if model.licenses:
            response["license"] = "\n".join(model.licenses)
        response["modelfile"] = render_modelfile(
            from_line=f"@{layer.digest}" if layer else model.name.display(),
            template=model.template, system=model.system, params={**model.params, **shown_options(options)},
            messages=model.messages, licenses=model.licenses, display_name=model.name.display(),
            projectors=tuple(f"@{x.digest}" for x in model.projectors),
            adapters=tuple(f"@{x.digest}" for x in model.adapters),
        )
        if model.params:
            response["parameters"] = format_parameters(model.params)
        if model.template:
            response["template"] = model.template
        if model.system:
            response["system"] = model.system
        details = model.details()
        response["details"] = details
        if model.messages:
            response["messages"] = model.messages
        response["model_info"] = {k: v for k, v in info.model_info(verbose).items()
                                  if k not in SHOW_DELETED_KEYS} if info else {}
        if model.projectors:  # Ollama shows the first projector's keys
            response["projector_info"] = projector_info(self.gguf_info(model.projectors[0].digest))
        if info is not None:  # always, as Ollama's GetModelInfo (its CLI prints them with --verbose)
            response["tensors"] = [
                {"name": t.name, "type": t.type_name, "shape": list(t.shape)} for t in info.tensors
            ]
        response["capabilities"] = self.capabilities(model)
        response["modified_at"] = rfc3339(model.modified_at)
        return response

    # -- changing -----------------------------------------------------------------------------

    def copy(self, source: str, destination: str, caller: Caller) -> None:
        src = ModelName.parse(source)
        dst = ModelName.parse(destination)
        stored = self.manifests.get(src)
        if stored is None:
            raise ModelNotFound(f'model "{source}" not found')
        self.ownership.check_read(caller, stored.name, f'model "{source}" not found')
        self.ownership.check_write(caller, dst)
        self.manifests.put(dst, stored.data)
        self.ownership.claim(caller, dst)

    def delete(self, name_text: str, caller: Caller) -> None:
        """Remove the manifest, then the blobs only it referenced (never a shared one)."""
        name = ModelName.parse(name_text)
        stored = self.manifests.get(name)
        if stored is None:
            raise ModelNotFound(f"model '{name_text}' not found")
        self.ownership.check_delete(caller, stored.name, f"model '{name_text}' not found")
        try:
            candidates = set(Manifest.parse(stored.data).blobs())
        except SkyllamaError:
            candidates = set()
        self.manifests.delete(stored.name)
        self.ownership.forget(caller, stored.name)
        self.prune(candidates)

    def prune(self, candidates: set[Digest]) -> list[Digest]:
        """Delete those of ``candidates`` no remaining manifest references.

        Refuses (deletes nothing) while any manifest is unreadable, since its references are
        unknown.
        """
        if not candidates:
            return []
        referenced: set[Digest] = set()
        manifests = self.manifests.list()
        if self.manifests.problems():
            log.warning("not pruning blobs: unreadable manifests %s", self.manifests.problems())
            return []
        for stored in manifests:
            try:
                referenced.update(Manifest.parse(stored.data).blobs())
            except SkyllamaError:
                log.warning("not pruning blobs: manifest %s is corrupt", stored.name)
                return []
        removed = []
        for digest in sorted(candidates - referenced):
            if self.blobs.delete(digest):
                removed.append(digest)
        return removed
