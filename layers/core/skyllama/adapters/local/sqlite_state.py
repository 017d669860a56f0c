"""The state store on SQLite: one table of ``(kind, key) -> JSON item`` with an optional expiry.

Schema changes go through numbered migrations recorded in ``_skyllama_migrations``.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from pathlib import Path
from typing import Any

from ...ports import Clock, StateStore

_MIGRATIONS: list[str] = [
    """CREATE TABLE items (
        kind TEXT NOT NULL,
        key TEXT NOT NULL,
        item TEXT NOT NULL,
        expires_at REAL,
        PRIMARY KEY (kind, key)
    )""",
]


class SqliteStateStore(StateStore):
    def __init__(self, path: Path | str, clock: Clock | None = None) -> None:
        self._clock = clock or Clock()
        self._lock = threading.Lock()
        if str(path) != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None, timeout=30)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA busy_timeout=30000")
        self._migrate()

    def _migrate(self) -> None:
        with self._lock:
            self._db.execute("CREATE TABLE IF NOT EXISTS _skyllama_migrations (id INTEGER PRIMARY KEY)")
            done = {row[0] for row in self._db.execute("SELECT id FROM _skyllama_migrations")}
            for number, statement in enumerate(_MIGRATIONS, start=1):
                if number not in done:
                    self._db.execute("BEGIN IMMEDIATE")
                    self._db.execute(statement)
                    self._db.execute("INSERT INTO _skyllama_migrations (id) VALUES (?)", (number,))
                    self._db.execute("COMMIT")

    def _live(self, expires_at: float | None) -> bool:
        return expires_at is None or expires_at > self._clock.now()

    def put(
        self,
        kind: str,
        key: str,
        item: dict[str, Any],
        *,
        expires_at: float | None = None,
        if_absent: bool = False,
    ) -> bool:
        body = json.dumps(item)
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                if if_absent:
                    row = self._db.execute(
                        "SELECT expires_at FROM items WHERE kind=? AND key=?", (kind, key)
                    ).fetchone()
                    if row is not None and self._live(row[0]):
                        self._db.execute("ROLLBACK")
                        return False
                self._db.execute(
                    "INSERT OR REPLACE INTO items (kind, key, item, expires_at) VALUES (?, ?, ?, ?)",
                    (kind, key, body, expires_at),
                )
                self._db.execute("COMMIT")
                return True
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def get(self, kind: str, key: str) -> dict[str, Any] | None:
        with self._lock:
            row = self._db.execute(
                "SELECT item, expires_at FROM items WHERE kind=? AND key=?", (kind, key)
            ).fetchone()
        if row is None or not self._live(row[1]):
            return None
        item: dict[str, Any] = json.loads(row[0])
        return item

    def delete(self, kind: str, key: str) -> bool:
        """Remove the item; ``False`` when there was no live one (an expired row is absent)."""
        with self._lock:
            row = self._db.execute("SELECT expires_at FROM items WHERE kind=? AND key=?", (kind, key)).fetchone()
            self._db.execute("DELETE FROM items WHERE kind=? AND key=?", (kind, key))
        return row is not None and self._live(row[0])

    def query(self, kind: str, prefix: str = "") -> list[tuple[str, dict[str, Any]]]:
        with self._lock:
            rows = self._db.execute(
                "SELECT key, item, expires_at FROM items WHERE kind=? AND substr(key, 1, ?)=? ORDER BY key",
                (kind, len(prefix), prefix),
            ).fetchall()
        return [(key, json.loads(body)) for key, body, exp in rows if self._live(exp)]

    def increment(self, kind: str, key: str, field: str, amount: float, *, expires_at: float | None = None) -> float:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                row = self._db.execute(
                    "SELECT item, expires_at FROM items WHERE kind=? AND key=?", (kind, key)
                ).fetchone()
                item: dict[str, Any] = json.loads(row[0]) if row and self._live(row[1]) else {}
                value = float(item.get(field, 0)) + amount
                item[field] = value
                exp = expires_at if expires_at is not None else (row[1] if row and self._live(row[1]) else None)
                self._db.execute(
                    "INSERT OR REPLACE INTO items (kind, key, item, expires_at) VALUES (?, ?, ?, ?)",
                    (kind, key, json.dumps(item), exp),
                )
                self._db.execute("COMMIT")
                return value
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def close(self) -> None:
        with self._lock:
            self._db.close()
