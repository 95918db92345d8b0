"""Fitted state that features read: history, catalog, collaborative factors and shop-wide counts.

Everything here is derived from minimized data only. Shop-wide counts are recomputed from the
history on load, so an artifact stores only the history, the catalog and the factors.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
import pandas as pd
import scipy.sparse as sp

from recsys.candidates.implicit_adapter import ImplicitModel
from recsys.data.schema import EVENTS
from recsys.features import fresh as fresh_events
from recsys.features.fresh import FreshEvents
from recsys.features.history import DAY, EVENT_CODE, EVENT_WEIGHT, Catalog, History
from recsys.features.lazy import build_cached
from recsys.features.shop import ShopStats
from recsys.features.stats import Cooccurrence, csr_find

SIGNAL_ORDER = ("purchase", "rating", "cart", "view")
"""The strongest event type a data set has is the one shop-wide counts (trending) count."""
TRENDING_DAYS = 30
REBUY_MIN_BUYERS = 3
REBUY_MIN_SHARE = 0.1
RATING_PRIOR_WEIGHT = 10.0
MAX_NEIGHBORS = 500
"""Co-occurrence neighbours kept per item (the largest counts)."""


@dataclass
class FeatureContext:
    """What the features of one model see."""

    history: History
    catalog: Catalog
    collab: ImplicitModel
    cooc: Cooccurrence | None = None
    """Precomputed at fit time (built on first use when not given)."""
    shop: ShopStats | None = None
    """Shop-wide numbers over every retained row: what reasons state (None: not known)."""
    seen: sp.csr_matrix | None = None
    """Users x items: every item each user interacted with in the retention window (the seen
    memory; None: only the history the model learned from)."""
    _trend_cache: dict[int, np.ndarray] = field(default_factory=dict, repr=False)
    _rank_cache: dict[object, tuple[np.ndarray, ...]] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        if self.cooc is None:
            self.cooc = Cooccurrence.build(self.user_items, MAX_NEIGHBORS)

    def __getstate__(self) -> dict:
        # derived caches are rebuilt where the context lands (a worker process)
        keep = ("history", "catalog", "collab", "cooc", "shop", "seen")
        return {k: self.__dict__[k] for k in keep}

    def seen_items(self, u: int) -> np.ndarray:
        """Items user ``u`` interacted with in the retention window (the model's history too)."""
        if u < 0 or self.seen is None:
            return np.empty(0, dtype=np.int64)
        return self.seen.indices[self.seen.indptr[u] : self.seen.indptr[u + 1]].astype(np.int64)

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._trend_cache, self._rank_cache = {}, {}

    # --- shop-wide counts -------------------------------------------------------------------
    @cached_property
    def signal_event(self) -> str:
        present = self.history.events_present
        return next((e for e in SIGNAL_ORDER if e in present), "view")

    @cached_property
    def confidence(self) -> sp.csr_matrix:
        """User x item confidence (event weights summed): what the collaborative model fits."""
        return self.history.matrix()

    def warm(self) -> None:
        """Build every table this context, its catalogue, history and shop-wide numbers build on
        first use (``Pipeline.warm`` runs a request too, for the per-day counts)."""
        for part in (self, self.catalog, self.history, self.history.users, self.catalog.items):
            build_cached(part)  # the id look-ups too: the first known customer builds them
        if self.shop is not None:
            self.shop.warm()

    def user_confidence(self, u: int, items: np.ndarray) -> np.ndarray:
        """Confidence of user ``u`` on each of ``items`` (0 where none): one CSR row, no copy."""
        m = self.confidence
        lo, hi = m.indptr[u], m.indptr[u + 1]
        idx = m.indices[lo:hi]
        if not len(idx):
            return np.zeros(len(items))
        pos = np.minimum(np.searchsorted(idx, items), len(idx) - 1)
        return np.where(idx[pos] == items, m.data[lo:hi][pos], 0.0).astype(np.float64)

    @cached_property
    def user_items(self) -> sp.csr_matrix:
        """Binary user x item matrix (any event)."""
        m = self.confidence.copy()
        m.data[:] = 1.0
        return m

    @cached_property
    def item_users(self) -> sp.csc_matrix:
        return self.user_items.tocsc()

    @cached_property
    def customers(self) -> np.ndarray:
        """Distinct users with any event, per item."""
        return np.diff(self.item_users.indptr).astype(float)

    @cached_property
    def _signal(self) -> tuple[np.ndarray, np.ndarray]:
        mask = self.history.event == EVENT_CODE[self.signal_event]
        ts, it = self.history.ts[mask], self.history.item[mask]
        order = np.argsort(ts, kind="stable")
        return ts[order], it[order]

    def trending(self, as_of: int) -> tuple[np.ndarray, int]:
        """Signal events per item in the 30 days before the day of ``as_of``; and that day."""
        day = int(as_of // DAY * DAY)
        hit = self._trend_cache.get(day)
        if hit is None:
            ts, it = self._signal
            lo, hi = np.searchsorted(ts, [day - TRENDING_DAYS * DAY, day])
            hit = np.bincount(it[lo:hi], minlength=len(self.catalog.items)).astype(float)
            if len(self._trend_cache) * len(hit) > 50_000_000:
                self._trend_cache.clear()
                self._rank_cache.clear()
            self._trend_cache[day] = hit
        return hit, day

    def trending_items(self, as_of: int) -> tuple[np.ndarray, np.ndarray]:
        """The items chosen in :meth:`trending`'s window: in catalogue order, and most chosen
        first (ties: catalogue order)."""
        counts, day = self.trending(as_of)
        hit = self._rank_cache.get(day)
        if hit is None:
            some = np.flatnonzero(counts > 0)
            hit = self._rank_cache[day] = (some, some[np.argsort(-counts[some], kind="stable")])
        return hit

    def trending_ranked(self, as_of: int) -> tuple[np.ndarray, np.ndarray, int]:
        """What the non-personalized list ranks by: per item its trending count (the shop-wide
        numbers its reasons state, when the model has them); the items with a count, most
        chosen first (ties by item id: the same list whichever items are left out); the day.
        The order is computed once per day, not once per visitor (both arrays read-only)."""
        counts, day = (
            self.shop.trending(as_of, TRENDING_DAYS)
            if self.shop is not None
            else self.trending(as_of)
        )
        hit = self._rank_cache.get(("by_id", day))
        if hit is None or hit[0] is not counts:  # the counts are cached by day where they are made
            some = np.flatnonzero(counts > 0)
            ids = self.catalog.items.ids[some].astype(str)
            order = some[np.lexsort((ids, -counts[some]))]
            order.setflags(write=False)  # shared by every visitor of the day
            stale = [k for k in self._rank_cache if isinstance(k, tuple)]
            if len(stale) >= 8:  # a server asks for today, an evaluation replay day after day
                for k in stale:
                    del self._rank_cache[k]
            hit = self._rank_cache[("by_id", day)] = (counts, order)
        return hit[0], hit[1], day

    @cached_property
    def has_ratings(self) -> bool:
        return "rating" in self.history.events_present

    @cached_property
    def rating_stats(self) -> tuple[np.ndarray, np.ndarray, float]:
        """(sum, count) of ratings per item, and the global mean rating."""
        m = (self.history.event == EVENT_CODE["rating"]) & np.isfinite(self.history.value)
        n_items = len(self.catalog.items)
        s = np.bincount(self.history.item[m], weights=self.history.value[m], minlength=n_items)
        c = np.bincount(self.history.item[m], minlength=n_items).astype(float)
        mean = float(s.sum() / c.sum()) if c.sum() else 0.0
        return s, c, mean

    @cached_property
    def has_purchases(self) -> bool:
        return "purchase" in self.history.events_present

    @cached_property
    def rebuy(self) -> tuple[np.ndarray, np.ndarray]:
        """Per item: whether customers buy it again, and the median days between purchases."""
        n_items = len(self.catalog.items)
        h = self.history
        m = h.event == EVENT_CODE["purchase"]
        u = h.user_of_event()[m]
        it, ts = h.item[m], h.ts[m]
        if not len(it):
            return np.zeros(n_items, bool), np.full(n_items, np.nan)
        df = pd.DataFrame({"u": u, "i": it, "t": ts}).sort_values(["u", "i", "t"])
        df["gap"] = df.groupby(["u", "i"])["t"].diff() / DAY
        per = df.groupby(["u", "i"]).size()
        buyers = per.groupby(level="i").size()
        again = (per >= 2).groupby(level="i").sum()
        share = (again / buyers).reindex(range(n_items), fill_value=0).to_numpy()
        nb = buyers.reindex(range(n_items), fill_value=0).to_numpy()
        gaps = df[df["gap"] >= 1].groupby("i")["gap"].median().reindex(range(n_items)).to_numpy()
        return (share >= REBUY_MIN_SHARE) & (nb >= REBUY_MIN_BUYERS), gaps

    @cached_property
    def cutoff(self) -> int:
        """The newest event time: the model's 'now' when no request time is given."""
        return int(self.history.ts.max()) if len(self.history.ts) else 0

    @cached_property
    def item_factors64(self) -> np.ndarray:
        """Item factors in float64: a user's scores come out the same whether computed alone
        or in a block (the products are exact; float32 sums would depend on the BLAS kernel)."""
        return self.collab.item_factors_.astype(np.float64)

    @cached_property
    def brand_codes(self) -> tuple[np.ndarray, int]:
        """Per item, its brand's code (-1: no brand); and the number of brands."""
        b = self.catalog.brand
        if b is None:
            return np.full(len(self.catalog.items), -1, dtype=np.int64), 0
        names, codes = np.unique(b.astype(str), return_inverse=True)
        codes = np.where(b == "", -1, codes).astype(np.int64)
        return codes, len(names)

    # --- one user ---------------------------------------------------------------------------
    def user_state(
        self,
        u: int,
        as_of: int | None = None,
        *,
        drop: np.ndarray | None = None,
        fresh: FreshEvents | None = None,
    ) -> UserState:
        """Facts about user ``u`` at ``as_of``; ``drop`` removes items from their history (the
        collaborative vector is then re-solved from what remains: counterfactual checks)."""
        return UserState.build(
            self, u, self.cutoff if as_of is None else as_of, drop=drop, fresh=fresh
        )


@dataclass
class UserState:
    """Per-request facts about one user, computed once and shared by all features."""

    u: int
    as_of: int
    items: np.ndarray
    """Distinct items of the user's history, most recent first."""
    last_ts: np.ndarray
    """When each of ``items`` was last touched."""
    last_event: np.ndarray
    vector: np.ndarray
    """The user's collaborative factor (zeros without history)."""
    category_counts: np.ndarray
    brand_counts: dict[str, int]
    price_median: float
    last_purchase: dict[int, int]
    seen: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=np.int64))
    """Every item the user interacted with in the retention window (the seen memory)."""
    key: str | None = None
    """The user's id in the model (a pseudonym), ``None`` for a visitor we do not know."""
    cache: dict = field(default_factory=dict, repr=False)
    """Per-request memo shared by evidence functions (e.g. the collaborative explainer)."""

    @classmethod
    def build(
        cls,
        ctx: FeatureContext,
        u: int,
        as_of: int,
        drop: np.ndarray | None = None,
        fresh: FreshEvents | None = None,
    ) -> UserState:
        """``fresh``: a request's recent events, merged into the history; the collaborative
        vector is then folded in from both (:mod:`recsys.features.fresh`)."""
        h = ctx.history
        collab = ctx.collab
        if u >= 0:
            s = h.span(u)
            items_all, ts_all, ev_all = h.item[s], h.ts[s], h.event[s]
            vector = collab.user_factors_[u]
            if drop is not None:
                keep = ~np.isin(items_all, drop)
                items_all, ts_all, ev_all = items_all[keep], ts_all[keep], ev_all[keep]
                hist = np.unique(items_all)
                conf = np.asarray(ctx.confidence[u, hist].toarray()).ravel()
                vector = collab.user_vector(hist, conf)
        else:
            items_all = ts_all = ev_all = np.empty(0, dtype=np.int64)
            vector = np.zeros(collab.item_factors_.shape[1], dtype=np.float32)
        fresh_conf = None
        if fresh is not None and len(fresh[0]):  # a request's recent events (issue #13)
            items_all, ts_all, ev_all = fresh_events.merge(items_all, ts_all, ev_all, fresh)
            vector = fresh_events.fold_in(collab, items_all, ev_all, vector)
            fresh_conf = fresh_events.confidences(items_all, ev_all)
        rev_items, rev_ts, rev_ev = items_all[::-1], ts_all[::-1], ev_all[::-1]
        first = _first_positions(rev_items)
        items = rev_items[first]
        cat = ctx.catalog
        cc = cat.category_counts(items)
        brands: dict[str, int] = {}
        if cat.brand is not None:
            for b in cat.brand[items]:
                if b:
                    brands[b] = brands.get(b, 0) + 1
        price = _median(cat.price[items]) if cat.price is not None and len(items) else np.nan
        bought = ev_all == EVENT_CODE["purchase"]
        last_purchase = dict(zip(items_all[bought].tolist(), ts_all[bought].tolist(), strict=True))
        st = cls(
            u=u,
            as_of=as_of,
            items=items,
            last_ts=rev_ts[first],
            last_event=rev_ev[first],
            vector=vector,
            category_counts=cc,
            brand_counts=brands,
            price_median=float(price) if np.isfinite(price) else np.nan,
            last_purchase=last_purchase,
            seen=ctx.seen_items(u),
            key=str(h.users.ids[u]) if u >= 0 else None,
        )
        if fresh_conf is not None:
            st.cache["fresh_confidence"] = fresh_conf
        return st

    @property
    def n_items(self) -> int:
        return len(self.items)

    def recent(self, n: int) -> np.ndarray:
        return self.items[:n]

    def event_name(self, k: int) -> str:
        return EVENTS[int(self.last_event[k])]


