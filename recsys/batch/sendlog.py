"""The send log: who got which campaign when, in the state directory's SQLite database.

The frequency cap reads it; a finished offers job writes it (one transaction, idempotent: a
rerun of the same campaign records nothing twice). A campaign never counts against itself, so
rerunning a finished or killed job gives the same customers the same offers.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Sequence
from pathlib import Path

_SCHEMA = """
CREATE TABLE IF NOT EXISTS send_log (
    pseudonym TEXT NOT NULL,
    campaign TEXT NOT NULL,
    sent_at REAL NOT NULL,
    PRIMARY KEY (pseudonym, campaign)
);
CREATE INDEX IF NOT EXISTS send_log_time ON send_log (pseudonym, sent_at);
"""


class SendLog:
    """E-mails sent per pseudonym; pickles as its path (workers reconnect)."""

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        self._conn: sqlite3.Connection | None = None

    def __getstate__(self) -> dict:
        return {"path": self.path}

    def __setstate__(self, state: dict) -> None:
        self.__init__(state["path"])

    def conn(self) -> sqlite3.Connection:
        if self._conn is None:
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(self.path, timeout=30.0, isolation_level=None)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.executescript(_SCHEMA)
            self._conn = conn
        return self._conn

    def counts(
        self, keys: Sequence[str], *, since: float, until: float, other_than: str
    ) -> dict[str, int]:
        """E-mails of campaigns other than ``other_than`` sent in ``[since, until)``, per key."""
        out: dict[str, int] = {}
        keys = list(dict.fromkeys(keys))
        for start in range(0, len(keys), 500):
            chunk = keys[start : start + 500]
            marks = ",".join("?" * len(chunk))
            rows = self.conn().execute(
                f"SELECT pseudonym, COUNT(*) FROM send_log WHERE pseudonym IN ({marks}) "
                "AND sent_at >= ? AND sent_at < ? AND campaign != ? GROUP BY pseudonym",
                [*chunk, since, until, other_than],
            )
            out.update(dict(rows.fetchall()))
        return out

    def record(self, campaign: str, keys: Iterable[str], *, at: float) -> int:
        """Record that ``campaign`` went to ``keys``; durable on return; returns new rows."""
        conn = self.conn()
        conn.execute("BEGIN IMMEDIATE")
        try:
            before = conn.total_changes
            conn.executemany(
                "INSERT OR IGNORE INTO send_log VALUES (?, ?, ?)",
                ((k, campaign, at) for k in keys),
            )
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        return conn.total_changes - before

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
