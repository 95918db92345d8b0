"""Consent and erasure records, kept outside every model artifact.

A model is fitted data; consent is the customer's current word. Keeping the two apart lets a
consent change apply at the next request in every process that serves the model, survive a
restart, and never be undone by loading an older artifact. Records are keyed by pseudonym.

:class:`SQLiteConsentStore` is the default: one SQLite file in the shop's state directory, in WAL
mode so several processes (server workers, a batch job) read and write it safely. The
:class:`ConsentStore` interface admits a server database later.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol


@dataclass(frozen=True)
class Consent:
    personalization: bool = False
    email: bool = False


NO_CONSENT = Consent()
RAW_IDS = "raw"
"""The key id of tombstones that hold raw user ids (a model fitted without a Pseudonymizer)."""
UNKNOWN_KEY = "unknown"
"""The key id of tombstones recorded before the store kept key ids."""


class ConsentStore(Protocol):
    """Consent per pseudonym and the pseudonyms of erased customers."""

    def get_many(self, keys: Sequence[str]) -> dict[str, Consent]: ...

    def keys(self) -> list[str]: ...

    def set(
        self,
        key: str,
        personalization: bool | None = None,
        email: bool | None = None,
        *,
        at: float | None = None,
    ) -> Consent: ...

    def seed(self, records: Iterable[tuple[str, bool, bool]], *, at: float) -> None: ...

    def delete(self, key: str) -> bool: ...

    def mark_erased(self, key: str, key_id: str = RAW_IDS) -> None: ...

    def erased(self) -> set[str]: ...

    def erased_by_key(self) -> dict[str, set[str]]: ...


def get(store: ConsentStore, key: str) -> Consent:
    """One customer's consent; unknown customers have none."""
    return store.get_many([key]).get(key, NO_CONSENT)


_SCHEMA = """
CREATE TABLE IF NOT EXISTS consent (
    pseudonym TEXT PRIMARY KEY,
    personalization INTEGER NOT NULL,
    email INTEGER NOT NULL,
    updated_at REAL NOT NULL,
    source TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS erased (
    pseudonym TEXT PRIMARY KEY,
    erased_at REAL NOT NULL,
    key_id TEXT
);
"""


