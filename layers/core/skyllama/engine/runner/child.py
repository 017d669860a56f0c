"""The runner process: ``python -m skyllama.engine.runner.child FD`` hosts one model for the server.

It imports ``llama_cpp`` at once (a spare runner does that while the server is still starting),
reports ``ready``, then serves requests from the socket ``FD`` (``wire.py``) until told to close
or until the socket closes, which is how it learns that the server is gone. Generation and
embedding calls run in threads of their own so that a ``cancel`` can arrive while they compute;
a plain (single-sequence) model takes one such call at a time. The process also exits when its
parent is gone, even when stuck in native code.

``SKYLLAMA_RUNNER_FAULT`` injects faults for tests (``hang_after_tokens:N``, ``hang_in_prompt``,
``abort_after_tokens:N``, optionally ``@flag-file`` to fire once): a hang is a native ``pause()``,
an abort a native ``abort()``, the two ways llama.cpp itself fails.
"""

from __future__ import annotations

import ctypes
import os
import sys
import threading
import time
from collections.abc import Iterator
from multiprocessing.connection import Connection
from typing import Any

from ...errors import RunnerFailed
from ..base import EngineModel, Generated, TokenLogprob
from . import wire


def _die_with_parent() -> None:
    """Exit as soon as the server process is gone, even while another thread is in native code.

    ``PR_SET_PDEATHSIG`` would fire when the *thread* that started us exits (the server starts
    runners from worker threads), so a thread watches the parent instead; native calls release
    the GIL, so it runs however busy llama.cpp is.
    """
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(1)

    threading.Thread(target=watch, name="skyllama-parent-watch", daemon=True).start()


class _Faults:
    """Test-only fault injection, from ``SKYLLAMA_RUNNER_FAULT`` (``kind[:count][@flag-file]``).

    With ``@flag-file`` the fault fires once across processes: only while the file exists, and
    the runner that fires it removes it, so the restarted runner works.
    """

    def __init__(self, spec: str) -> None:
        spec, _, self.flag = spec.partition("@")
        kind, _, count = spec.partition(":")
        self.kind = kind
        self.count = int(count) if count.isdigit() else 0

    def _fire(self) -> bool:
        if not self.flag:
            return True
        try:
            os.unlink(self.flag)
        except FileNotFoundError:
            return False
        return True

    def before_token(self, produced: int) -> None:
        if not self.kind:
            return
        due = (self.kind == "hang_in_prompt" and produced == 0) or \
            (self.kind in ("hang_after_tokens", "abort_after_tokens") and produced == self.count)
        if not due or not self._fire():
            return
        libc = ctypes.CDLL(None)
        if self.kind == "abort_after_tokens":
            libc.abort()
        libc.pause()  # native and GIL-free: the runner stops answering, as a hung llama.cpp would


