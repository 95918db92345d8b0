"""Immutable types that flow between pipeline stages and out to callers."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any


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
