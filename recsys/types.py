"""Immutable types that flow between pipeline stages and out to callers.

``Query`` is what a page view, an e-mail batch and an evaluation run ask for; ``ItemList`` is what
every stage takes and returns; ``Recommendations`` is what callers get back.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import numpy as np


class Fact(StrEnum):
    """Kinds of checkable fact a reason may state; each has a template and a checker."""

    CHOSEN_TOGETHER = "chosen_together"
    TASTE_PROFILE = "taste_profile"
    SIMILAR_TO = "similar_to"
    CATEGORY_SHARE = "category_share"
    BRAND_SHARE = "brand_share"
    USUAL_PRICE = "usual_price"
    BOUGHT_BEFORE = "bought_before"
    TRENDING = "trending"
    CUSTOMERS = "customers"
    AVERAGE_RATING = "average_rating"
    LISTED = "listed"
    DIVERSITY = "diversity"
    ITEM_GROUP = "item_group"
    PROMOTED = "promoted"
    NEW_IN = "new_in"


class Stage(StrEnum):
    """Which stage placed an item in the final list."""

    RANKER = "ranker"
    POPULARITY = "popularity"
    DIVERSITY = "diversity"
    CALIBRATION = "calibration"
    FAIRNESS = "fairness"
    EDITORIAL = "editorial"  # pinned by a person (an overrides file), says so in its reason
    PROMOTION = "promotion"  # a promoted item (issue #15), says so in its reason
    NEW_ARRIVAL = "new_arrival"  # a new item given a reserved slot (issue #15), says it is new


@dataclass(frozen=True)
class Evidence:
    """One checkable fact from the user's own (minimized) data, or from shop-wide counts."""

    fact: Fact
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
    """The reader's own event the fact is about (``purchase``, ``rating`` ...)."""
    counted: str | None = None
    """What a shop-wide count counts: ``purchase`` (distinct customers who bought), or
    ``rating>=4`` (distinct customers who rated 4 or more); always other customers."""
    others: bool | None = None
    """The reader did it too and is left out of ``count`` ("other customers")."""
    price: float | None = None
    """The recommended item's price (price facts)."""

    def __post_init__(self) -> None:
        if type(self.fact) is not Fact:
            object.__setattr__(self, "fact", Fact(self.fact))

    def to_dict(self) -> dict[str, Any]:
        out = {k: v for k, v in self.__dict__.items() if v is not None}
        out["fact"] = str(self.fact)
        return out

    def to_json(self) -> str:
        """``json.dumps(self.to_dict())``, character for character, without building the dict:
        an e-mail job writes one per offer."""
        parts = []
        for name, v in self.__dict__.items():
            if v is not None:
                parts.append(f'"{name}": {_json_value(v)}')
        return "{" + ", ".join(parts) + "}"


_json_str = json.encoder.encode_basestring_ascii  # json.dumps's own string encoder


def _json_value(v: object) -> str:
    """One value as ``json.dumps`` writes it (its defaults: ASCII, NaN allowed)."""
    t = type(v)
    if isinstance(v, str):  # a Fact is a str: its text, as json.dumps reads it
        return _json_str(v)
    if t is bool:
        return "true" if v else "false"
    if t is int:
        return int.__repr__(v)  # type: ignore[arg-type]
    if t is float and math.isfinite(v):  # type: ignore[arg-type]
        return float.__repr__(v)  # type: ignore[arg-type]
    return json.dumps(v)  # anything rarer: json.dumps itself


@dataclass(frozen=True)
class Reason:
    """A plain-language reason with the structured facts that make it checkable."""

    text: str
    features: tuple[str, ...] = ()
    """Features the text names; each had a positive attribution for this item."""
    attributions: tuple[float, ...] = ()
    evidence: tuple[Evidence, ...] = ()
    stage: Stage = Stage.RANKER
    refused: tuple[str, ...] = ()
    """Facts that were true but that an applicability rule kept from speaking (e.g. "often"
    for a category with one item): counted in evaluation reports."""

    def __post_init__(self) -> None:
        if type(self.stage) is not Stage:
            object.__setattr__(self, "stage", Stage(self.stage))

    def to_dict(self) -> dict[str, Any]:
        return {
            "text": self.text,
            "stage": str(self.stage),
            "features": list(self.features),
            "attributions": [float(a) for a in self.attributions],
            "evidence": [e.to_dict() for e in self.evidence],
            "refused": list(self.refused),
        }


