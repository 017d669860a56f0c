"""One runner child process seen from the server: start it, call it, watch it, end it.

Every call has a deadline (``RunnerTimeouts``): loading, the first item of a generation (prompt
evaluation), each later item (a token), anything else. One thread per process reads the socket
and, between reads, checks the deadlines and forwards cancellations: a call past its deadline,
or a cancelled call that does not end within the grace period, means the runner is stuck in
native code, so the process is killed. When the process ends, however it ends (abort, segfault,
OOM kill, our own kill), every call in flight fails with a :class:`RunnerFailed` that names the
model and the cause; whoever owns the runner learns it through ``on_exit``.
"""

from __future__ import annotations

import logging
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any

from ...errors import RunnerFailed
from . import wire

log = logging.getLogger(__name__)

_POLL = 0.05  # seconds between deadline checks: how soon a cancel reaches the child
_END = object()


@dataclass(frozen=True)
class RunnerTimeouts:
    """Seconds a runner may take before it counts as hung and is killed."""

    load: float = 300.0  # OLLAMA_LOAD_TIMEOUT
    prompt: float = 600.0  # to the first token: prompt evaluation of a long context on a CPU
    token: float = 60.0  # between two tokens
    call: float = 60.0  # tokenize, detokenize, close
    cancel_grace: float = 5.0  # a cancelled call must end within this


@dataclass(eq=False)
class Call:
    """One request in flight on the runner; replies land in ``replies``, or go to ``sink`` (called
    on the reader thread) when one is given."""

    id: int
    op: str
    deadline: float
    step: float  # the deadline after each reply
    cancel: threading.Event | None = None
    replies: queue.SimpleQueue[Any] = field(default_factory=queue.SimpleQueue)
    sink: Callable[[Any], None] | None = None
    ended: threading.Event = field(default_factory=threading.Event)  # the final reply arrived (or the runner died)
    cancelled_at: float | None = None
    finished: bool = False

    def put(self, reply: Any) -> None:
        if self.sink is not None:
            self.sink(reply)
        else:
            self.replies.put(reply)

    def get(self) -> wire.Message:
        """The next reply (blocking); a dead runner's :class:`RunnerFailed` is raised here."""
        reply = self.replies.get()
        if isinstance(reply, BaseException):
            raise reply
        message: wire.Message = reply
        return message