def _first_positions(items: np.ndarray) -> np.ndarray:
    """Where each distinct item first occurs, in order of position (``np.sort`` of
    ``np.unique(items, return_index=True)[1]``); a short history by one pass of a dict."""
    if len(items) > 256:
        return np.sort(np.unique(items, return_index=True)[1])
    first: dict[int, int] = {}
    for pos, item in enumerate(items.tolist()):
        first.setdefault(item, pos)
    return np.fromiter(first.values(), dtype=np.int64, count=len(first))


def _median(x: np.ndarray) -> float:
    """``np.nanmedian(x)``, the same number from one sort (NaNs sort last): a user's few prices
    cost less this way than through numpy's general median."""
    s = np.sort(x)
    n = len(s)
    if n and s[-1] != s[-1]:  # NaN: leave them out
        n -= int(np.count_nonzero(np.isnan(s)))
    if n == 0:
        return np.nan
    m = n // 2
    return float(s[m]) if n % 2 else float((s[m - 1] + s[m]) / 2)


@dataclass
class UserBlock:
    """Several users scored together: one matrix product gives every collaborative score."""

    states: list[UserState]
    scores: np.ndarray
    """Users x items collaborative scores (float32); with an approximate index, users x 0:
    only the candidates are scored (:meth:`fill`), read through :meth:`score_of`."""
    mean: np.ndarray
    std: np.ndarray
    cache: dict = field(default_factory=dict, repr=False)
    exact: bool = True
    """False with an approximate index: ``mean``/``std`` then come in closed form from the
    factors."""
    _filled: dict[int, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict, repr=False)
    """Per user (approximate index): the scored candidates (sorted) and their scores."""
    _lookup: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None = field(
        default=None, repr=False
    )

    @classmethod
    def build(cls, ctx: FeatureContext, states: list[UserState]) -> UserBlock:
        if states and ctx.collab.index_ is not None:  # approximate retrieval (issue #13)
            V = np.array([st.vector for st in states], dtype=np.float64)
            mean, std = ctx.collab.score_moments(V)
            scores = np.empty((len(states), 0), dtype=np.float32)
            return cls(states, scores, mean, np.where(std > 0, std, 1.0), exact=False)
        if states:
            V = np.array([st.vector for st in states], dtype=np.float64)
            scores = (V @ ctx.item_factors64.T).astype(np.float32)
        else:
            scores = np.zeros((0, len(ctx.catalog.items)), dtype=np.float32)
        mean = scores.mean(axis=1, dtype=np.float64)
        std = scores.std(axis=1, dtype=np.float64)
        return cls(states, scores, mean, np.where(std > 0, std, 1.0))

    def __len__(self) -> int:
        return len(self.states)

    def fill(self, ctx: FeatureContext, cands: list[np.ndarray]) -> None:
        """Compute the collaborative scores of each user's candidates (approximate retrieval
        leaves the others unscored); exact blocks have them all already. A sorted candidate
        array is kept as it is, not copied: candidate arrays are never changed in place."""
        if self.exact:
            return
        from recsys.features import kernels  # numba loads on first use, not at import

        Y = ctx.item_factors64
        for p, (st, c) in enumerate(zip(self.states, cands, strict=True)):
            had = self._filled.get(p)
            if had is not None and had[0] is c:
                continue  # the very array filled before (candidates are sorted and unique)
            c = np.asarray(c, dtype=np.int64)
            if len(c) > 1 and not (c[1:] > c[:-1]).all():
                c = np.unique(c)
            if had is not None and np.array_equal(had[0], c):
                continue  # the same candidates: the same scores
            self._filled[p] = (c, kernels.row_dots(Y, c, st.vector).astype(np.float32))
            self._lookup = None

    def score_of(self, rows: np.ndarray, items: np.ndarray) -> np.ndarray:
        """Collaborative scores (float32) of ``items[r]`` for user ``rows[r]``; NaN where
        an approximate block never scored the pair. Read-only: it may be the block's own
        array."""
        if self.exact:
            return self.scores[rows, items]
        if self._lookup is None:  # the filled pairs as a CSR layout over the block's users
            empty = (np.empty(0, dtype=np.int64), np.empty(0, dtype=np.float32))
            parts = [self._filled.get(p, empty) for p in range(len(self.states))]
            lens = [len(c) for c, _ in parts]
            values = np.concatenate([v for _, v in parts]).astype(np.float32)
            values.setflags(write=False)
            self._lookup = (
                np.concatenate([[0], np.cumsum(lens)]),
                np.concatenate([c for c, _ in parts]).astype(np.int64),
                values,
                np.repeat(np.arange(len(parts)), lens),
            )
        indptr, indices, values, owner = self._lookup
        if np.array_equal(items, indices) and np.array_equal(rows, owner):
            return values  # the scorer asks for exactly the filled pairs, in their order
        hit, at = csr_find(indptr, indices, rows, items)
        out = np.full(len(hit), np.nan, dtype=np.float32)
        out[hit] = values[at[hit]]
        return out

    @property
    def as_of(self) -> np.ndarray:
        return np.array([st.as_of for st in self.states], dtype=np.int64)


__all__ = ["EVENT_WEIGHT", "FeatureContext", "UserBlock", "UserState"]