class Host:
    """The child's side of the protocol: one model, the calls running on it, one socket."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.model: EngineModel | None = None
        self.shared = False  # a batched model takes concurrent generations
        self._send_lock = threading.Lock()
        self._call_lock = threading.Lock()  # one call at a time on a plain model
        self._cancels: dict[int, threading.Event] = {}
        self._faults = _Faults(os.environ.get("SKYLLAMA_RUNNER_FAULT", ""))

    def send(self, message: wire.Message, blob: bytes | None = None) -> None:
        with self._send_lock:
            wire.send(self.conn, message, blob)

    def serve(self) -> None:
        while True:
            try:
                message = wire.receive(self.conn)
            except (EOFError, OSError):
                return  # the server closed the socket or died
            op = message.get("op")
            if op == "close":
                self._close()
                self.send({"id": message.get("id"), "ok": True})
                return
            if op == "cancel":
                self._cancel(int(message["target"]))
                continue
            if op in ("generate", "embed"):
                cancel = threading.Event()
                self._cancels[int(message["id"])] = cancel
                threading.Thread(target=self._run, args=(message, cancel), daemon=True).start()
                continue
            self._answer(message)

    # -- calls ------------------------------------------------------------------------------------

    def _answer(self, message: wire.Message) -> None:
        call_id = message.get("id")
        try:
            value = self._handle(message)
        except BaseException as e:  # noqa: BLE001 - reported to the server, the runner goes on
            self.send({"id": call_id, "error": wire.error_to_wire(e)})
            return
        self.send({"id": call_id, "ok": value})

    def _handle(self, message: wire.Message) -> Any:
        op = message["op"]
        if op == "load":
            return self._load(message)
        if op == "quantize":
            from ..quantize import quantize_native

            quantize_native(message["src"], message["dst"], int(message["ftype"]))
            return True
        model = self._require()
        if op == "tokenize":
            return [model.tokenize(text, add_special=message.get("add_special")) for text in message["texts"]]
        if op == "detokenize":
            return model.detokenize([int(t) for t in message["tokens"]])
        if op == "stats":  # the batched engine's counters (tests and benchmarks read them)
            counters = ("steps", "max_batch_seqs", "active", "reused_tokens", "refilled_tokens")
            return {k: getattr(model, k) for k in counters if hasattr(model, k)}
        raise RunnerFailed(f"unknown runner operation {op!r}")

    def _load(self, message: wire.Message) -> wire.Message:
        if self.model is not None:
            raise RunnerFailed("this runner already holds a model")
        spec = wire.spec_from_wire(message["spec"])
        n_seq = int(message.get("n_seq") or 0)
        if spec.projector:  # a vision model: one sequence, images through mtmd (engine/vision.py)
            from ..vision import VisionModel

            self.model = VisionModel(spec)
            return {"n_ctx": self.model.n_ctx, "memory": self.model.memory_bytes(), "n_vocab": self.model.n_vocab}
        if spec.embedding:
            from ..llama import LlamaModel

            self.model = LlamaModel(spec)
        else:  # one sequence or several: the engine with the prompt cache (multiseq.py)
            from ..multiseq import MultiSeqModel

            self.model = MultiSeqModel(spec, max(1, n_seq))
            self.shared = True
        vocab = getattr(self.model, "n_vocab", None)
        return {"n_ctx": self.model.n_ctx, "memory": self.model.memory_bytes(), "n_vocab": vocab}

    def _require(self) -> EngineModel:
        if self.model is None:
            raise RunnerFailed("no model is loaded in this runner")
        return self.model

    def _run(self, message: wire.Message, cancel: threading.Event) -> None:
        call_id = int(message["id"])
        lock = _NoLock() if self.shared else self._call_lock
        try:
            with lock:
                if message["op"] == "generate":
                    self._generate(call_id, message, cancel)
                else:
                    self._embed(call_id, message)
        except BaseException as e:  # noqa: BLE001 - reported to the server, the runner goes on
            self.send({"id": call_id, "error": wire.error_to_wire(e)})
        finally:
            self._cancels.pop(call_id, None)

    def _generate(self, call_id: int, message: wire.Message, cancel: threading.Event) -> None:
        model = self._require()
        if cancel.is_set():
            self.send({"id": call_id, "done": wire.generated_to_wire(Generated("cancel", [], 0, 0, 0, 0))})
            return
        items: Iterator[str | TokenLogprob | Generated] = model.generate(
            [int(t) for t in message["prompt"]], wire.sampling_from_wire(message["sampling"]),
            grammar=message.get("grammar"), cancel=cancel, logprobs=message.get("logprobs"),
            **wire.images_from_wire(message))
        produced = 0
        self._faults.before_token(produced)
        for item in items:
            if isinstance(item, Generated):
                self.send({"id": call_id, "done": wire.generated_to_wire(item)})
                return
            self.send({"id": call_id, "item": wire.item_to_wire(item)})
            if isinstance(item, str):
                produced += 1
                self._faults.before_token(produced)
        raise RunnerFailed("the generation ended without a result")

    def _embed(self, call_id: int, message: wire.Message) -> None:
        model = self._require()
        vectors, counts = model.embed_counted(list(message["texts"]), normalize=bool(message["normalize"]),
                                              truncate=bool(message.get("truncate", True)))
        shape, blob = wire.vectors_to_blob(vectors)
        self.send({"id": call_id, "ok": {"counts": counts, "vectors": shape}}, blob)

    def _cancel(self, target: int) -> None:
        event = self._cancels.get(target)
        if event is not None:
            event.set()
            interrupt = getattr(self.model, "interrupt", None)
            if interrupt is not None:
                interrupt()  # reaches llama.cpp inside prompt evaluation, not only between tokens

    def _close(self) -> None:
        model, self.model = self.model, None
        if model is not None:
            model.close()


class _NoLock:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


def main(argv: list[str]) -> int:
    _die_with_parent()
    conn = Connection(int(argv[1]))
    from ..llama import supports_gpu  # imports llama_cpp: the slow part of a runner's start

    host = Host(conn)
    host.send({"ready": os.getpid(), "gpu": supports_gpu()})
    host.serve()
    conn.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
