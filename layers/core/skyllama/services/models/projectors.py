"""Vision projectors at create time: a CLIP/mmproj GGUF stored as an
``application/vnd.ollama.image.projector`` layer (a second file in ``files``, or a second ``FROM``).

The bounded GGUF reader has already checked the header (``gguf_info.py``: counts, lengths, tensor
extents). Here the values llama.cpp's ``clip`` loader sizes its buffers from are held to sane
bounds, and the projector's output width to the text model's: ``mtmd_init_from_file`` refuses a
mismatch at every load, so it is a 400 now instead (T-38). converters write the text model's
width as ``clip.vision.projection_dim`` (``convert_hf_to_gguf.py``'s ``MmprojModel``).
"""

from __future__ import annotations

from ...errors import BadRequest
from ...gguf_info import GGUFInfo

# (key, low, high): what the clip loader allocates from; real models sit well inside.
_BOUNDS = (
    ("clip.vision.image_size", 1, 8192),
    ("clip.vision.patch_size", 1, 256),
    ("clip.vision.embedding_length", 1, 65536),
    ("clip.vision.feed_forward_length", 1, 262144),
    ("clip.vision.block_count", 1, 512),
    ("clip.vision.attention.head_count", 1, 1024),
    ("clip.vision.projection_dim", 1, 65536),
)


def is_projector(info: GGUFInfo) -> bool:
    return info.architecture == "clip" or info.metadata.get("general.type") in ("mmproj", "projector")


def check_projector(projector: GGUFInfo, base: GGUFInfo | None, name: str) -> None:
    """Raise :class:`BadRequest` unless ``projector`` can serve ``base``'s images."""
    label = f"projector {name[:80]!r}"
    meta = projector.metadata
    if meta.get("clip.has_vision_encoder") is not True:
        raise BadRequest(f"{label}: it has no vision encoder (clip.has_vision_encoder)")
    if not isinstance(meta.get("clip.projector_type", meta.get("clip.vision.projector_type")), str):
        raise BadRequest(f"{label}: clip.projector_type is missing")
    for key, low, high in _BOUNDS:
        value = meta.get(key)
        if value is not None and (not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high):
            raise BadRequest(f"{label}: {key} must be an integer between {low} and {high}")
    width = meta.get("clip.vision.projection_dim")
    text = base.embedding_length if base is not None else None
    if isinstance(width, int) and text is not None and width != text:
        raise BadRequest(f"{label}: mismatch between text model (n_embd = {text}) and mmproj (n_embd = {width})")


def projector_info(info: GGUFInfo) -> dict[str, object]:
    """``/api/show``'s ``projector_info``: the projector's keys, as ``model_info`` shows a model's."""
    return {k: v for k, v in info.model_info().items() if k != "general.parameter_count"}
