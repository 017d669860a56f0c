"""An in-process job queue for the embedded server.

With a ``handler`` the jobs run on a background thread, one at a time, in order; without one they
wait in the queue for :meth:`LocalJobQueue.receive` (tests, or a caller that runs them itself).
Jobs go through JSON like SQS messages do, so a job that would not survive SQS fails here too.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
from collections.abc import Callable
from typing import Any

from ...ports import JobQueue, encode_job

log = logging.getLogger(__name__)

class LocalJobQueue(JobQueue):
    """Jobs in a ``queue.Queue``, run by ``handler`` on one daemon thread when given."""

    def __init__(self, handler: Callable[[dict[str, Any]], None] | None = None) -> None:
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._handler = handler
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def send(self, job: dict[str, Any]) -> None:
        self._queue.put(encode_job(job))
        if self._handler is not None:
            with self._lock:
                if self._thread is None:
                    self._thread = threading.Thread(target=self._run, name="skyllama-jobs", daemon=True)
                    self._thread.start()

    def _run(self) -> None:
        assert self._handler is not None
        while (body := self._queue.get()) is not None:
            try:
                self._handler(json.loads(body))
            except Exception:  # one failed job must not stop the others
                log.exception("job failed")
            finally:
                self._queue.task_done()
        self._queue.task_done()

    def receive(self, max_jobs: int = 10, wait_seconds: float = 0.0) -> list[dict[str, Any]]:
        """Take up to ``max_jobs`` queued jobs (only without a handler)."""
        if self._handler is not None:
            raise RuntimeError("jobs are run by the handler")
        jobs: list[dict[str, Any]] = []
        try:
            body = self._queue.get(timeout=wait_seconds) if wait_seconds > 0 else self._queue.get_nowait()
            while body is not None:
                jobs.append(json.loads(body))
                if len(jobs) >= max_jobs:
                    break
                body = self._queue.get_nowait()
        except queue.Empty:
            pass
        return jobs

    def join(self) -> None:
        """Wait until every job sent so far has run (with a handler)."""
        self._queue.join()

    def close(self) -> None:
        """Stop the worker thread after the jobs already queued."""
        with self._lock:
            if self._thread is not None:
                self._queue.put(None)
                self._thread.join()
                self._thread = None
