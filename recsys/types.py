"""Immutable types that flow between pipeline stages and out to callers."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np


def _frozen(a: Any, dtype: Any = None) -> np.ndarray:
    arr = np.array(a, dtype=dtype, copy=True)
    arr.setflags(write=False)
    return arr


@dataclass(frozen=True, eq=False)
class ItemList:
    """Item ids with scores, in order: what one stage hands the next.

    Arrays are read-only copies, so a stage can never change what an earlier stage produced.
    """

    ids: np.ndarray
    scores: np.ndarray

    def __post_init__(self) -> None:
        ids = _frozen(self.ids, dtype=object)
        scores = _frozen(self.scores, dtype=np.float64)
        if ids.shape != scores.shape or ids.ndim != 1:
            raise ValueError(f"ids {ids.shape} and scores {scores.shape} must be 1-d and equal")
        object.__setattr__(self, "ids", ids)
        object.__setattr__(self, "scores", scores)

    @classmethod
    def empty(cls) -> ItemList:
        return cls(np.empty(0, dtype=object), np.empty(0))

    def __len__(self) -> int:
        return len(self.ids)

    def sorted(self) -> ItemList:
        """By score, highest first; ties broken by id so the order is deterministic."""
        order = np.lexsort((self.ids.astype(str), -self.scores))
        return ItemList(self.ids[order], self.scores[order])

    def top(self, k: int) -> ItemList:
        s = self.sorted()
        return ItemList(s.ids[:k], s.scores[:k])

    def without(self, exclude: Sequence[str] | np.ndarray) -> ItemList:
        keep = ~np.isin(self.ids, np.asarray(list(exclude), dtype=object))
        return ItemList(self.ids[keep], self.scores[keep])


@dataclass(frozen=True)
class Evidence:
    """One checkable fact from the user's own (minimized) data, or from shop-wide counts."""

    fact: str
    """What kind of fact: ``bought_item``, ``category_share``, ``brand_share``, ``trending`` ..."""
    item_id: str | None = None
    date: str | None = None
    """ISO date (``YYYY-MM-DD``) of the event the fact refers to."""
    category: str | None = None
    brand: str | None = None
    count: int | None = None
    total: int | None = None
    window_days: int | None = None
    value: float | None = None
    event: str | None = None
    """The event type the fact is about (``purchase``, ``rating`` ...)."""

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v is not None}


@dataclass(frozen=True)
class Reason:
    """A plain-language reason with the structured facts that make it checkable."""

    text: str
    features: tuple[str, ...] = ()
    """Features the text names; each had a positive attribution for this item."""
    attributions: tuple[float, ...] = ()
    evidence: tuple[Evidence, ...] = ()
    stage: str = "ranker"
    """Which stage chose the item: ``ranker``, ``popularity``, ``diversity``, ``fairness``."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "text": self.text,
            "stage": self.stage,
            "features": list(self.features),
            "attributions": [float(a) for a in self.attributions],
            "evidence": [e.to_dict() for e in self.evidence],
        }


@dataclass(frozen=True)
class Recommendation:
    item_id: str
    score: float
    rank: int
    reason: Reason
    attributions: tuple[tuple[str, float], ...] = ()
    title: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "item_id": self.item_id,
            "title": self.title,
            "rank": self.rank,
            "score": float(self.score),
            "reason": self.reason.text,
            "explanation": self.reason.to_dict(),
            "attributions": {k: float(v) for k, v in self.attributions},
        }


@dataclass(frozen=True)
class Recommendations(Sequence[Recommendation]):
    """The ranked, explained list returned to callers; immutable."""

    user_id: str
    items: tuple[Recommendation, ...] = field(default_factory=tuple)
    personalized: bool = True

    def __getitem__(self, i):  # type: ignore[override]
        return self.items[i]

    def __len__(self) -> int:
        return len(self.items)

    def __iter__(self) -> Iterator[Recommendation]:
        return iter(self.items)

    @property
    def item_ids(self) -> list[str]:
        return [r.item_id for r in self.items]

    def with_items(self, items: Sequence[Recommendation]) -> Recommendations:
        return replace(self, items=tuple(items))

    def to_rows(self) -> list[dict[str, Any]]:
        """Flat rows for a CSV or Parquet file: ids as the caller gave them, evidence as JSON."""
        return [
            {
                "user_id": self.user_id,
                "item_id": r.item_id,
                "rank": r.rank,
                "score": r.score,
                "reason": r.reason.text,
                "title": r.title,
                "personalized": self.personalized,
                "stage": r.reason.stage,
                "evidence": json.dumps([e.to_dict() for e in r.reason.evidence]),
            }
            for r in self.items
        ]

    def to_dicts(self) -> list[dict[str, Any]]:
        return [{"user_id": self.user_id, **r.to_dict()} for r in self.items]
