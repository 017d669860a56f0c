"""Inference engines: llama.cpp (``engine.llama``, the only importer of ``llama_cpp``) and a fake.

Names are imported lazily so that the fake engine and the quantizer never pay for each other.
"""

from __future__ import annotations

from typing import Any

__all__ = ["EngineModel", "FakeEngine", "FakeModel", "Generated", "LlamaModel", "LoadSpec", "Sampling", "StopMatcher",
           "grammar_for_format", "load_llama"]

_HOMES = {"EngineModel": "base", "FakeEngine": "fake", "FakeModel": "fake", "Generated": "base", "LlamaModel": "llama",
          "LoadSpec": "base", "Sampling": "base", "StopMatcher": "base", "grammar_for_format": "grammar",
          "load_llama": "llama"}


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(name)
    from importlib import import_module

    return getattr(import_module(f"{__name__}.{_HOMES[name]}"), name)
