"""Starting runner processes, ahead of need: the loaders the scheduler uses.

A runner spends most of its start importing ``llama_cpp``. :class:`RunnerPool` keeps ``spares``
processes started and ready, so a model load takes a process that has already done that, and a
new spare starts in the background. Start the pool first thing (``skyllama serve``, the Lambda
inference module): the spare imports llama.cpp while the server is still importing its own code.

Runner processes follow the server's life: they die with it (``PR_SET_PDEATHSIG`` and the closed
socket), and on Lambda they are frozen and thawed with the execution environment, so a warm
instance finds its runners as it left them.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path

from ...errors import RunnerFailed
from ..base import LoadSpec
from .process import RunnerProcess, RunnerTimeouts
from .remote import RemoteModel

log = logging.getLogger(__name__)
SPARE_DELAY = 5.0  # seconds after a spare is taken before the next one starts


class RunnerPool:
    """Makes :class:`RemoteModel` objects, each in a process of its own (an ``engine.base.Engine``)."""

    batching = True

    def __init__(self, *, spares: int = 1, timeouts: RunnerTimeouts | None = None,
                 env: dict[str, str] | None = None) -> None:
        self.spares = max(0, spares)
        self.timeouts = timeouts or RunnerTimeouts()
        self.env = env
        self._idle: list[RunnerProcess] = []
        self._lock = threading.Lock()
        self._closed = False
        self.started = 0  # processes started (tests and benchmarks read it)
        self._top_up()

    def configure(self, timeouts: RunnerTimeouts, spares: int) -> None:
        """Apply settings read after the pool was started (it starts before settings are read)."""
        self.timeouts = timeouts
        self.spares = max(0, spares)

    # -- processes --------------------------------------------------------------------------------

    def _spawn(self) -> RunnerProcess:
        process = RunnerProcess(env=self.env)
        process.timeouts = self.timeouts
        self.started += 1
        return process

    def _top_up(self) -> None:
        with self._lock:
            self._idle = [p for p in self._idle if p.alive]
            while not self._closed and len(self._idle) < self.spares:
                self._idle.append(self._spawn())

    def take(self) -> RunnerProcess:
        """A started process (a spare if one is alive), ready for a load; a new spare follows."""
        with self._lock:
            while self._idle:
                process = self._idle.pop(0)
                if process.alive:
                    break
            else:
                process = self._spawn()
        process.timeouts = self.timeouts
        # The next spare starts a little later: starting it now would take CPU from the load that
        # just took this one (on a 2-vCPU Lambda that is most of a cold start's first token).
        timer = threading.Timer(SPARE_DELAY, self._top_up)
        timer.daemon = True
        timer.start()
        process.wait_ready(self.timeouts.load)
        return process

    # -- the scheduler's loaders ------------------------------------------------------------------

    def load(self, spec: LoadSpec) -> RemoteModel:
        """A plain model (one request at a time) in a new runner."""
        return self._load(spec, 0)

    def load_batched(self, spec: LoadSpec, n_seq: int) -> RemoteModel:
        """A batched model whose ``n_seq`` sequences decode together, in a new runner."""
        return self._load(spec, max(1, n_seq))

    def _load(self, spec: LoadSpec, n_seq: int) -> RemoteModel:
        process = self.take()
        try:
            return RemoteModel(process, spec, n_seq)
        except BaseException:
            if process.alive:
                process.close()
            raise

    def quantize(self, src: Path, dst: Path, ftype: int) -> None:
        """llama.cpp's quantizer in a runner of its own (a crafted model may crash it)."""
        process = self.take()
        try:
            process.label = "quantize"
            process.request("quantize", timeout=max(self.timeouts.load, 3600.0), src=str(src), dst=str(dst),
                            ftype=ftype)
        finally:
            process.close()

    def close(self) -> None:
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
        for process in idle:
            try:
                process.close()
            except RunnerFailed:
                pass
