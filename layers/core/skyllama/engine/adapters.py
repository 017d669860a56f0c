"""LoRA adapters on a llama.cpp context (``ADAPTER`` in a Modelfile, ``adapters`` in a create).

An adapter is loaded once per model (llama.cpp frees it with the model) and set on every context
that decodes with it: :class:`~.llama.LlamaModel`'s own and :class:`~.multiseq.MultiSeqModel`'s
shared one. Every adapter gets scale 1.0, as Ollama's runner applies them
(``ApplyLoraFromFile(ctx, path, 1.0, threads)``); llama.cpp multiplies that by the adapter's own
``adapter.lora.alpha`` / rank. The files were checked at create time (``services/models/adapters.py``),
so a failure here means a blob changed or a llama.cpp limit we do not know of.
"""

from __future__ import annotations

import ctypes
from collections.abc import Sequence
from typing import Any

import llama_cpp

from ..errors import RunnerFailed

SCALE = 1.0  # Ollama's scale for every adapter


def load_adapters(model: Any, paths: Sequence[str]) -> list[Any]:
    """Load each GGUF LoRA at ``paths`` for ``model`` (a ``llama_model_p``)."""
    adapters = []
    for path in paths:
        adapter = llama_cpp.llama_adapter_lora_init(model, path.encode("utf-8"))
        if not adapter:
            raise RunnerFailed(f"llama.cpp could not load the LoRA adapter {path.rsplit('/', 1)[-1]}")
        adapters.append(adapter)
    return adapters


def set_adapters(ctx: Any, adapters: Sequence[Any]) -> None:
    """Make ``ctx`` (a ``llama_context_p``) decode with ``adapters``, each at :data:`SCALE`."""
    if not adapters:
        return
    array = (llama_cpp.llama_adapter_lora_p_ctypes * len(adapters))(*adapters)
    scales = (ctypes.c_float * len(adapters))(*([SCALE] * len(adapters)))
    if llama_cpp.llama_set_adapters_lora(ctx, array, len(adapters), scales):
        raise RunnerFailed("llama.cpp could not apply the LoRA adapters")
