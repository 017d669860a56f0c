"""Requests in flight per API key (``SKYLLAMA_MAX_CONCURRENT_PER_KEY``): one more is a 429."""

from __future__ import annotations

import threading


class KeyConcurrency:
    """Counts each key's requests in flight in this process; ``limit`` 0 means no limit."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._in_flight: dict[str, int] = {}
        self._lock = threading.Lock()

    def enter(self, key_id: str) -> bool:
        """Count one more request for ``key_id``; ``False`` (nothing counted) when at the limit."""
        with self._lock:
            count = self._in_flight.get(key_id, 0)
            if self.limit and count >= self.limit:
                return False
            self._in_flight[key_id] = count + 1
            return True

    def leave(self, key_id: str) -> None:
        with self._lock:
            count = self._in_flight.get(key_id, 0) - 1
            if count > 0:
                self._in_flight[key_id] = count
            else:
                self._in_flight.pop(key_id, None)

    def in_flight(self, key_id: str) -> int:
        with self._lock:
            return self._in_flight.get(key_id, 0)

    def __bool__(self) -> bool:
        """Whether anything is in flight (tests wait on it)."""
        with self._lock:
            return bool(self._in_flight)
