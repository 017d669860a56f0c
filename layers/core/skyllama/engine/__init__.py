"""Inference engines behind one seam (``base.py``: ``Engine``, ``EngineModel``, ``LoadSpec``).

- ``runner/``: the server's engine. Each model lives in a runner child process; the server
  process never imports ``llama_cpp``.
- ``llama.py``, ``multiseq.py``, ``quantize.quantize_native``: llama.cpp itself, imported only
  inside a runner process (``runner/child.py``).
- ``grammar.py``: JSON schemas to GBNF, in pure Python with stated bounds.
- ``fake.py``: a scripted engine for fast API tests.
"""
