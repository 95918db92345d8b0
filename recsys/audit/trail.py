"""The audit trail: what was recommended to whom (a pseudonym), when, by which model and why.

Every served list can be recorded, append-only, in the shop's state database: the time, the
customer's pseudonym (never a raw id), the model version and policy hash, and per item its
rank, score, reason with its evidence, and the stage that placed it; plus the filters and
overrides that applied. Records expire with the retention window of the model's purpose and are
erased with the customer (:func:`recsys.privacy.erasure.forget`). :class:`AuditSink` is the
interface the pipeline writes to; :class:`SQLiteAuditTrail` is the default, and a server
database can implement the same two methods.
"""

from __future__ import annotations

import hashlib
import json
import time
import uuid
import weakref
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from recsys.audit.db import StateTable
from recsys.types import Query, Recommendations

if TYPE_CHECKING:
    from recsys.model.fitted import FittedModel

DAY = 86_400.0


class AuditSink(Protocol):
    """Receives every served list of a block at once (one write per block)."""

    def record(
        self,
        model: FittedModel,
        keys: Sequence[str],
        queries: Sequence[Query],
        lists: Sequence[Recommendations],
        applied: Sequence[Mapping[str, Any]] | None = None,
    ) -> None: ...


_versions: weakref.WeakKeyDictionary[Any, tuple[str, str, float | None]] = (
    weakref.WeakKeyDictionary()
)


def versions(model: FittedModel) -> tuple[str, str, float | None]:
    """The model's version (a fingerprint of its configuration, data cut-off, key and training
    run), the policy's SHA-256 and the purpose's retention window in seconds (None: none)."""
    got = _versions.get(model)
    if got is None:
        h = hashlib.sha256()
        for part in (model.config.model_dump_json(), str(model.cutoff), str(model.key_id),
                     ",".join(model.feature_names), json.dumps(model.training, default=str,
                                                               sort_keys=True)):  # fmt: skip
            h.update(part.encode())
            h.update(b"\0")
        policy = hashlib.sha256(model.policy.model_dump_json().encode()).hexdigest()
        purpose = model.policy.purposes.get(model.purpose)
        days = getattr(purpose, "retention_days", None)
        got = (h.hexdigest()[:16], policy[:16], float(days) * DAY if days else None)
        _versions[model] = got
    return got


_SCHEMA = """
CREATE TABLE IF NOT EXISTS audit_lists (
    list_id TEXT PRIMARY KEY,
    at REAL NOT NULL,
    pseudonym TEXT NOT NULL,
    model_version TEXT NOT NULL,
    policy_hash TEXT NOT NULL,
    purpose TEXT NOT NULL,
    personalized INTEGER NOT NULL,
    request_id TEXT,
    k INTEGER NOT NULL,
    applied TEXT NOT NULL,
    expires_at REAL
);
CREATE INDEX IF NOT EXISTS audit_lists_user ON audit_lists (pseudonym, at);
CREATE INDEX IF NOT EXISTS audit_lists_expiry ON audit_lists (expires_at);
CREATE TABLE IF NOT EXISTS audit_items (
    list_id TEXT NOT NULL,
    rank INTEGER NOT NULL,
    item_id TEXT NOT NULL,
    score REAL,
    stage TEXT NOT NULL,
    reason TEXT NOT NULL,
    explanation TEXT NOT NULL,
    PRIMARY KEY (list_id, rank)
);
CREATE TRIGGER IF NOT EXISTS audit_lists_append_only BEFORE UPDATE ON audit_lists
BEGIN SELECT RAISE(ABORT, 'the audit trail is append-only'); END;
CREATE TRIGGER IF NOT EXISTS audit_items_append_only BEFORE UPDATE ON audit_items
BEGIN SELECT RAISE(ABORT, 'the audit trail is append-only'); END;
"""