@dataclass(frozen=True)
class Event:
    """One recent event a request carries (not yet in the model): folded into that request's
    user vector, seen by the features and cited by reasons. ``ts`` is Unix seconds."""

    item_id: str
    event: str
    ts: int

    def __post_init__(self) -> None:
        if self.event not in ("view", "cart", "purchase", "rating"):
            raise ValueError(
                f"event must be one of view, cart, purchase, rating; got {self.event!r}"
            )
        if isinstance(self.ts, bool) or not isinstance(self.ts, int | np.integer):
            raise ValueError(f"event time must be Unix seconds (an integer), got {self.ts!r}")
        object.__setattr__(self, "item_id", str(self.item_id))
        object.__setattr__(self, "ts", int(self.ts))


@dataclass(frozen=True)
class Query:
    """One request: whose list, how long, as of when, what to leave out, per-call overrides.

    ``as_of`` is Unix seconds (``None``: the model's data cut-off). ``rerank`` overrides the
    configured re-ranking for this call (``False`` turns it off). ``personalized=False`` asks for
    the non-profiling list (DSA Art. 38).
    """

    user_id: str
    k: int = 10
    as_of: int | None = None
    exclude: tuple[str, ...] = ()
    personalized: bool = True
    rerank: Any = None
    request_id: str | None = None
    events: tuple[Event, ...] = ()
    """Recent events of this user (a brand-new visitor's too), not yet in the model."""
    filters: tuple[str, ...] = ()
    """Filter expressions every item must match (:mod:`recsys.rules.filters`)."""
    exclude_filters: tuple[str, ...] = ()
    """Filter expressions no item may match."""

    def __post_init__(self) -> None:
        if isinstance(self.k, bool) or not isinstance(self.k, int | np.integer) or self.k < 1:
            raise ValueError(f"k must be a positive whole number, got {self.k!r}")
        object.__setattr__(self, "user_id", str(self.user_id))
        object.__setattr__(self, "exclude", tuple(str(x) for x in self.exclude))
        object.__setattr__(self, "events", tuple(self.events))
        for name in ("filters", "exclude_filters"):
            value = getattr(self, name)
            object.__setattr__(self, name, (value,) if isinstance(value, str) else tuple(value))
        late = [e for e in self.events if self.as_of is not None and e.ts > self.as_of]
        if late:
            raise ValueError(
                f"recent event on {late[0].item_id!r} at {late[0].ts} is after the request "
                f"time {self.as_of}"
            )


def _frozen(a: np.ndarray) -> np.ndarray:
    """A read-only copy; an array that is already read-only and owns its data is kept as it is
    (nobody can write it), so ``take`` and ``with_column`` copy only what they create."""
    if not a.flags.writeable and a.base is None and a.flags.owndata:
        return a
    a = np.array(a, copy=True)
    a.setflags(write=False)
    return a


def _fresh(a: np.ndarray) -> np.ndarray:
    """Mark an array this module just created (a fancy-indexed copy) read-only, without copying."""
    if a.base is None and a.flags.owndata:
        a.setflags(write=False)
    return a


