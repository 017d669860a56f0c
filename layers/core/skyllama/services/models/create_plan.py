"""The first step of ``/api/create``: check everything a client can get wrong, before any byte of
the response is sent.

:func:`plan_create` resolves the name, the digests, the file names, that blobs exist and that GGUF
headers are sound, and what would only fail later (T-38): a TEMPLATE that does not parse, adapters
or projectors the engine cannot apply, more than one model GGUF, parameters outside their bounds
(:mod:`skyllama.option_bounds`), the base model's included. The result is a :class:`CreatePlan`
that ``create.py`` carries out.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ...digests import Digest
from ...engine.quantize import already_quantized, source_file_type, supported_quantizations
from ...errors import BadRequest, ModelNotFound
from ...filenames import validate_file_name
from ...gguf_info import GGUFInfo
from ...manifest import MEDIA_MODEL, Layer
from ...modelfile import parse_modelfile
from ...names import ModelName
from ...option_bounds import OptionLimits
from ...options import validate_parameters, validate_stored_parameters
from ...templates.errors import TemplateError
from ...templates.gotemplate import parse
from ..access.ownership import Caller
from .adapters import adapter_digests, check_adapter
from .catalog import Catalog
from .peft import check_peft
from .projectors import check_projector, is_projector

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
    source = next((d for name, d in plan.gguf_files if not is_projector_file(catalog, name, d)), None)
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
    projectors = [(n, d) for n, d in plan.gguf_files if is_projector_file(catalog, n, d)]
    if not projectors:
        return
    weights = next((d for n, d in plan.gguf_files if not is_projector_file(catalog, n, d)), None)
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
    base = weights_info(catalog, plan) if plan.adapters or plan.peft_adapter else None
    for name, digest in plan.adapters:
        check_adapter(catalog.gguf_info(digest), base, name)
    if plan.peft_adapter:
        check_peft(catalog, plan.peft_adapter, base, weights_later=False)


def weights_info(catalog: Catalog, plan: CreatePlan) -> GGUFInfo | None:
    """The header of the model GGUF the new model will run: uploaded in ``files``, else the base's."""
    weights = next((d for name, d in plan.gguf_files if not is_projector_file(catalog, name, d)), None)
    if weights is None:
        layer = next((x for x in plan.base_layers if x.media_type == MEDIA_MODEL), None)
        weights = layer.digest if layer else None
    return catalog.gguf_info(weights) if weights else None


def is_projector_file(catalog: Catalog, file_name: str, digest: Digest) -> bool:
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
    weights = [n for n, d in plan.gguf_files if not is_projector_file(catalog, n, d)]
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
