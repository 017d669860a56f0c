"""LoRA adapters at create time: ``ADAPTER`` lines and ``adapters`` in ``/api/create``.

An adapter blob becomes an ``application/vnd.ollama.image.adapter`` layer, which the scheduler
hands to the engine (``LoadSpec.adapters``, ``engine/adapters.py``). Everything llama.cpp's
adapter loader (``llama-adapter.cpp``) would refuse is refused here first, as a 400, from the
bounded GGUF reader's view of the header: a mismatch found at load time would fail every request
to the model instead (T-38). The checks, in llama.cpp's words where it has them:

- ``general.type`` is ``adapter`` and ``adapter.type`` is ``lora``;
- ``general.architecture`` is the base model's;
- every tensor is ``<base tensor>.lora_a`` or ``.lora_b``, in pairs, of a tensor the base has;
- shapes: ``a`` is ``[n_in, r]``, ``b`` is ``[r, n_out]`` for a base ``[n_in, n_out]``
  (``token_embd`` is stored the other way round, as llama.cpp expects it).

A PEFT safetensors adapter in ``adapters`` (Ollama tells it by a ``.safetensors`` file name) is
converted to such a GGUF first (``services/models/peft.py``, ``convert/lora.py``).
"""

from __future__ import annotations

from collections.abc import Callable

from ...digests import Digest
from ...errors import BadRequest
from ...gguf_info import GGUFInfo, TensorInfo

_SUFFIXES = (".lora_a", ".lora_b")
MAX_FILES = 256
# LoRA tensors llama.cpp multiplies as given: a float type or a plain 8-bit one.
_TYPES = {"F32", "F16", "BF16", "Q8_0"}


def _blob_ref(value: str) -> Digest | None:
    text = value[1:] if value.startswith("@") else value
    return Digest.parse(text) if text.startswith(("sha256:", "sha256-")) else None


def adapter_digests(request: dict[str, object],
                    blob: Callable[[object], Digest]) -> tuple[list[tuple[str, Digest]], dict[str, Digest]]:
    """The adapters a create request names: GGUF LoRAs from ``adapters`` (file name to digest, as
    Ollama's JSON form) and Modelfile ``ADAPTER`` lines (``adapters_from``), which on the server can
    only be blob references: a path names a file on the client's machine; and the files of a PEFT
    adapter (file name to digest; empty if none): when ``adapters`` names a ``.safetensors``
    file, every file in it but a ``.gguf`` one is part of that adapter (its config, README, ...).
    ``blob`` resolves a digest (a 400 unless the blob exists and the caller may use it)."""
    named: list[tuple[str, Digest]] = []
    peft: dict[str, Digest] = {}
    raw = request.get("adapters")
    if raw is not None:
        if not isinstance(raw, dict) or not all(isinstance(k, str) for k in raw):
            raise BadRequest("'adapters' must map file names to blob digests")
        if len(raw) > MAX_FILES:
            raise BadRequest("too many files in 'adapters'")
        is_peft = any(name.endswith(".safetensors") for name in raw)
        for name, digest in raw.items():
            if is_peft and not name.lower().endswith(".gguf"):
                peft[name] = blob(digest)
            else:
                named.append((name, blob(digest)))
    lines = request.get("adapters_from") or []
    if not isinstance(lines, list):
        raise BadRequest("'adapters_from' must be a list")
    for value in lines:
        digest = _blob_ref(value) if isinstance(value, str) else None
        if digest is None:
            raise BadRequest(f"ADAPTER {str(value)[:80]!r} names a file: upload it as a blob first "
                             "and name it as ADAPTER @sha256:<digest> or in 'adapters'")
        named.append((f"adapter-{digest.hex[:12]}.gguf", blob(str(digest))))
    seen: set[str] = set()
    unique = []
    for name, digest in named:
        if digest.hex not in seen:
            seen.add(digest.hex)
            unique.append((name, digest))
    return unique, peft


def check_adapter(adapter: GGUFInfo, base: GGUFInfo | None, name: str) -> None:
    """Raise :class:`BadRequest` unless llama.cpp would apply ``adapter`` to ``base``."""
    label = f"adapter {name[:80]!r}"
    if base is None:
        raise BadRequest(f"{label}: the model has no weights to apply it to")
    kind = adapter.metadata.get("general.type")
    if kind != "adapter":
        raise BadRequest(f"{label}: expect general.type to be 'adapter', but got: {str(kind)[:40]}")
    if adapter.metadata.get("adapter.type") != "lora":
        raise BadRequest(f"{label}: only LoRA adapters are supported (adapter.type "
                         f"{str(adapter.metadata.get('adapter.type'))[:40]!r})")
    if adapter.architecture != base.architecture:
        raise BadRequest(f"{label}: model arch and LoRA arch mismatch "
                         f"({base.architecture[:40]} and {adapter.architecture[:40]})")
    pairs: dict[str, dict[str, TensorInfo]] = {}
    for tensor in adapter.tensors:
        suffix = next((s for s in _SUFFIXES if tensor.name.endswith(s)), None)
        if suffix is None:
            raise BadRequest(f"{label}: unexpected tensor {tensor.name[:80]!r} (not a .lora_a or .lora_b)")
        if tensor.type_name not in _TYPES or len(tensor.shape) != 2:
            raise BadRequest(f"{label}: tensor {tensor.name[:80]!r} must be a 2-D F32, F16, BF16 or Q8_0 matrix")
        pairs.setdefault(tensor.name.removesuffix(suffix), {})[suffix] = tensor
    if not pairs:
        raise BadRequest(f"{label}: it has no LoRA tensors")
    shapes = {t.name: t.shape for t in base.tensors}
    for target, pair in pairs.items():
        _check_pair(label, target, pair, shapes.get(target))


def _check_pair(label: str, target: str, pair: dict[str, TensorInfo], base: tuple[int, ...] | None) -> None:
    if len(pair) != 2:
        raise BadRequest(f"{label}: LoRA tensor pair for '{target[:80]}' is missing one component")
    if base is None:
        raise BadRequest(f"{label}: LoRA tensor '{target[:80]}' does not exist in base model")
    a, b = pair[".lora_a"].shape, pair[".lora_b"].shape
    if len(base) != 2:
        raise BadRequest(f"{label}: '{target[:80]}' is not a matrix in the base model")
    if target.startswith("token_embd."):  # llama.cpp: B is not transposed, A and B are swapped
        ok = base[0] == b[1] and base[1] == a[1]
    else:
        ok = base[0] == a[0] and base[1] == b[1] and a[1] == b[0]
    if not ok:
        raise BadRequest(f"{label}: tensor '{target[:80]}' has incorrect shape: base {list(base)}, "
                         f"lora_a {list(a)}, lora_b {list(b)}")