class SQLiteAuditTrail(StateTable):
    """The audit trail in the state database (``state.sqlite``; see :mod:`recsys.state`).

    Append-only (updates are refused by the database); rows leave only by :meth:`purge_expired`
    (the retention window) and :meth:`delete_user` (erasure). Safe across threads and processes.
    """

    SCHEMA = _SCHEMA

    def __init__(self, path: str | Path, *, clock=time.time) -> None:
        super().__init__(path)
        self.clock = clock

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["path"])

    # --- writing ------------------------------------------------------------------------------
    def record(
        self,
        model: FittedModel,
        keys: Sequence[str],
        queries: Sequence[Query],
        lists: Sequence[Recommendations],
        applied: Sequence[Mapping[str, Any]] | None = None,
    ) -> None:
        """One record per list, every list of the block in one transaction."""
        version, policy, retention = versions(model)
        now = self.clock()
        expires = now + retention if retention else None
        heads, rows = [], []
        for n, (key, q, recs) in enumerate(zip(keys, queries, lists, strict=True)):
            lid = uuid.uuid4().hex
            notes = json.dumps(dict(applied[n]) if applied else {}, sort_keys=True, default=str)
            heads.append((lid, now, key, version, policy, model.purpose, int(recs.personalized),
                          q.request_id, q.k, notes, expires))  # fmt: skip
            for r in recs:
                rows.append((lid, r.rank, r.item_id, float(r.score), str(r.reason.stage),
                             r.reason.text, json.dumps(r.reason.to_dict())))  # fmt: skip

        def write(c) -> None:
            c.executemany("INSERT INTO audit_lists VALUES (?,?,?,?,?,?,?,?,?,?,?)", heads)
            c.executemany("INSERT INTO audit_items VALUES (?,?,?,?,?,?,?)", rows)

        self.transaction(write)

    # --- retention and erasure ----------------------------------------------------------------
    def purge_expired(self, now: float | None = None) -> int:
        """Delete the records whose retention window has passed; returns lists deleted."""
        when = self.clock() if now is None else now
        return self._delete_lists("expires_at < ?", when)

    def delete_user(self, pseudonym: str) -> int:
        """Erase every record of one customer; returns lists deleted."""
        return self._delete_lists("pseudonym = ?", pseudonym)

    def _delete_lists(self, where: str, arg: object) -> int:
        """Delete the lists matching ``where`` and their items, in one transaction."""

        def delete(c) -> int:
            c.execute(
                "DELETE FROM audit_items WHERE list_id IN "
                f"(SELECT list_id FROM audit_lists WHERE {where})",
                (arg,),
            )
            return c.execute(f"DELETE FROM audit_lists WHERE {where}", (arg,)).rowcount

        return self.transaction(delete)

    # --- reading ------------------------------------------------------------------------------
    def lists(self, pseudonym: str | None = None, *, limit: int | None = None) -> list[dict]:
        """Recorded lists, newest first (one customer's with ``pseudonym``), items in rank order;
        expired records are purged first."""
        self.purge_expired()
        c = self.conn()
        where, args = ("WHERE pseudonym = ?", [pseudonym]) if pseudonym is not None else ("", [])
        sql = f"SELECT * FROM audit_lists {where} ORDER BY at DESC, rowid DESC"
        if limit:
            sql += f" LIMIT {int(limit)}"
        cur = c.execute(sql, args)
        names = [d[0] for d in cur.description]
        heads = [dict(zip(names, row, strict=True)) for row in cur.fetchall()]
        for h in heads:
            h["applied"] = json.loads(h["applied"])
            h["personalized"] = bool(h["personalized"])
            items = c.execute(
                "SELECT rank, item_id, score, stage, reason, explanation FROM audit_items "
                "WHERE list_id = ? ORDER BY rank",
                (h["list_id"],),
            ).fetchall()
            h["items"] = [
                {
                    "rank": r,
                    "item_id": i,
                    "score": s,
                    "stage": st,
                    "reason": t,
                    "explanation": json.loads(e),
                }
                for r, i, s, st, t, e in items
            ]
        return heads

    def count(self, pseudonym: str | None = None) -> int:
        """Recorded lists (one customer's with ``pseudonym``)."""
        where, args = ("WHERE pseudonym = ?", (pseudonym,)) if pseudonym is not None else ("", ())
        row = self.conn().execute(f"SELECT COUNT(*) FROM audit_lists {where}", args).fetchone()
        return int(row[0])

    def item_rows(self) -> list[dict[str, Any]]:
        """Every recorded item with its list's fields, flat (for Parquet export)."""
        self.purge_expired()
        cur = self.conn().execute(
            "SELECT l.list_id, l.at, l.pseudonym, l.model_version, l.policy_hash, l.purpose, "
            "l.personalized, l.request_id, l.k, l.applied, l.expires_at, i.rank, i.item_id, "
            "i.score, i.stage, i.reason, i.explanation FROM audit_lists l JOIN audit_items i "
            "USING (list_id) ORDER BY l.at, l.list_id, i.rank"
        )
        names = [d[0] for d in cur.description]
        return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]
