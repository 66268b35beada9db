"""A persistent translation cache: SQLite in WAL mode, safe with several processes.

Key = sha256(translator identity, src, tgt, segment text), where the identity names the backend, the
model and every option that changes the output (beam size, max length, prompt...). Each batch is
committed as soon as it is translated, so a run killed at any point loses at most the batch in flight
and a restart translates only what is missing. WAL lets readers run while one process writes;
`busy_timeout` makes concurrent writers wait for the lock instead of failing, and `INSERT OR IGNORE`
makes two processes that translated the same segment agree on the first answer stored.
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Iterable, Sequence
from pathlib import Path

from langshift.files import stable_hash

SCHEMA = """
CREATE TABLE IF NOT EXISTS translations (
    key TEXT PRIMARY KEY,
    identity TEXT NOT NULL,
    src TEXT NOT NULL,
    tgt TEXT NOT NULL,
    source TEXT NOT NULL,
    target TEXT NOT NULL,
    created REAL NOT NULL
)
"""


def cache_key(identity: str, src: str, tgt: str, text: str) -> str:
    return stable_hash(identity, src, tgt, text, length=32)


class TranslationCache:
    def __init__(self, path: str | os.PathLike, timeout_s: float = 60.0):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(self.path, timeout=timeout_s, isolation_level=None)
        self.db.execute(f"PRAGMA busy_timeout = {int(timeout_s * 1000)}")
        self.db.execute("PRAGMA journal_mode = WAL")
        self.db.execute("PRAGMA synchronous = NORMAL")  # WAL + NORMAL: durable across process kills
        self.db.execute(SCHEMA)

    def get_many(self, identity: str, src: str, tgt: str, texts: Iterable[str]) -> dict[str, str]:
        """{text: translation} for the texts already cached."""
        keys = {cache_key(identity, src, tgt, t): t for t in texts}
        found: dict[str, str] = {}
        items = list(keys)
        for i in range(0, len(items), 500):  # SQLite's limit on bound parameters
            chunk = items[i : i + 500]
            q = f"SELECT key, target FROM translations WHERE key IN ({','.join('?' * len(chunk))})"
            for key, target in self.db.execute(q, chunk):
                found[keys[key]] = target
        return found

    def put_many(self, identity: str, src: str, tgt: str, pairs: Sequence[tuple[str, str]]) -> None:
        """Store (source, translation) pairs in one transaction."""
        now = time.time()
        rows = [(cache_key(identity, src, tgt, s), identity, src, tgt, s, t, now) for s, t in pairs]
        with _transaction(self.db):
            self.db.executemany("INSERT OR IGNORE INTO translations VALUES (?, ?, ?, ?, ?, ?, ?)", rows)

    def count(self, identity: str | None = None) -> int:
        if identity is None:
            return self.db.execute("SELECT COUNT(*) FROM translations").fetchone()[0]
        return self.db.execute(
            "SELECT COUNT(*) FROM translations WHERE identity = ?", (identity,)
        ).fetchone()[0]

    def close(self) -> None:
        self.db.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class _transaction:
    """BEGIN IMMEDIATE takes the write lock up front, so busy_timeout applies (a deferred transaction
    that upgrades to a writer can fail with 'database is locked' without waiting)."""

    def __init__(self, db: sqlite3.Connection):
        self.db = db

    def __enter__(self):
        self.db.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type, *exc):
        self.db.execute("ROLLBACK" if exc_type else "COMMIT")
