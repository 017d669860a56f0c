"""``/api/create``: build a model from uploaded blobs, an existing model, or a Modelfile.

Creating is two steps. :func:`plan_create` checks everything a client can get wrong (name,
digests, file names, that blobs exist and GGUF headers are sound) and raises a 4xx before any
byte of the response is sent. That includes what would only fail later (T-38): a TEMPLATE that
does not parse, adapters the engine cannot apply, more than one model GGUF, and parameters outside
their bounds (:mod:`skyllama.option_bounds`), the base model's included. :func:`run_create` then
writes the new layers and, last, the manifest, yielding Ollama's progress events; a failure before
the manifest leaves no model behind (unreferenced small blobs are harmless and shared by content).
"""

from __future__ import annotations

import json
import queue
import tempfile
import threading
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from ...convert import convert_model_dir
from ...digests import Digest
from ...engine.quantize import (
    NativeQuantize,
    already_quantized,
    quantize_gguf,
    source_file_type,
    supported_quantizations,
)
from ...errors import BadRequest, BlobNotFound, Cancelled, ModelNotFound
from ...filenames import validate_file_name
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
from ...modelfile import parse_modelfile
from ...names import ModelName
from ...option_bounds import OptionLimits
from ...options import validate_parameters, validate_stored_parameters
from ...templates.errors import TemplateError
from ...templates.gotemplate import parse
from ..access.ownership import Caller
from .adapters import adapter_digests, check_adapter
from .catalog import Catalog
from .peft import check_peft, convert_peft
from .projectors import check_projector, is_projector

Event = dict[str, Any]
MAX_FILES = 256
ROLES = {"system", "user", "assistant", "tool"}


@dataclass
class CreatePlan:
    """Everything :func:`run_create` needs, already validated."""

    name: ModelName
    caller: Caller  # who creates it: checked against the name, recorded as its owner
    base_layers: list[Layer] = field(default_factory=list)  # layers kept from `from`
    gguf_files: list[tuple[str, Digest]] = field(default_factory=list)
    source_files: dict[str, Digest] = field(default_factory=dict)  # safetensors & co, to convert
    template: str | None = None
    system: str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    messages: list[dict[str, Any]] | None = None
    licenses: list[str] | None = None
    quantize: str | None = None
    base_config: dict[str, Any] = field(default_factory=dict)
    adapters: list[tuple[str, Digest]] = field(default_factory=list)  # LoRA GGUFs (services/models/adapters.py)
    peft_adapter: dict[str, Digest] = field(default_factory=dict)  # a PEFT adapter's files, to convert (peft.py)


def _looks_like_path(value: str) -> bool:
    return value.startswith((".", "/", "~")) or "\\" in value or value.lower().endswith((".gguf", ".bin"))


def _blob_ref(value: str) -> Digest | None:
    text = value[1:] if value.startswith("@") else value
    if text.startswith(("sha256:", "sha256-")):
        return Digest.parse(text)
    return None


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


