"""Customer feedback: "not interested in this item / category" and "this reason is wrong".

Stored under the customer's pseudonym in the state database (never the raw id), honoured from
the next request on (the pipeline leaves blocked items and categories out, see
:mod:`recsys.audit.hooks`), counted by the monitor, and erased with the customer. A wrong-reason
report keeps a kind from a fixed list, not free text: nothing the customer types is stored.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

from recsys.audit.db import StateTable
from recsys.privacy.pseudonym import Pseudonymizer

NOT_INTERESTED_ITEM = "not_interested_item"
NOT_INTERESTED_CATEGORY = "not_interested_category"
REASON_WRONG = "reason_wrong"
KINDS = (NOT_INTERESTED_ITEM, NOT_INTERESTED_CATEGORY, REASON_WRONG)
ReasonProblem = Literal["not_true", "not_relevant", "too_personal", "other"]
PROBLEMS = ("not_true", "not_relevant", "too_personal", "other")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS feedback (
    pseudonym TEXT NOT NULL,
    at REAL NOT NULL,
    kind TEXT NOT NULL,
    item_id TEXT,
    category TEXT,
    problem TEXT
);
CREATE INDEX IF NOT EXISTS feedback_user ON feedback (pseudonym);
"""


class FeedbackStore(StateTable):
    """Feedback in the state database (``state.sqlite``, WAL): safe across processes."""

    SCHEMA = _SCHEMA

    def add(
        self,
        key: str,
        kind: str,
        *,
        item_id: str | None = None,
        category: str | None = None,
        problem: str | None = None,
        at: float | None = None,
    ) -> None:
        if kind not in KINDS:
            raise ValueError(f"unknown feedback kind {kind!r}; expected one of {KINDS}")
        row = (key, time.time() if at is None else at, kind, item_id, category, problem)
        self.transaction(lambda c: c.execute("INSERT INTO feedback VALUES (?,?,?,?,?,?)", row))

    def blocked(self, keys: Sequence[str]) -> dict[str, tuple[set[str], set[str]]]:
        """Per pseudonym with feedback: the items and the categories they are not interested in."""
        keys = list(dict.fromkeys(keys))
        out: dict[str, tuple[set[str], set[str]]] = {}
        c = self.conn()
        for start in range(0, len(keys), 500):
            chunk = keys[start : start + 500]
            marks = ",".join("?" * len(chunk))
            rows = c.execute(
                f"SELECT pseudonym, kind, item_id, category FROM feedback WHERE pseudonym IN "
                f"({marks}) AND kind IN (?, ?)",
                [*chunk, NOT_INTERESTED_ITEM, NOT_INTERESTED_CATEGORY],
            ).fetchall()
            for key, kind, item, cat in rows:
                items, cats = out.setdefault(key, (set(), set()))
                (items.add(item) if kind == NOT_INTERESTED_ITEM else cats.add(cat))
        return out

    def records(self, key: str) -> list[dict]:
        cur = self.conn().execute(
            "SELECT at, kind, item_id, category, problem FROM feedback WHERE pseudonym = ? "
            "ORDER BY at",
            (key,),
        )
        return [dict(zip(("at", "kind", "item_id", "category", "problem"), r, strict=True))
                for r in cur.fetchall()]  # fmt: skip

    def counts(self, since: float | None = None) -> dict[str, int]:
        """Feedback events per kind (since a time, if given)."""
        rows = (
            self.conn()
            .execute(
                "SELECT kind, COUNT(*) FROM feedback WHERE at >= ? GROUP BY kind",
                (since or 0.0,),
            )
            .fetchall()
        )
        return {k: 0 for k in KINDS} | {k: int(n) for k, n in rows}

    def delete_user(self, key: str) -> int:
        return int(
            self.transaction(
                lambda c: c.execute("DELETE FROM feedback WHERE pseudonym = ?", (key,)).rowcount
            )
        )


def _key(pseudonymizer: Pseudonymizer | None, user_id: str) -> str:
    """The id the pipeline knows the customer by (as :meth:`Pipeline.key_of`)."""
    return pseudonymizer(str(user_id)) if pseudonymizer is not None else str(user_id)


def not_interested(
    store: FeedbackStore,
    pseudonymizer: Pseudonymizer | None,
    user_id: str,
    *,
    item_id: str | None = None,
    category: str | None = None,
) -> None:
    """The customer does not want this item (or this category and what lies under it)
    recommended again; applies from the next request on."""
    if (item_id is None) == (category is None):
        raise ValueError("give exactly one of item_id or category")
    kind = NOT_INTERESTED_ITEM if item_id is not None else NOT_INTERESTED_CATEGORY
    store.add(_key(pseudonymizer, user_id), kind, item_id=item_id, category=category)


def reason_wrong(
    store: FeedbackStore,
    pseudonymizer: Pseudonymizer | None,
    user_id: str,
    item_id: str,
    problem: ReasonProblem = "not_true",
) -> None:
    """The customer says the reason shown for ``item_id`` is wrong (``problem``: not_true,
    not_relevant, too_personal or other)."""
    if problem not in PROBLEMS:
        raise ValueError(f"unknown problem {problem!r}; expected one of {PROBLEMS}")
    store.add(_key(pseudonymizer, user_id), REASON_WRONG, item_id=item_id, problem=problem)


def open_feedback(path: str | Path) -> FeedbackStore:
    return FeedbackStore(path)