def connect(path: str | Path, schema: str) -> sqlite3.Connection:
    """A connection to a state database file in WAL mode (several processes read and write it
    safely), with ``schema`` applied: how every recsys store opens the state database."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(str(path), timeout=30.0, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.executescript(schema)
    return conn


def _migrate(conn: sqlite3.Connection) -> None:
    """Stores written before tombstones recorded their key id gain the column (NULL: unknown)."""
    cols = {r[1] for r in conn.execute("PRAGMA table_info(erased)").fetchall()}
    if "key_id" not in cols:
        conn.execute("ALTER TABLE erased ADD COLUMN key_id TEXT")


class SQLiteConsentStore:
    """Consent in one SQLite file; safe across threads (a connection each) and processes (WAL).

    Pickles as its path, so a store ships to worker processes and reconnects there. A record
    the customer set (:meth:`set`) is never overwritten by :meth:`seed`: retraining from an
    older export cannot undo an opt-out.
    """

    def __init__(self, path: str | Path = ":memory:") -> None:
        self.path = str(path)
        self._local = threading.local()
        self._memory_conn: sqlite3.Connection | None = None
        self._memory_lock = threading.Lock()

    @classmethod
    def in_memory(cls) -> SQLiteConsentStore:
        """A private store for one process (evaluation runs, tests): nothing is written to disk."""
        return cls(":memory:")

    def __getstate__(self) -> dict:
        if self.path == ":memory:":
            raise TypeError("an in-memory consent store cannot be shipped to another process")
        return {"path": self.path}

    def __setstate__(self, state: dict) -> None:
        self.__init__(state["path"])

    def _conn(self) -> sqlite3.Connection:
        if self.path == ":memory:":
            if self._memory_conn is None:
                self._memory_conn = sqlite3.connect(":memory:", check_same_thread=False)
                self._memory_conn.executescript(_SCHEMA)
                _migrate(self._memory_conn)
            return self._memory_conn
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = connect(self.path, _SCHEMA)
            _migrate(conn)
            self._local.conn = conn
        return conn

    def _run(self, fn):
        if self.path == ":memory:":
            with self._memory_lock:
                return fn(self._conn())
        return fn(self._conn())

    def get_many(self, keys: Sequence[str]) -> dict[str, Consent]:
        keys = list(dict.fromkeys(keys))

        def q(conn: sqlite3.Connection) -> dict[str, Consent]:
            out: dict[str, Consent] = {}
            for start in range(0, len(keys), 500):
                chunk = keys[start : start + 500]
                marks = ",".join("?" * len(chunk))
                rows = conn.execute(
                    f"SELECT pseudonym, personalization, email FROM consent "
                    f"WHERE pseudonym IN ({marks})",
                    chunk,
                ).fetchall()
                out.update({k: Consent(bool(p), bool(e)) for k, p, e in rows})
            return out

        return self._run(q)

    def keys(self) -> list[str]:
        """Every pseudonym with a consent record, sorted (the audience of a batch job)."""
        rows = self._run(
            lambda c: c.execute("SELECT pseudonym FROM consent ORDER BY pseudonym").fetchall()
        )
        return [r[0] for r in rows]

    def set(
        self,
        key: str,
        personalization: bool | None = None,
        email: bool | None = None,
        *,
        at: float | None = None,
    ) -> Consent:
        """Change one customer's consent (unset flags keep their value); durable on return."""
        when = time.time() if at is None else at

        def q(conn: sqlite3.Connection) -> Consent:
            conn.execute("BEGIN IMMEDIATE")
            try:
                row = conn.execute(
                    "SELECT personalization, email FROM consent WHERE pseudonym = ?", (key,)
                ).fetchone()
                p0, e0 = (bool(row[0]), bool(row[1])) if row else (False, False)
                new = Consent(
                    p0 if personalization is None else bool(personalization),
                    e0 if email is None else bool(email),
                )
                conn.execute(
                    "INSERT OR REPLACE INTO consent VALUES (?, ?, ?, ?, 'api')",
                    (key, int(new.personalization), int(new.email), when),
                )
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            return new

        return self._run(q)

    def seed(self, records: Iterable[tuple[str, bool, bool]], *, at: float) -> None:
        """Record consent from a data export (at training time); customers' own changes win."""
        rows = [(k, int(bool(p)), int(bool(e)), at) for k, p, e in records]

        def q(conn: sqlite3.Connection) -> None:
            conn.execute("BEGIN IMMEDIATE")
            try:
                conn.executemany(
                    "INSERT INTO consent VALUES (?, ?, ?, ?, 'data') ON CONFLICT(pseudonym) DO UPDATE "
                    "SET personalization = excluded.personalization, email = excluded.email, "
                    "updated_at = excluded.updated_at WHERE source = 'data'",
                    rows,
                )
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise

        self._run(q)

    def delete(self, key: str) -> bool:
        return bool(
            self._run(
                lambda c: c.execute("DELETE FROM consent WHERE pseudonym = ?", (key,)).rowcount
            )
        )

    def mark_erased(self, key: str, key_id: str = RAW_IDS) -> None:
        """Record an erasure (the pseudonym only, and the id of the key that made it); training
        leaves the customer out for good. Durable on return."""
        self._run(
            lambda c: c.execute(
                "INSERT OR IGNORE INTO erased (pseudonym, erased_at, key_id) VALUES (?, ?, ?)",
                (key, time.time(), key_id),
            )
        )

    def erased(self) -> set[str]:
        return {
            r[0] for r in self._run(lambda c: c.execute("SELECT pseudonym FROM erased").fetchall())
        }

    def erased_by_key(self) -> dict[str, set[str]]:
        """Tombstones per id of the key that made them (:data:`UNKNOWN_KEY` for old records)."""
        rows = self._run(lambda c: c.execute("SELECT pseudonym, key_id FROM erased").fetchall())
        out: dict[str, set[str]] = {}
        for pseudonym, key_id in rows:
            out.setdefault(key_id or UNKNOWN_KEY, set()).add(pseudonym)
        return out