class RunnerProcess:
    """A child process running ``skyllama.engine.runner.child`` and the calls in flight on it."""

    def __init__(self, *, env: dict[str, str] | None = None) -> None:
        parent_end, child_end = socket.socketpair()
        try:
            self.popen = subprocess.Popen(
                [sys.executable, "-m", "skyllama.engine.runner.child", str(child_end.fileno())],
                pass_fds=(child_end.fileno(),), stdin=subprocess.DEVNULL, env=env,
            )
        finally:
            child_end.close()
        self.pid = self.popen.pid
        self.conn = Connection(parent_end.detach())
        self.label = "runner"  # the model's name once loaded: error messages name it
        self.timeouts = RunnerTimeouts()
        self.gpu = False
        self.on_exit: list[Callable[[RunnerProcess], None]] = []
        self._calls: dict[int, Call] = {}
        self._next_id = 1
        self._lock = threading.Lock()
        self._ready = threading.Event()
        self._started = time.monotonic()
        self._dead_reason: str | None = None
        self._kill_reason: str | None = None
        self._closing = False
        self._reader = threading.Thread(target=self._read, name=f"skyllama-runner-{self.pid}", daemon=True)
        self._reader.start()

    # -- state ------------------------------------------------------------------------------------

    @property
    def alive(self) -> bool:
        return self._dead_reason is None

    def wait_ready(self, timeout: float) -> None:
        """Block until the child has imported llama.cpp (or raise if it died or took too long)."""
        if not self._ready.wait(timeout) and self.alive:
            self.kill(f"did not start within {timeout:g} s")
            self._reader.join(timeout=5)
        if not self.alive:
            raise RunnerFailed(self._failure())

    # -- calls ------------------------------------------------------------------------------------

    def start(self, op: str, *, timeout: float, step: float | None = None, cancel: threading.Event | None = None,
              sink: Callable[[Any], None] | None = None, **payload: Any) -> Call:
        """Send a request; its replies arrive on the returned call (or go to ``sink``)."""
        with self._lock:
            if not self.alive:
                raise RunnerFailed(self._failure())
            call = Call(self._next_id, op, time.monotonic() + timeout, step if step is not None else timeout, cancel,
                        sink=sink)
            self._next_id += 1
            self._calls[call.id] = call
            try:
                wire.send(self.conn, {"op": op, "id": call.id, **payload})
            except OSError:
                del self._calls[call.id]
                raise RunnerFailed(self._failure()) from None
        return call

    def request(self, op: str, *, timeout: float | None = None, **payload: Any) -> Any:
        """A call with one answer: its ``ok`` value (and a raw frame for vectors)."""
        call = self.start(op, timeout=timeout or self.timeouts.call, **payload)
        reply = call.get()
        if "error" in reply:
            raise wire.error_from_wire(reply["error"])
        return reply

    def abandon(self, call: Call) -> None:
        """The caller stops reading: ask the child to stop and wait until it has (the watchdog
        kills it after the cancel grace), so the slot is free in the child when it is free here."""
        with self._lock:
            if call.finished or call.id not in self._calls:
                return
            if call.cancelled_at is None:
                self._send_cancel(call)
        call.ended.wait()

    def _send_cancel(self, call: Call) -> None:
        call.cancelled_at = time.monotonic()
        try:
            wire.send(self.conn, {"op": "cancel", "target": call.id})
        except OSError:
            pass  # the reader notices the dead socket

    # -- the reader thread ------------------------------------------------------------------------

    def _read(self) -> None:
        try:
            while True:
                if self.conn.poll(_POLL):
                    message = wire.receive(self.conn)
                    blob = self.conn.recv_bytes() if isinstance(message.get("ok"), dict) \
                        and "vectors" in message["ok"] else None
                    self._deliver(message, blob)
                self._watch()
        except (EOFError, OSError, ValueError):
            pass
        self._died()

    def _deliver(self, message: wire.Message, blob: bytes | None) -> None:
        if "ready" in message:
            self.gpu = bool(message.get("gpu"))
            self._ready.set()
            return
        with self._lock:
            call = self._calls.get(int(message.get("id") or 0))
            if call is None:
                return
            final = "item" not in message
            if final:
                call.finished = True
                del self._calls[call.id]
            else:
                call.deadline = time.monotonic() + call.step
        if blob is not None:
            message = {**message, "blob": blob}
        call.put(message)
        if final:
            call.ended.set()

    def _watch(self) -> None:
        now = time.monotonic()
        overdue: Call | None = None
        with self._lock:
            if not self._ready.is_set() and now - self._started > self.timeouts.load:
                self._kill_locked(f"did not start within {self.timeouts.load:g} s")
                return
            for call in self._calls.values():
                if call.cancel is not None and call.cancel.is_set() and call.cancelled_at is None:
                    self._send_cancel(call)
                limit = call.deadline
                if call.cancelled_at is not None:
                    limit = min(limit, call.cancelled_at + self.timeouts.cancel_grace)
                if now > limit:
                    overdue = call
                    break
            if overdue is not None:
                what = "to stop after a cancel" if overdue.cancelled_at is not None and \
                    now > overdue.cancelled_at + self.timeouts.cancel_grace else f"to answer {overdue.op}"
                self._kill_locked(f"stopped responding (waited too long {what})")

    def _died(self) -> None:
        try:
            code = self.popen.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            code = self.popen.wait()
        with self._lock:
            self._dead_reason = self._kill_reason or _exit_text(code)
            calls, self._calls = list(self._calls.values()), {}
        if not self._closing:
            log.warning("runner %d for %s ended: %s", self.pid, self.label, self._dead_reason)
        error = RunnerFailed(self._failure())
        for call in calls:
            call.finished = True
            call.put(error)
            call.ended.set()
        self.conn.close()
        self._ready.set()
        for callback in list(self.on_exit):
            try:
                callback(self)
            except Exception:  # noqa: BLE001 - one observer must not stop the others
                log.exception("runner exit callback failed")

    # -- ending -----------------------------------------------------------------------------------

    def kill(self, reason: str) -> None:
        with self._lock:
            self._kill_locked(reason)

    def _kill_locked(self, reason: str) -> None:
        if self._kill_reason is None and self._dead_reason is None:
            self._kill_reason = reason
            log.warning("killing runner %d for %s: %s", self.pid, self.label, reason)
            try:
                os.kill(self.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def close(self) -> None:
        """Ask the child to free its model and exit; kill it if it does not within the call timeout."""
        self._closing = True
        if self.alive:
            try:
                self.request("close", timeout=self.timeouts.call)
            except RunnerFailed:
                pass
        try:
            self.popen.wait(timeout=self.timeouts.call)
        except subprocess.TimeoutExpired:
            self.kill("did not exit after close")
        self._reader.join(timeout=self.timeouts.call)

    def _failure(self) -> str:
        return f'llama runner process for "{self.label}" has terminated: {self._dead_reason or "unknown"}'


def _exit_text(code: int) -> str:
    if code < 0:
        try:
            return f"signal: {signal.Signals(-code).name}"
        except ValueError:
            return f"signal: {-code}"
    return f"exit status {code}"