def plan_create(catalog: Catalog, request: dict[str, Any], limits: OptionLimits, *, caller: Caller) -> CreatePlan:
    """Validate a create request (JSON or Modelfile form) for ``caller`` and resolve what it refers to.

    ``limits`` (from the server's settings) bound the stored parameters.
    """
    if request.get("path") and not request.get("modelfile"):
        raise BadRequest("the 'path' field is not supported: upload files as blobs and name them in 'files'")
    if isinstance(request.get("modelfile"), str) and request["modelfile"].strip():
        from_modelfile = parse_modelfile(request["modelfile"])
        request = {**from_modelfile, **{k: v for k, v in request.items() if v is not None and k != "modelfile"}}
    name_text = request.get("model") or request.get("name")
    if not isinstance(name_text, str):
        raise BadRequest("missing model name")
    plan = CreatePlan(name=ModelName.parse(name_text), caller=caller)
    catalog.ownership.check_write(caller, plan.name)
    request_params = validate_parameters(request.get("parameters"), limits)
    plan.messages = _validate_messages(request.get("messages"))
    plan.licenses = _validate_license(request.get("license"))

    files = request.get("files")
    source = request.get("from")
    if not files and not source:
        raise BadRequest("neither 'from' or 'files' was specified")
    if source is not None and not isinstance(source, str):
        raise BadRequest("'from' must be a string")
    if source:
        digest = _blob_ref(source)
        if digest is not None:
            files = {**(files or {}), "model.gguf": str(digest)}
        elif _looks_like_path(source):
            raise BadRequest(f"'from' {source!r} names a file: upload it as a blob first and use 'files'")
        else:
            try:
                base = catalog.get(source, caller)
            except ModelNotFound:
                raise BadRequest(f"base model '{source}' not found") from None
            plan.base_layers = list(base.manifest.layers)
            plan.base_config = base.config
            plan.params = dict(base.params)
    for i, value in enumerate(request.get("from_more") or []):  # more FROM lines: blobs (a projector)
        digest = _blob_ref(value) if isinstance(value, str) else None
        if digest is None:
            raise BadRequest(f"a second FROM {str(value)[:80]!r} must name a blob (@sha256:<digest>)")
        files = {**(files or {}), f"model-{i + 1}.gguf": str(digest)}
    if files:
        _plan_files(catalog, plan, files)
    _check_projectors(catalog, plan)
    plan.adapters, plan.peft_adapter = adapter_digests(request, lambda digest: _existing_blob(catalog, digest, caller))
    _check_adapters(catalog, plan)
    for key in ("template", "system"):
        value = request.get(key)
        if value is not None and not isinstance(value, str):
            raise BadRequest(f"'{key}' must be a string")
        setattr(plan, key, value)
    if plan.template:
        _check_template(plan.template)
    plan.params.update(request_params)
    # What the model will store: a base model's parameters (an older release may have written
    # anything) are held to the same bounds, unless this request replaces them.
    plan.params = validate_stored_parameters(plan.params, limits)
    quantize = request.get("quantize") or request.get("quantization")
    if quantize is not None:
        if not isinstance(quantize, str):
            raise BadRequest("'quantize' must be a string")
        plan.quantize = quantize
        _check_quantize(catalog, plan)
    return plan


def _check_template(template: str) -> None:
    """A TEMPLATE layer is a Go template: one that does not parse would fail every request.
    Ollama's words (create.go's setTemplate): ``template error: template: :1: unclosed action``."""
    try:
        parse(template)
    except TemplateError as e:
        raise BadRequest(f"template error: {e.message}") from None


def _check_quantize(catalog: Catalog, plan: CreatePlan) -> None:
    """An unknown level, a model without weights or an already-quantized source is a 400 up front."""
    level = (plan.quantize or "").strip().upper()
    if level not in supported_quantizations():
        raise BadRequest(f"unsupported quantization {str(plan.quantize)[:40]!r}; "
                         f"supported: {', '.join(supported_quantizations())}")
    if plan.source_files:
        return  # the converter writes F16
    source = next((d for name, d in plan.gguf_files if not _is_projector(catalog, name, d)), None)
    if source is None:
        layer = next((x for x in plan.base_layers if x.media_type == MEDIA_MODEL), None)
        if layer is None:
            raise BadRequest("nothing to quantize: the model has no weights")
        source = layer.digest
    file_type = source_file_type(catalog.blobs.local_path(source))
    if file_type not in ("F32", "F16", "BF16"):
        raise already_quantized(file_type)


def _check_projectors(catalog: Catalog, plan: CreatePlan) -> None:
    """Each projector must fit the text model it will feed (a 400 now, not a failed load)."""
    projectors = [(n, d) for n, d in plan.gguf_files if _is_projector(catalog, n, d)]
    if not projectors:
        return
    weights = next((d for n, d in plan.gguf_files if not _is_projector(catalog, n, d)), None)
    if weights is None:
        layer = next((x for x in plan.base_layers if x.media_type == MEDIA_MODEL), None)
        weights = layer.digest if layer else None
    base = catalog.gguf_info(weights) if weights else None
    for name, digest in projectors:
        check_projector(catalog.gguf_info(digest), base, name)


def _check_adapters(catalog: Catalog, plan: CreatePlan) -> None:
    """Each adapter must fit the weights it will be applied to (a 400 now, not a failed load)."""
    if plan.source_files:  # converted weights: adapters are checked against them once they exist
        if plan.peft_adapter:
            check_peft(catalog, plan.peft_adapter, None, weights_later=True)
        return
    base = _weights_info(catalog, plan) if plan.adapters or plan.peft_adapter else None
    for name, digest in plan.adapters:
        check_adapter(catalog.gguf_info(digest), base, name)
    if plan.peft_adapter:
        check_peft(catalog, plan.peft_adapter, base, weights_later=False)


