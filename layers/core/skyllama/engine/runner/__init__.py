"""Runner processes: each loaded model lives in a child process of its own, as Ollama's runners.

A native abort, segfault, OOM kill or hang in llama.cpp then costs only that runner's requests:
the server process never imports ``llama_cpp``. The parent side (``process.py``, ``remote.py``,
``pool.py``) speaks to the child (``child.py``) over a socket pair in JSON frames (``wire.py``), and
:class:`~skyllama.engine.runner.remote.RemoteModel` implements the same
:class:`~skyllama.engine.base.EngineModel` protocol as the in-process engines, so the scheduler
and the services do not change shape.
"""