@dataclass(frozen=True, eq=False)
class ItemList:
    """An ordered list of items (catalogue indices and ids) with named, read-only columns.

    Stages never change a list: ``take`` and ``with_column`` return new ones, so a later stage
    cannot alter what an earlier stage produced.
    """

    items: np.ndarray
    ids: np.ndarray
    columns: Mapping[str, np.ndarray] = field(default_factory=dict)

    def __post_init__(self) -> None:
        n = len(self.items)
        if len(self.ids) != n:
            raise ValueError("items and ids must have the same length")
        cols = {}
        for name, col in self.columns.items():
            if len(col) != n:
                raise ValueError(f"column {name!r} has {len(col)} entries for {n} items")
            cols[name] = _frozen(col)
        object.__setattr__(self, "items", _frozen(np.asarray(self.items, dtype=np.int64)))
        object.__setattr__(self, "ids", _frozen(np.asarray(self.ids, dtype=object)))
        object.__setattr__(self, "columns", cols)

    @classmethod
    def from_indices(cls, items: np.ndarray, all_ids: np.ndarray, **columns: Any) -> ItemList:
        items = np.asarray(items, dtype=np.int64)
        return cls(items, all_ids[items], {k: np.asarray(v) for k, v in columns.items()})

    def __len__(self) -> int:
        return len(self.items)

    def __contains__(self, name: object) -> bool:
        return name in self.columns

    def column(self, name: str) -> np.ndarray:
        try:
            return self.columns[name]
        except KeyError:
            raise KeyError(f"no column {name!r}; columns: {sorted(self.columns)}") from None

    def take(self, order: np.ndarray | Sequence[int]) -> ItemList:
        """The items at positions ``order``, in that order, with all their columns."""
        order = np.asarray(order, dtype=np.int64)
        return self._trusted(
            _fresh(self.items[order]),
            _fresh(self.ids[order]),
            {k: _fresh(v[order]) for k, v in self.columns.items()},
        )

    @classmethod
    def _trusted(
        cls, items: np.ndarray, ids: np.ndarray, columns: dict[str, np.ndarray]
    ) -> ItemList:
        """A list from arrays this class just made (read-only, of one length): no checks, no
        copies; what ``__post_init__`` would keep as it is."""
        lst = object.__new__(cls)
        object.__setattr__(lst, "items", items)
        object.__setattr__(lst, "ids", ids)
        object.__setattr__(lst, "columns", columns)
        return lst

    def head(self, n: int) -> ItemList:
        return self.take(np.arange(min(n, len(self))))

    def with_column(self, name: str, values: np.ndarray | Sequence[Any]) -> ItemList:
        return self.with_columns(**{name: values})

    def with_columns(self, /, **columns: np.ndarray | Sequence[Any]) -> ItemList:
        """The same items with these columns added or replaced."""
        new = {}
        for name, values in columns.items():
            values = np.asarray(values)
            if len(values) != len(self.items):
                raise ValueError(f"column {name!r} has {len(values)} entries for {len(self)} items")
            new[name] = _frozen(values)
        return self._trusted(self.items, self.ids, {**self.columns, **new})


class Attributions(Sequence[tuple[str, float]]):
    """``(feature, attribution)`` pairs of one item, stored as two columns: every item of a list
    shares the tuple of names, so a list of many items does not build a pair per feature.
    Reads, compares and hashes like the tuple of pairs."""

    __slots__ = ("names", "values")

    def __init__(self, names: tuple[str, ...], values: tuple[float, ...]) -> None:
        if len(names) != len(values):
            raise ValueError(f"{len(names)} feature names for {len(values)} attributions")
        self.names, self.values = tuple(names), tuple(values)  # a tuple stays itself

    def __len__(self) -> int:
        return len(self.values)

    def __getitem__(self, i):  # type: ignore[override]
        if isinstance(i, slice):
            return tuple(zip(self.names[i], self.values[i], strict=True))
        return self.names[i], self.values[i]

    def __iter__(self) -> Iterator[tuple[str, float]]:
        return zip(self.names, self.values, strict=True)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Attributions):
            return self.names == other.names and self.values == other.values
        return isinstance(other, tuple) and tuple(self) == other

    def __hash__(self) -> int:
        return hash(tuple(self))

    def __repr__(self) -> str:
        return repr(tuple(self))

    def __reduce__(self):
        return Attributions, (self.names, self.values)


@dataclass(frozen=True)
class Recommendation:
    item_id: str
    score: float
    rank: int
    reason: Reason
    attributions: Attributions | tuple[tuple[str, float], ...] = ()
    """``(feature, attribution)`` pairs in the model's feature order; iterate, index or
    ``dict()`` them like a tuple of pairs."""
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
    request_id: str | None = field(default=None, compare=False)
    shortfall: int = 0
    """How many of the ``k`` items asked for could not be given (rules left too few)."""
    ignored_events: int = 0
    """Recent events the request carried on items the model does not know: not folded in, and
    counted here rather than dropped unsaid."""

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
                "stage": str(r.reason.stage),
                "evidence": "[" + ", ".join(e.to_json() for e in r.reason.evidence) + "]",
            }
            for r in self.items
        ]

    def to_dicts(self) -> list[dict[str, Any]]:
        return [{"user_id": self.user_id, **r.to_dict()} for r in self.items]
