"""``/api/create``: build a model from uploaded blobs, an existing model, or a Modelfile.

Creating is two steps. ``create_plan.py``'s :func:`plan_create` checks everything a client can get
wrong and raises a 4xx before any byte of the response is sent. :func:`run_create` then writes the
new layers and, last, the manifest, yielding Ollama's progress events; a failure before the
manifest leaves no model behind (unreferenced small blobs are harmless and shared by content).
"""
from __future__ import annotations

import json
import queue
import tempfile
import threading
from collections.abc import Callable, Generator, Iterator
from pathlib import Path
from typing import Any, TypeVar

from ...convert import convert_model_dir
from ...digests import Digest
from ...engine.quantize import (
    NativeQuantize,
    quantize_gguf,
)
from ...errors import BadRequest, BlobNotFound, Cancelled
from ...gguf_info import GGUFInfo, format_parameter_size, read_gguf
from ...manifest import (
    CONFIG_MEDIA_TYPE,
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
    config_document,
)
from ...option_bounds import OptionLimits
from ..access.ownership import Caller
from .adapters import check_adapter
from .catalog import Catalog
from .create_plan import CreatePlan, is_projector_file, plan_create, weights_info
from .peft import convert_peft

Event = dict[str, Any]


class ModelCreator:
    """``/api/create``: the catalogue it writes into, the bounds of stored parameters, and
    llama.cpp's quantizer (which runs in a runner process)."""

    def __init__(self, catalog: Catalog, limits: OptionLimits, *,
                 native_quantize: NativeQuantize | None = None) -> None:
        self.catalog = catalog
        self.limits = limits
        self.native_quantize = native_quantize

    def plan(self, request: dict[str, Any], caller: Caller) -> CreatePlan:
        """Check everything a client can get wrong (a 4xx before any byte of the response)."""
        return plan_create(self.catalog, request, self.limits, caller=caller)

    def run(self, plan: CreatePlan) -> Iterator[Event]:
        """Write the layers, then the manifest, yielding Ollama's progress."""
        return run_create(self.catalog, plan, native_quantize=self.native_quantize)


def run_create(catalog: Catalog, plan: CreatePlan, *,
               native_quantize: NativeQuantize | None = None) -> Iterator[Event]:
    """Write the new model's layers, then its manifest; yields Ollama's status events.

    The model blobs this create writes (converted or quantized weights) are removed again when it
    fails or is abandoned, and an intermediate one (F16 before quantizing) once it succeeds; shared
    blobs survive, as :meth:`Catalog.prune` keeps whatever a manifest references.
    """
    created: set[Digest] = set()
    try:
        yield from _run_create(catalog, plan, created, native_quantize)
    except BaseException:
        catalog.prune(created)
        raise


