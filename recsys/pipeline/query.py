"""Building a :class:`~recsys.types.Query` from the keyword arguments callers use."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd

from recsys.rules.filters import parse
from recsys.types import Event, Query

CONTEXT_KEYS = frozenset({"time", "basket"})


def to_epoch(when: datetime | pd.Timestamp | str | int | None) -> int | None:
    """Unix seconds of a request time (naive times are UTC)."""
    if when is None:
        return None
    if isinstance(when, int | np.integer):
        return int(when)
    ts = pd.Timestamp(when)
    return int((ts.tz_localize("UTC") if ts.tzinfo is None else ts).timestamp())


def make_query(
    user_id: str,
    k: int = 10,
    *,
    exclude: Iterable[str] = (),
    as_of: datetime | pd.Timestamp | str | int | None = None,
    personalized: bool = True,
    rerank: Any = None,
    context: Mapping[str, Any] | None = None,
    request_id: str | None = None,
    events: Iterable[Event | Mapping[str, Any]] = (),
    filters: str | Iterable[str] | Mapping[str, Iterable[str]] | None = None,
) -> Query:
    """``context`` describes the request: ``time`` (as ``as_of``: what "now" is for trending
    and re-buy cycles) and ``basket`` (item ids already in the basket, left out). ``filters``:
    expressions every item must match, or ``{"include": [...], "exclude": [...]}``."""
    if context:
        unknown = sorted(set(context) - CONTEXT_KEYS)
        if unknown:
            raise ValueError(f"unknown context key(s) {unknown}; known: {sorted(CONTEXT_KEYS)}")
        if "time" in context:
            if as_of is not None:
                raise ValueError("give the request time once: as_of= or context['time']")
            as_of = context["time"]
        exclude = [*exclude, *context.get("basket", ())]
    evs = tuple(to_event(e) for e in events)
    include, excl = filter_lists(filters)
    return Query(
        str(user_id), k, to_epoch(as_of), tuple(exclude), personalized, rerank, request_id, evs,
        include, excl,
    )  # fmt: skip


def filter_lists(
    filters: str | Iterable[str] | Mapping[str, Iterable[str]] | None,
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(include, exclude) expressions of a call's ``filters``, each parsed (a bad one raises a
    :class:`~recsys.rules.filters.FilterError` naming its column)."""
    if filters is None:
        return (), ()
    if isinstance(filters, str):
        include, excl = (filters,), ()
    elif isinstance(filters, Mapping):
        unknown = sorted(set(filters) - {"include", "exclude"})
        if unknown:
            raise ValueError(f"unknown filters key(s) {unknown}; known: ['exclude', 'include']")
        one = [filters.get("include", ()), filters.get("exclude", ())]
        include, excl = ((f,) if isinstance(f, str) else tuple(f) for f in one)
    else:
        include, excl = tuple(filters), ()
    for f in (*include, *excl):
        parse(f)
    return tuple(include), tuple(excl)


def to_event(e: Event | Mapping[str, Any]) -> Event:
    """An :class:`~recsys.types.Event` from itself or ``{"item_id", "event", "time"}`` (time as
    ``as_of``: ISO-8601 or Unix seconds)."""
    if isinstance(e, Event):
        return e
    if not isinstance(e, Mapping) or not {"item_id", "event", "time"} <= set(e):
        raise ValueError(f"a recent event needs item_id, event and time; got {e!r}")
    return Event(str(e["item_id"]), str(e["event"]), to_epoch(e["time"]))
