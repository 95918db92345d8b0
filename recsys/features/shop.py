"""Shop-wide numbers that reasons state, counted over every retained row, and the seen memory.

The model learns from a capped, weak-rating-free history; a number a customer reads ("bought by
120 customers", "rated 3.9 on average") must not be biased by that, so it is counted over every
interaction the purpose retains (:attr:`~recsys.privacy.minimize.MinimizedData.retained`). Only
the events reasons count are kept (the signal event and ratings), with pseudonymous users, so
erasure can remove a customer from them. The seen memory is the set of items each customer
interacted with in the retention window: candidates never include them (re-buys excepted).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
import pandas as pd
import scipy.sparse as sp

from recsys.data.schema import EVENTS
from recsys.features.history import DAY, EVENT_CODE, Vocabulary
from recsys.features.lazy import build_cached
from recsys.features.stats import Cooccurrence, unique_ints

SIGNAL_ORDER = ("purchase", "rating", "cart", "view")
"""The strongest event type a data set has is the one shop-wide numbers count."""
GOOD_RATING = 4.0
"""With ratings as the signal, a rating at or above this is what "rated 4 or more" counts."""
MAX_NEIGHBORS = 500
_DERIVED = ("_cache", "_user_rows", "_signal_by_time")
"""Look-ups rebuilt where they are used (a Dask worker), never pickled."""


@dataclass
class ShopStats:
    """Signal and rating events of every retained row, and the numbers derived from them."""

    users: Vocabulary
    """Pseudonyms of the customers these events belong to."""
    user: np.ndarray
    item: np.ndarray
    ts: np.ndarray
    event: np.ndarray
    value: np.ndarray
    n_items: int
    signal: str
    good_rating: float = GOOD_RATING
    cooc_table: Cooccurrence | None = None
    """Per pair of items, customers who did the signal event on both (built on first use)."""
    _cache: dict = field(default_factory=dict, repr=False)

    @classmethod
    def from_frame(
        cls, retained: pd.DataFrame, items: Vocabulary, good_rating: float = GOOD_RATING
    ) -> ShopStats:
        present = set(retained["event"].unique())
        signal = next((e for e in SIGNAL_ORDER if e in present), "view")
        keep = retained["event"].isin([signal, "rating"])
        rows = retained.loc[keep]
        users = Vocabulary(np.sort(rows["user_id"].unique()).astype(object))
        item = items.index(rows["item_id"])
        ok = item >= 0
        value = (
            rows["value"].to_numpy(dtype=float) if "value" in rows else np.full(len(rows), np.nan)
        )
        return cls(
            users=users,
            user=users.index(rows["user_id"])[ok].astype(np.int32),
            item=item[ok].astype(np.int32),
            ts=rows["timestamp"].to_numpy(dtype="datetime64[s]").astype(np.int64)[ok],
            event=rows["event"].map(EVENT_CODE).to_numpy(dtype=np.int8)[ok],
            value=value[ok],
            n_items=len(items),
            signal=signal,
            good_rating=good_rating,
        )

    def __getstate__(self) -> dict:
        # derived look-ups are rebuilt where they are used (a Dask worker), not shipped
        return {k: v for k, v in self.__dict__.items() if k not in _DERIVED}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._cache = {}

    # --- what the sentences count -----------------------------------------------------------
    @cached_property
    def is_signal(self) -> np.ndarray:
        """Per event: does it count ("bought", or "rated 4 or more" when ratings are the signal)?"""
        m = self.event == EVENT_CODE[self.signal]
        if self.signal == "rating":
            m &= self.value >= self.good_rating
        return m

    @cached_property
    def signal_matrix(self) -> sp.csr_matrix:
        """Customers x items, 1 where the customer did the signal event on the item."""
        m = self.is_signal
        X = sp.csr_matrix(
            (np.ones(int(m.sum()), np.float32), (self.user[m], self.item[m])),
            shape=(len(self.users), self.n_items),
        )
        X.sum_duplicates()
        X.data[:] = 1.0
        return X

    @cached_property
    def customers(self) -> np.ndarray:
        """Per item: distinct customers who did the signal event on it."""
        return np.diff(self.signal_matrix.tocsc().indptr).astype(np.int64)

    @property
    def cooc(self) -> Cooccurrence:
        """Per pair of items: customers who did the signal event on both."""
        if self.cooc_table is None:
            self.cooc_table = Cooccurrence.build(self.signal_matrix, MAX_NEIGHBORS)
        return self.cooc_table

    @cached_property
    def ratings(self) -> tuple[np.ndarray, np.ndarray]:
        """Per item: sum and number of every retained rating."""
        m = (self.event == EVENT_CODE["rating"]) & np.isfinite(self.value)
        s = np.bincount(self.item[m], weights=self.value[m], minlength=self.n_items)
        c = np.bincount(self.item[m], minlength=self.n_items).astype(np.int64)
        return s, c

    def trending(self, as_of: int, days: int) -> tuple[np.ndarray, int]:
        """Per item: distinct signal customers in the ``days`` before the day of ``as_of``."""
        day = int(as_of // DAY * DAY)
        hit = self._cache.get((day, days))
        if hit is None:  # the window's events only: a new day costs what its window holds
            ts, order = self._signal_by_time
            lo, hi = np.searchsorted(ts, [day - days * DAY, day])
            m = order[lo:hi]
            pairs = unique_ints(self.item[m].astype(np.int64) * len(self.users) + self.user[m])
            hit = np.bincount(pairs // max(len(self.users), 1), minlength=self.n_items)
            if len(self._cache) > 64:
                self._cache.clear()
            self._cache[(day, days)] = hit
        return hit, day

    @cached_property
    def _signal_by_time(self) -> tuple[np.ndarray, np.ndarray]:
        """The signal events' times in order, and the events in that order (stable): a day's
        trending counts read that day's window instead of a pass over every retained event."""
        idx = np.flatnonzero(self.is_signal)
        order = idx[np.argsort(self.ts[idx], kind="stable")]
        small = len(self.ts) < 2**31  # half the memory of the order, as a million shops need
        return self.ts[order], order.astype(np.int32) if small else order

    def warm(self) -> None:
        """Build the look-ups requests would otherwise build on first use (the signal matrix,
        the per-customer and by-time indexes, the co-occurrence table, the customer look-up)."""
        build_cached(self)
        build_cached(self.users)
        _ = self.cooc

    # --- one customer -------------------------------------------------------------------------
    def items_of(self, key: str) -> np.ndarray:
        """The items customer ``key`` did the signal event on (sorted; none if unknown)."""
        u = self.users.get(key)
        if u < 0:
            return np.empty(0, dtype=np.int32)
        X = self.signal_matrix  # canonical CSR: each row's indices are sorted
        return X.indices[X.indptr[u] : X.indptr[u + 1]]

    def did(self, key: str, items: np.ndarray) -> np.ndarray:
        """Per item of ``items``: did customer ``key`` do the signal event on it?"""
        row = self.items_of(key)
        items = np.asarray(items)
        if not len(row):
            return np.zeros(len(items), dtype=bool)
        pos = np.minimum(np.searchsorted(row, items), len(row) - 1)
        return row[pos] == items

    def did_pairs(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        """Per ``n``: did customer ``users[n]`` (an index of :attr:`users`, -1: none) do the
        signal event on ``items[n]``? :meth:`did` for the pairs of many customers at once."""
        from recsys.features import kernels  # numba loads on the first look-up, not at import

        X = self.signal_matrix  # canonical CSR: each row's indices are sorted
        return kernels.csr_has(X.indptr, X.indices, users, items)

    @cached_property
    def _user_rows(self) -> tuple[np.ndarray, np.ndarray]:
        """The events grouped by customer (positions, in event order within a customer) and
        where each customer's begin: one customer's look-up reads their own events, not a
        pass over every customer's (tens of millions at a million customers)."""
        order = np.argsort(self.user, kind="stable")
        starts = np.zeros(len(self.users) + 1, dtype=np.int64)
        np.cumsum(np.bincount(self.user, minlength=len(self.users)), out=starts[1:])
        return order, starts

    def _events_of(self, u: int) -> np.ndarray:
        order, starts = self._user_rows
        return order[starts[u] : starts[u + 1]]

    def did_between(self, key: str, item: int, start: int, end: int) -> bool:
        """Did customer ``key`` do the signal event on ``item`` in ``[start, end)``?"""
        u = self.users.get(key)
        if u < 0:
            return False
        rows = self._events_of(u)
        rows = rows[(self.item[rows] == item) & self.is_signal[rows]]
        return bool(((self.ts[rows] >= start) & (self.ts[rows] < end)).any())

    def own_rating(self, key: str, item: int) -> tuple[float, int]:
        """Sum and number of customer ``key``'s own ratings of ``item``."""
        u = self.users.get(key)
        if u < 0:
            return 0.0, 0
        rows = self._events_of(u)
        rows = rows[(self.item[rows] == item) & (self.event[rows] == EVENT_CODE["rating"])]
        return float(np.nansum(self.value[rows])), len(rows)

    @property
    def counted(self) -> str:
        """What a count counts, as evidence records it: ``purchase`` or ``rating>=4``."""
        return f"rating>={self.good_rating:g}" if self.signal == "rating" else self.signal

    def without(self, key: str) -> ShopStats:
        """The same numbers with customer ``key`` erased."""
        u = self.users.get(key)
        if u < 0:
            return self
        keep = self.user != u
        users = Vocabulary(np.delete(self.users.ids, u))
        user = self.user[keep]
        return ShopStats(
            users, np.where(user > u, user - 1, user), self.item[keep], self.ts[keep],
            self.event[keep], self.value[keep], self.n_items, self.signal, self.good_rating,
        )  # fmt: skip

    # --- persistence ------------------------------------------------------------------------
    def to_arrays(self) -> dict[str, np.ndarray]:
        return {
            "shop_user_ids": self.users.ids.astype(str),
            "shop_user": self.user,
            "shop_item": self.item,
            "shop_ts": self.ts,
            "shop_event": self.event,
            "shop_value": self.value,
            "shop_meta": np.array([self.signal, f"{self.good_rating!r}", str(self.n_items)]),
            **self.cooc.to_arrays("shop_cooc"),
        }

    @classmethod
    def from_arrays(cls, a: dict[str, np.ndarray]) -> ShopStats:
        signal, good, n_items = (str(x) for x in a["shop_meta"])
        if signal not in EVENTS:
            raise ValueError(f"unknown signal event {signal!r}")
        return cls(
            Vocabulary(a["shop_user_ids"].astype(object)), a["shop_user"], a["shop_item"],
            a["shop_ts"], a["shop_event"], a["shop_value"], int(n_items), signal, float(good),
            Cooccurrence.from_arrays(a, "shop_cooc"),
        )  # fmt: skip


def seen_matrix(retained: pd.DataFrame, users: Vocabulary, items: Vocabulary) -> sp.csr_matrix:
    """Users x items, 1 where the user interacted with the item in any retained row."""
    u = users.index(retained["user_id"])
    i = items.index(retained["item_id"])
    ok = (u >= 0) & (i >= 0)
    X = sp.csr_matrix(
        (np.ones(int(ok.sum()), np.int8), (u[ok], i[ok])), shape=(len(users), len(items))
    )
    X.sum_duplicates()
    X.data[:] = 1
    return X