def _run_create(catalog: Catalog, plan: CreatePlan, created: set[Digest],
                native_quantize: NativeQuantize | None) -> Iterator[Event]:
    blobs = catalog.blobs
    layers: list[Layer] = []
    replaced: set[str] = set()
    model_info: GGUFInfo | None = None

    def add_blob(media_type: str, digest: Digest, size: int) -> Iterator[Event]:
        yield {"status": f"using existing layer {digest}"}
        layers.append(Layer(media_type, digest, size))

    if plan.source_files:
        yield from _convert(catalog, plan, layers, created)
        replaced.add(MEDIA_MODEL)
    for file_name, digest in plan.gguf_files:
        yield {"status": "parsing GGUF"}
        info = catalog.gguf_info(digest)
        media = MEDIA_PROJECTOR if is_projector_file(catalog, file_name, digest) else MEDIA_MODEL
        if media == MEDIA_MODEL:
            model_info = info
        replaced.add(media)
        yield from add_blob(media, digest, blobs.size(digest) or 0)
    if plan.adapters or plan.peft_adapter or MEDIA_MODEL in replaced:  # new weights: old adapters may not fit
        replaced.add(MEDIA_ADAPTER)
    converted = next((x for x in layers if x.media_type == MEDIA_MODEL), None) if plan.source_files else None
    for file_name, digest in plan.adapters:
        if converted is not None:  # weights this create converted: only now can the adapter be checked
            check_adapter(catalog.gguf_info(digest), catalog.gguf_info(converted.digest), file_name)
        yield from add_blob(MEDIA_ADAPTER, digest, blobs.size(digest) or 0)
    if plan.peft_adapter:
        base = catalog.gguf_info(converted.digest) if converted is not None else weights_info(catalog, plan)
        layers.append((yield from convert_peft(catalog, plan.peft_adapter, base, created)))
    if plan.quantize:
        if native_quantize is None:
            raise BadRequest("quantize is not available on this server")
        yield from _quantize(catalog, plan, layers, created, native_quantize)
        replaced.add(MEDIA_MODEL)  # the base model's unquantized weights are not kept

    def add_text(media_type: str, data: bytes) -> Iterator[Event]:
        digest = Digest.of_bytes(data)
        if blobs.exists(digest):
            yield {"status": f"using existing layer {digest}"}
        else:
            blobs.put_bytes(data, digest)
            yield {"status": f"creating new layer {digest}"}
        layers.append(Layer(media_type, digest, len(data)))

    if plan.template is not None:
        replaced.add(MEDIA_TEMPLATE)
        yield from add_text(MEDIA_TEMPLATE, plan.template.encode())
    if plan.system is not None:
        replaced.add(MEDIA_SYSTEM)
        yield from add_text(MEDIA_SYSTEM, plan.system.encode())
    if plan.licenses is not None:
        replaced.add(MEDIA_LICENSE)
        for text in plan.licenses:
            yield from add_text(MEDIA_LICENSE, text.encode())
    if plan.params:
        yield from add_text(MEDIA_PARAMS, json.dumps(plan.params, separators=(",", ":")).encode())
    replaced.add(MEDIA_PARAMS)
    if plan.messages is not None:
        replaced.add(MEDIA_MESSAGES)
        yield from add_text(MEDIA_MESSAGES, json.dumps(plan.messages, separators=(",", ":")).encode())

    kept = [layer for layer in plan.base_layers if layer.media_type not in replaced]
    all_layers = _ordered(kept + layers)
    config = _config(catalog, plan, all_layers, model_info)
    config_digest = Digest.of_bytes(config)
    if not blobs.exists(config_digest):
        blobs.put_bytes(config, config_digest)
    manifest = Manifest(config=Layer(CONFIG_MEDIA_TYPE, config_digest, len(config)), layers=tuple(all_layers))
    missing = [d for d in manifest.blobs() if not blobs.exists(d)]
    if missing:  # a concurrent delete pruned a layer we use: never write a dangling manifest
        raise BlobNotFound(f"blob {missing[0]} disappeared during create; retry")
    yield {"status": "writing manifest"}
    catalog.manifests.put(plan.name, manifest.to_bytes())
    catalog.ownership.claim(plan.caller, plan.name)
    catalog.prune(created - set(manifest.blobs()))
    yield {"status": "success"}


_ORDER = [MEDIA_MODEL, MEDIA_PROJECTOR, MEDIA_ADAPTER, MEDIA_TEMPLATE, MEDIA_SYSTEM, MEDIA_LICENSE,
          MEDIA_PARAMS, MEDIA_MESSAGES]


def _ordered(layers: list[Layer]) -> list[Layer]:
    rank = {media: i for i, media in enumerate(_ORDER)}
    return sorted(layers, key=lambda layer: rank.get(layer.media_type, len(_ORDER)))


def _config(catalog: Catalog, plan: CreatePlan, layers: list[Layer], info: GGUFInfo | None) -> bytes:
    model_layer = next((layer for layer in layers if layer.media_type == MEDIA_MODEL), None)
    if info is None and model_layer is not None:
        info = catalog.gguf_info(model_layer.digest)
    if info is None:
        base = plan.base_config
        family = str(base.get("model_family", ""))
        families = base.get("model_families") or []
        model_type, file_type = str(base.get("model_type", "")), str(base.get("file_type", ""))
    else:
        family = info.architecture
        families = [family]
        if any(layer.media_type == MEDIA_PROJECTOR for layer in layers):
            families.append("clip")
        model_type, file_type = format_parameter_size(info.parameter_count), info.file_type
    return config_document(model_format="gguf", model_family=family, model_families=families,
                           model_type=model_type, file_type=file_type,
                           layer_digests=[layer.digest for layer in layers])