def _weights_info(catalog: Catalog, plan: CreatePlan) -> GGUFInfo | None:
    """The header of the model GGUF the new model will run: uploaded in ``files``, else the base's."""
    weights = next((d for name, d in plan.gguf_files if not _is_projector(catalog, name, d)), None)
    if weights is None:
        layer = next((x for x in plan.base_layers if x.media_type == MEDIA_MODEL), None)
        weights = layer.digest if layer else None
    return catalog.gguf_info(weights) if weights else None


def _is_projector(catalog: Catalog, file_name: str, digest: Digest) -> bool:
    return is_projector(catalog.gguf_info(digest)) or "mmproj" in file_name.lower()


def _existing_blob(catalog: Catalog, digest_text: object, caller: Caller) -> Digest:
    digest = Digest.parse(digest_text)
    if not catalog.blobs.exists(digest) or not catalog.ownership.blob_visible(caller, digest):
        raise BadRequest(f"blob {digest} not found: upload it with POST /api/blobs/{digest} first")
    return digest


def _plan_files(catalog: Catalog, plan: CreatePlan, files: object) -> None:
    if not isinstance(files, dict) or not files:
        raise BadRequest("'files' must map file names to blob digests")
    if len(files) > MAX_FILES:
        raise BadRequest("too many files")
    for file_name, digest_text in files.items():
        validate_file_name(file_name)
        digest = _existing_blob(catalog, digest_text, plan.caller)
        if file_name.lower().endswith(".gguf") or _blob_is_gguf(catalog, digest):
            plan.gguf_files.append((file_name, digest))
        else:
            plan.source_files[file_name] = digest
    if plan.gguf_files and plan.source_files and not all(
        n.lower().endswith((".md", ".txt", "license")) for n in plan.source_files
    ):
        raise BadRequest("mixing GGUF and safetensors files in one create is not supported")
    for _file_name, digest in plan.gguf_files:
        catalog.gguf_info(digest)  # validates the header now, before anything is written
    weights = [n for n, d in plan.gguf_files if not _is_projector(catalog, n, d)]
    if len(weights) > 1:  # only one model layer is ever loaded: the others would be dropped silently
        raise BadRequest(f"more than one model GGUF in 'files' ({', '.join(sorted(weights)[:4])}): "
                         "split GGUFs are not supported; merge them first")
    if plan.source_files:
        _check_source_files(catalog, plan.source_files)


def _check_source_files(catalog: Catalog, files: dict[str, Digest]) -> None:
    """The converter's checks on headers and side files, so a bad upload is a 400, not a stream error."""
    try:
        from ...convert import check_model_dir
    except ImportError:
        raise BadRequest("creating from safetensors is not available in this build") from None
    check_model_dir({name: catalog.blobs.local_path(digest) for name, digest in files.items()})


def _blob_is_gguf(catalog: Catalog, digest: Digest) -> bool:
    with catalog.blobs.open(digest) as f:
        return f.read(4) == b"GGUF"


def _validate_messages(raw: object) -> list[dict[str, Any]] | None:
    if raw is None:
        return None
    if not isinstance(raw, list):
        raise BadRequest("'messages' must be a list")
    messages = []
    for item in raw:
        if not isinstance(item, dict) or item.get("role") not in ROLES or not isinstance(item.get("content", ""), str):
            raise BadRequest("each message needs a role (system, user, assistant, tool) and string content")
        messages.append({"role": item["role"], "content": item.get("content", "")})
    return messages


def _validate_license(raw: object) -> list[str] | None:
    if raw is None:
        return None
    if isinstance(raw, str):
        return [raw]
    if isinstance(raw, list) and all(isinstance(x, str) for x in raw):
        return list(raw)
    raise BadRequest("'license' must be a string or a list of strings")


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
        media = MEDIA_PROJECTOR if _is_projector(catalog, file_name, digest) else MEDIA_MODEL
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
        base = catalog.gguf_info(converted.digest) if converted is not None else _weights_info(catalog, plan)
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