def _convert(catalog: Catalog, plan: CreatePlan, layers: list[Layer], created: set[Digest]) -> Iterator[Event]:
    """Safetensors (+ config and tokenizer files) to a GGUF model layer; the converter's own
    progress lines are passed on as status events while it runs."""
    yield {"status": "parsing model files"}
    paths = {name: catalog.blobs.local_path(digest) for name, digest in plan.source_files.items()}
    with tempfile.TemporaryDirectory(prefix="skyllama-convert-") as tmp:
        out = Path(tmp) / "model.gguf"
        yield {"status": "converting model"}
        yield from _with_progress(lambda say: convert_model_dir(paths, out, progress=say))
        info = read_gguf(out)
        digest = _put_new(catalog, out, created)
        size = catalog.blobs.size(digest) or 0
    catalog._gguf_cache[digest.hex] = info  # noqa: SLF001 - we just validated it
    yield {"status": f"creating new layer {digest}"}
    layers.append(Layer(MEDIA_MODEL, digest, size))


def _quantize(catalog: Catalog, plan: CreatePlan, layers: list[Layer], created: set[Digest],
              native: NativeQuantize) -> Iterator[Event]:
    """Replace the model layer with llama.cpp's quantisation of it (run in a runner process)."""

    index = next((i for i, layer in enumerate(layers) if layer.media_type == MEDIA_MODEL), None)
    if index is None:
        model_layer = next((layer for layer in plan.base_layers if layer.media_type == MEDIA_MODEL), None)
        if model_layer is None:
            raise BadRequest("nothing to quantize: the model has no weights")
        layers.append(model_layer)
        index = len(layers) - 1
    source = layers[index]
    with tempfile.TemporaryDirectory(prefix="skyllama-quantize-") as tmp:
        out = Path(tmp) / "model.gguf"
        yield from _with_progress(
            lambda say: quantize_gguf(catalog.blobs.local_path(source.digest), out, plan.quantize or "", native, say)
        )
        digest = _put_new(catalog, out, created)
    yield {"status": f"creating new layer {digest}"}
    layers[index] = Layer(MEDIA_MODEL, digest, catalog.blobs.size(digest) or 0)


def _put_new(catalog: Catalog, path: Path, created: set[Digest]) -> Digest:
    """Store ``path`` as a blob and note it in ``created`` (pruned later unless a manifest uses it)."""
    digest = catalog.blobs.put_file(path)
    created.add(digest)
    return digest


T = TypeVar("T")


def _with_progress(work: Callable[[Callable[[str], None]], T]) -> Generator[Event, None, T]:
    """Run ``work(say)`` in a thread, yielding each line it says as a status event.

    If the consumer stops listening (client gone), the next ``say`` raises and the work stops.
    """
    lines: queue.SimpleQueue[str | None] = queue.SimpleQueue()
    stop = threading.Event()
    outcome: dict[str, Any] = {}

    def say(text: str) -> None:
        if stop.is_set():
            raise Cancelled("create canceled")
        lines.put(text)

    def target() -> None:
        try:
            outcome["value"] = work(say)
        except BaseException as e:  # noqa: BLE001 - re-raised in the consumer's thread
            outcome["error"] = e
        finally:
            lines.put(None)

    thread = threading.Thread(target=target, name="skyllama-create-work", daemon=True)
    thread.start()
    try:
        while (text := lines.get()) is not None:
            yield {"status": text}
    finally:
        stop.set()
        thread.join()
    if "error" in outcome:
        raise outcome["error"]
    result: T = outcome["value"]
    return result
