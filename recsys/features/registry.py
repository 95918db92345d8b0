"""Named, human-meaningful features of a (user, item) pair, each with the facts behind its value.

A feature declares the fields it reads (``table.column``); :func:`check_features` refuses any
feature that reads a protected attribute or a field the purpose policy does not allow, so a
protected attribute can never become a model input.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from recsys.features.context import (
    RATING_PRIOR_WEIGHT,
    TRENDING_DAYS,
    FeatureContext,
    UserBlock,
    UserState,
)
from recsys.features.fresh import confidence_of
from recsys.features.history import DAY
from recsys.features.shop import ShopStats
from recsys.privacy.policy import Policy, ProtectedAttributeError
from recsys.types import Evidence, Fact

Compute = Callable[[FeatureContext, UserBlock, np.ndarray, np.ndarray], np.ndarray]
"""``(ctx, block, row_user, cand) -> values``: one value per candidate row; ``row_user[r]`` is the
position in ``block`` of the user that row ``r`` belongs to. Features are computed for every
candidate of a block of users at once, so a request and a batch run the same code."""
Explain = Callable[[FeatureContext, UserState, int], tuple[Evidence, ...]]
ExplainMany = Callable[[FeatureContext, UserState, np.ndarray], Sequence[tuple[Evidence, ...]]]
"""Evidence for several items of one user's list at once (where one solve serves them all)."""
ExplainBlock = Callable[
    [FeatureContext, Sequence[UserState], Sequence[np.ndarray]],
    list[Sequence[tuple[Evidence, ...]]],
]
"""Evidence for the lists of a block of users at once: per user, per item of their list."""


class LazyEvidence(Sequence[tuple[Evidence, ...]]):
    """Per item of a list, its evidence, built on first read: a reason reads only the evidence
    of the features it names, so most of what is computed for a block is never turned into
    :class:`~recsys.types.Evidence` objects."""

    __slots__ = ("_make", "_memo")

    def __init__(self, n: int, make: Callable[[int], tuple[Evidence, ...]]) -> None:
        self._make = make
        self._memo: list[tuple[Evidence, ...] | None] = [None] * n

    def __len__(self) -> int:
        return len(self._memo)

    def __getitem__(self, r):  # type: ignore[override]
        if isinstance(r, slice):
            return [self[i] for i in range(*r.indices(len(self)))]
        hit = self._memo[r]
        if hit is None:
            hit = self._memo[r] = self._make(r if r >= 0 else r + len(self))
        return hit

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Sequence) and list(self) == list(other)

    __hash__ = None  # type: ignore[assignment]


@dataclass(frozen=True)
class Feature:
    name: str
    group: str
    """The reason template this feature speaks through (several features may share one)."""
    description: str
    reads: frozenset[str]
    compute: Compute
    evidence: Explain
    available: Callable[[FeatureContext], bool] = lambda ctx: True
    evidence_many: ExplainMany | None = None
    """The same facts as ``evidence``, for many items at once; used when the explainer needs
    this feature's evidence for a list."""
    evidence_block: ExplainBlock | None = None
    """The same facts for the lists of a block of users at once (array look-ups over the whole
    block); used first when the explainer has a block."""

    def __reduce__(self) -> tuple:
        # a feature is a registry entry: it pickles by name, so a model ships to worker processes
        return (feature, (self.name,))


def _date(ts: int | float) -> str:
    return _day(int(ts) // DAY)


@functools.lru_cache(maxsize=4096)
def _day(day: int) -> str:
    return str(np.datetime64(day, "D"))


@functools.lru_cache(maxsize=1 << 16, typed=True)
def shared_evidence(
    fact: Fact,
    *,
    category: str | None = None,
    count: int | None = None,
    total: int | None = None,
    counted: str | None = None,
    others: bool | None = None,
) -> Evidence:
    """One :class:`~recsys.types.Evidence` per distinct value of the facts many customers'
    reasons state alike (customer counts, category shares, re-ranking notes). Evidence is
    immutable, so sharing an object changes nothing a caller sees; a batch builds fewer objects
    and keeps fewer for the garbage collector to walk. ``typed``: ``1`` and ``np.int64(1)`` are
    different keys, so a fact keeps the exact types it was built with."""
    return Evidence(
        fact=fact, category=category, count=count, total=total, counted=counted, others=others
    )


def _position(st: UserState, item: int) -> int:
    """Where ``item`` is in the user's distinct items: a scan of them as a list, made once per
    user (a reason cites a few items of a history: scans cost less than an index of it)."""
    items = st.cache.get("items_list")
    if items is None:
        items = st.cache["items_list"] = st.items.tolist()
    return items.index(int(item))


def _chose(ctx: FeatureContext, st: UserState, item: int, **kw) -> Evidence:
    k = _position(st, item)
    return Evidence(
        fact=kw.pop("fact"),
        item_id=str(ctx.catalog.items.ids[item]),
        date=_date(st.last_ts[k]),
        event=st.event_name(k),
        **kw,
    )


def _rows_of(lists: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The items of a block's lists as one array: ``(owner, items, starts)``, ``owner[n]`` the
    position of the user row ``n`` belongs to, ``starts[p]`` where user ``p``'s rows begin."""
    if len(lists) == 1:  # one request's list
        items = np.asarray(lists[0], dtype=np.int64)
        return np.zeros(len(items), dtype=np.int64), items, np.array([0, len(items)])
    lens = np.array([len(x) for x in lists], dtype=np.int64)
    items = np.concatenate([np.asarray(x, dtype=np.int64) for x in lists]) if len(lists) else []
    starts = np.concatenate([[0], np.cumsum(lens)]).astype(np.int64)
    return np.repeat(np.arange(len(lists)), lens), np.asarray(items, dtype=np.int64), starts


def _shop_users(ctx: FeatureContext, states: Sequence[UserState]) -> np.ndarray:
    """Per user of a block, their index in the shop-wide numbers (-1: not there, or no key)."""
    shop = ctx.shop
    assert shop is not None
    return np.array(
        [shop.users.get(st.key) if st.key is not None else -1 for st in states], dtype=np.int64
    )


def _segments(row_user: np.ndarray) -> list[tuple[int, slice]]:
    """``(user position, rows)`` for each user's run of rows (rows are grouped by user)."""
    if not len(row_user):
        return []
    if row_user[0] == row_user[-1]:  # one user (rows are grouped and in user order)
        return [(int(row_user[0]), slice(0, len(row_user)))]
    cut = np.flatnonzero(np.diff(row_user)) + 1
    starts = np.concatenate([[0], cut])
    ends = np.concatenate([cut, [len(row_user)]])
    return [(int(row_user[s]), slice(int(s), int(e))) for s, e in zip(starts, ends, strict=True)]


# --- collaborative ------------------------------------------------------------------------------
def collab_z(ctx: FeatureContext, b: UserBlock, row_user: np.ndarray, cand: np.ndarray):
    return (b.score_of(row_user, cand) - b.mean[row_user]) / b.std[row_user]


def collab_raw(ctx: FeatureContext, b: UserBlock, row_user: np.ndarray, cand: np.ndarray):
    return b.score_of(row_user, cand).astype(float)


def cooccurrence(ctx: FeatureContext, j: int, cand: np.ndarray) -> np.ndarray:
    """Customers who chose both item ``j`` and each candidate (the precomputed table)."""
    return ctx.cooc.lookup(int(j), np.asarray(cand))


def collab_evidence_block(
    ctx: FeatureContext, states: Sequence[UserState], lists: Sequence[np.ndarray]
) -> list[Sequence[tuple[Evidence, ...]]]:
    """Per item: the history item that adds most to its collaborative score (the exact ALS
    split) among the five that add most and that other customers (never the reader) also
    chose with it, with that count; else the taste profile. The split is solved per user; the
    five and their customer counts are found for the whole block in one compiled pass."""
    asked = [
        p
        for p, (st, items) in enumerate(zip(states, lists, strict=True))
        if st.n_items and len(items)
    ]
    hists = [states[p].items[:50] for p in asked]
    mine = [np.asarray(lists[p], dtype=np.int64) for p in asked]
    split = ctx.collab.split_many(
        hists, [_confidence(ctx, states[p], h) for p, h in zip(asked, hists, strict=True)], mine
    )
    shop = ctx.shop
    if shop is not None and asked:
        from recsys.features import kernels  # numba loads on first use, not at import

        did = shop.signal_matrix
        has, item_of, count_of = kernels.cited_history(
            split, hists, mine, _shop_users(ctx, [states[p] for p in asked]),
            (shop.cooc.indptr, shop.cooc.indices, shop.cooc.counts), (did.indptr, did.indices),
            COLLAB_CITE_TOP,
        )  # fmt: skip
    else:  # no shop-wide counts: nothing to cite but the taste profile
        n = sum(len(x) for x in mine)
        has, item_of, count_of = np.zeros(n, bool), np.full(n, -1), np.zeros(n)
    has_l, item_l, count_l = has.tolist(), item_of.tolist(), count_of.tolist()
    out: list[Sequence[tuple[Evidence, ...]]] = [[()] * len(x) for x in lists]
    at = 0
    for p, items in zip(asked, mine, strict=True):
        end = at + len(items)
        out[p] = _collab_column(ctx, states[p], has_l[at:end], item_l[at:end], count_l[at:end])
        at = end
    return out


COLLAB_CITE_TOP = 5
"""A collaborative reason cites one of the history items that add most to the item's score."""


def _confidence(ctx: FeatureContext, st: UserState, hist: np.ndarray) -> np.ndarray:
    """The user's confidence in each of ``hist`` (with a request's fresh events)."""
    conf = confidence_of(st, hist)
    if conf is None:
        conf = ctx.user_confidence(st.u, hist) if st.u >= 0 else np.ones(len(hist))
    return conf


def _collab_column(
    ctx: FeatureContext, st: UserState, has: list[bool], item_of: list[int], count_of: list[float]
) -> LazyEvidence:
    """One list's collaborative evidence: the cited history item and its count, else the
    taste profile."""

    def make(r: int) -> tuple[Evidence, ...]:
        if has[r]:
            return (_chose_together(ctx, st, item_of[r], int(count_of[r])),)
        return (shared_evidence(Fact.TASTE_PROFILE, count=st.n_items),)

    return LazyEvidence(len(has), make)


def collab_evidence_many(
    ctx: FeatureContext, st: UserState, items: np.ndarray
) -> Sequence[tuple[Evidence, ...]]:
    """:func:`collab_evidence_block` for one user's list."""
    return collab_evidence_block(ctx, [st], [np.asarray(items)])[0]


def _chose_together(ctx: FeatureContext, st: UserState, j: int, n: int) -> Evidence:
    assert ctx.shop is not None  # no count to cite without shop numbers
    return _chose(ctx, st, j, fact=Fact.CHOSEN_TOGETHER, count=n, counted=ctx.shop.counted)


def collab_evidence(ctx: FeatureContext, st: UserState, item: int) -> tuple[Evidence, ...]:
    return collab_evidence_many(ctx, st, np.array([item]))[0]


# --- similarity to what the user did last -------------------------------------------------------
def _recent_items(states: Sequence[UserState], n: int) -> np.ndarray:
    """Users x ``n``: each user's ``n`` most recent distinct items, most recent first, -1
    padding the end (the compiled kernels' layout of a block's recent items)."""
    out = np.full((len(states), n), -1, dtype=np.int64)
    for p, st in enumerate(states):
        r = st.recent(n)
        out[p, : len(r)] = r
    return out


def _sim_stats(ctx: FeatureContext, b: UserBlock, row_user: np.ndarray, cand: np.ndarray):
    """The three similarity features at once (3 x rows), from each candidate's cosines to the
    user's 10 most recent items: the mean over the 3 most recent, the highest, the mean of
    the 10 (NaN: no recent item); one compiled pass, with the cosines the "similar to"
    evidence reads."""
    key = ("sim_stats", id(row_user), id(cand))
    hit = b.cache.get(key)
    if hit is None:
        from recsys.features import kernels  # numba loads on first use, not at import

        recent = _recent_items(b.states, 10)
        unit = ctx.collab.item_unit_
        hit = b.cache[key] = kernels.recent_similarity(unit, recent, row_user, cand, 3)
    return hit


def sim_recent3(ctx, b, row_user, cand):
    return _sim_stats(ctx, b, row_user, cand)[0]


def sim_max10(ctx, b, row_user, cand):
    return _sim_stats(ctx, b, row_user, cand)[1]


def sim_mean10(ctx, b, row_user, cand):
    return _sim_stats(ctx, b, row_user, cand)[2]


def similar_evidence_block(
    ctx: FeatureContext, states: Sequence[UserState], lists: Sequence[np.ndarray]
) -> list[Sequence[tuple[Evidence, ...]]]:
    """Per item: of the user's 10 most recent items, the one whose collaborative vector is
    closest to it (the first on a tie; never the item itself), for a whole block at once."""
    from recsys.features import kernels  # numba loads on first use, not at import

    owner, items, starts = _rows_of(lists)
    recent = _recent_items(states, 10)
    best = kernels.most_similar(ctx.collab.item_unit_, recent, owner, items).tolist()

    def column(p: int) -> LazyEvidence:
        st, at = states[p], int(starts[p])

        def make(r: int) -> tuple[Evidence, ...]:
            j = best[at + r]
            return (_chose(ctx, st, j, fact=Fact.SIMILAR_TO),) if j >= 0 else ()

        return LazyEvidence(len(lists[p]), make)

    return [column(p) for p in range(len(states))]


def similar_evidence_many(
    ctx: FeatureContext, st: UserState, items: np.ndarray
) -> Sequence[tuple[Evidence, ...]]:
    return similar_evidence_block(ctx, [st], [np.asarray(items)])[0]


def similar_evidence(ctx: FeatureContext, st: UserState, item: int) -> tuple[Evidence, ...]:
    return similar_evidence_many(ctx, st, np.array([item]))[0]


def cooc_recent3(ctx: FeatureContext, b: UserBlock, row_user: np.ndarray, cand: np.ndarray):
    """Mean over the user's 3 most recent items of the customers who chose both it and the
    candidate, normalized by both items' customers (NaN: no recent item); compiled, one pass
    over the block's rows."""
    from recsys.features import kernels  # numba loads on first use, not at import

    recent = _recent_items(b.states, 3)
    cooc = ctx.cooc
    return kernels.cooc_mean(
        cooc.indptr, cooc.indices, cooc.counts, ctx.customers, recent, row_user, cand
    )


def cooc_evidence_block(
    ctx: FeatureContext, states: Sequence[UserState], lists: Sequence[np.ndarray]
) -> list[Sequence[tuple[Evidence, ...]]]:
    """Per item: the recent item (of the user's last 3) most other customers also chose with it,
    with that count (the first on a tie; none when no one did); one look-up of every (recent
    item, item) pair of the block at once."""
    owner, items, starts = _rows_of(lists)
    recent = _recent_items(states, 3)
    shop = ctx.shop
    if shop is not None and len(items):
        from recsys.features import kernels  # numba loads on first use, not at import

        did = shop.signal_matrix
        best, n = kernels.chosen_with(
            recent, owner, items, _shop_users(ctx, states),
            (shop.cooc.indptr, shop.cooc.indices, shop.cooc.counts), (did.indptr, did.indices),
        )  # fmt: skip
        best_item, best_n = best.tolist(), n.tolist()
    else:  # no shop-wide counts: nothing to cite
        best_item, best_n = [-1] * len(items), [0.0] * len(items)

    def column(p: int) -> LazyEvidence:
        st, at = states[p], int(starts[p])

        def make(r: int) -> tuple[Evidence, ...]:
            c = best_n[at + r]
            return (_chose_together(ctx, st, best_item[at + r], int(c)),) if c != 0 else ()

        return LazyEvidence(len(lists[p]), make)

    return [column(p) for p in range(len(states))]


def cooc_evidence_many(
    ctx: FeatureContext, st: UserState, items: np.ndarray
) -> Sequence[tuple[Evidence, ...]]:
    return cooc_evidence_block(ctx, [st], [np.asarray(items)])[0]


def cooc_evidence(ctx: FeatureContext, st: UserState, item: int) -> tuple[Evidence, ...]:
    return cooc_evidence_many(ctx, st, np.array([item]))[0]


# --- the user's own habits ----------------------------------------------------------------------
def category_affinity(ctx: FeatureContext, b: UserBlock, row_user: np.ndarray, cand: np.ndarray):
    n = np.array([st.n_items for st in b.states], dtype=float)
    share = np.array([st.category_counts for st in b.states]) / np.maximum(n, 1)[:, None]
    # the largest share among each candidate's categories (0 without any): the padded codes
    # give every candidate's categories as one row, so no sparse row selection is needed
    if not share.shape[1]:
        return np.zeros(len(cand))
    from recsys.features import kernels  # numba loads on first use, not at import

    out = kernels.best_share(share, row_user, ctx.catalog.category_codes[cand])
    return np.where(n[row_user] > 0, out, 0.0)


def category_evidence_block(
    ctx: FeatureContext, states: Sequence[UserState], lists: Sequence[np.ndarray]
) -> list[Sequence[tuple[Evidence, ...]]]:
    """Per item: of its categories, the one most of the user's items are in (the first on a
    tie), with that count; none when the user has no item in any of them."""
    owner, items, starts = _rows_of(lists)
    names = ctx.catalog.categories
    if not names or not len(items):
        return [[()] * len(x) for x in lists]
    codes = ctx.catalog.category_codes[items]  # each item's categories in index order, -1 pads
    mix = np.array([st.category_counts for st in states])
    counts = np.where(codes >= 0, mix[owner[:, None], np.maximum(codes, 0)], -1.0)
    at = np.argmax(counts, axis=1)
    rows = np.arange(len(items))
    best = codes[rows, at].tolist()
    best_n = counts[rows, at].tolist()

    def column(p: int) -> Sequence[tuple[Evidence, ...]]:
        st, first = states[p], int(starts[p])
        total = st.n_items
        if total == 0:
            return [()] * len(lists[p])

        def make(r: int) -> tuple[Evidence, ...]:
            n = best_n[first + r]
            if n <= 0:
                return ()
            category = names[best[first + r]]
            return (
                shared_evidence(Fact.CATEGORY_SHARE, category=category, count=int(n), total=total),
            )

        return LazyEvidence(len(lists[p]), make)

    return [column(p) for p in range(len(states))]


def category_evidence_many(
    ctx: FeatureContext, st: UserState, items: np.ndarray
) -> Sequence[tuple[Evidence, ...]]:
    return category_evidence_block(ctx, [st], [np.asarray(items)])[0]


def category_evidence(ctx: FeatureContext, st: UserState, item: int) -> tuple[Evidence, ...]:
    return category_evidence_many(ctx, st, np.array([item]))[0]


def brand_affinity(ctx: FeatureContext, b: UserBlock, row_user: np.ndarray, cand: np.ndarray):
    codes, n_brands = ctx.brand_codes
    if n_brands == 0:
        return np.zeros(len(cand))
    counts = np.zeros((len(b), n_brands))
    for pos, st in enumerate(b.states):
        c = codes[st.items]
        counts[pos] = np.bincount(c[c >= 0], minlength=n_brands)
    n = np.array([st.n_items for st in b.states], dtype=float)
    cc = codes[cand]
    val = np.where(cc >= 0, counts[row_user, np.maximum(cc, 0)], 0.0)
    return np.where(n[row_user] > 0, val / np.maximum(n[row_user], 1), 0.0)


def brand_evidence(ctx: FeatureContext, st: UserState, item: int) -> tuple[Evidence, ...]:
    b = ctx.catalog.brand[item] if ctx.catalog.brand is not None else None
    n = st.brand_counts.get(b, 0) if b else 0
    if not n:
        return ()
    return (Evidence(fact=Fact.BRAND_SHARE, brand=str(b), count=n, total=st.n_items),)


def price_fit(ctx: FeatureContext, b: UserBlock, row_user: np.ndarray, cand: np.ndarray):
    p = ctx.catalog.price
    med = np.array([st.price_median for st in b.states], dtype=float)[row_user]
    if p is None:
        return np.full(len(cand), np.nan)
    ok = np.isfinite(med) & (med > 0)
    val = -np.abs(np.log(np.maximum(p[cand], 0.01)) - np.log(np.where(ok, med, 1.0)))
    return np.where(ok, val, np.nan)


def price_evidence(ctx: FeatureContext, st: UserState, item: int) -> tuple[Evidence, ...]:
    p = ctx.catalog.price
    if not np.isfinite(st.price_median) or p is None or not np.isfinite(p[item]):
        return ()
    return (
        Evidence(
            fact=Fact.USUAL_PRICE,
            value=round(float(st.price_median), 2),
            price=round(float(p[item]), 2),
            total=int(np.isfinite(p[st.items]).sum()),  # the priced items the median is over
        ),
    )


def repeat_cycle(ctx: FeatureContext, b: UserBlock, row_user: np.ndarray, cand: np.ndarray):
    """Days since the user last bought the candidate, in units of its re-buy cycle (30 days
    where none is measured); NaN where they never bought it."""
    from recsys.features import kernels  # numba loads on first use, not at import

    _, gaps = ctx.rebuy
    lp = [st.last_purchase for st in b.states]
    return kernels.rebuy_cycles(
        np.fromiter((i for d in lp for i in d), dtype=np.int64),
        np.fromiter((t for d in lp for t in d.values()), dtype=np.int64),
        np.cumsum([0, *(len(d) for d in lp)]),
        np.fromiter((st.as_of for st in b.states), dtype=np.int64, count=len(lp)),
        gaps, DAY, row_user, cand,
    )  # fmt: skip


def repeat_evidence(ctx: FeatureContext, st: UserState, item: int) -> tuple[Evidence, ...]:
    ts = st.last_purchase.get(int(item))
    rebuyable, gaps = ctx.rebuy
    if ts is None or not rebuyable[item] or not np.isfinite(gaps[item]):
        return ()  # "time to restock" only for items with a measured re-buy cycle
    return (
        Evidence(
            fact=Fact.BOUGHT_BEFORE,
            item_id=str(ctx.catalog.items.ids[item]),
            date=_date(ts),
            event="purchase",
            window_days=max(1, round(float(gaps[item]))),
            count=int((st.as_of - ts) // DAY),
        ),
    )


# --- the shop -----------------------------------------------------------------------------------
def trending(ctx: FeatureContext, b: UserBlock, row_user: np.ndarray, cand: np.ndarray):
    out = np.empty(len(cand))
    for pos, rows in _segments(row_user):
        counts, _ = ctx.trending(b.states[pos].as_of)
        out[rows] = np.log1p(counts[cand[rows]])
    return out


def trending_evidence(ctx: FeatureContext, st: UserState, item: int) -> tuple[Evidence, ...]:
    return trending_fact(ctx, st.key, st.as_of, item, _reader_did(ctx, st))


def _reader_did(ctx: FeatureContext, st: UserState) -> frozenset[int] | None:
    """The items the reader did the shop's signal event on, once per request (every trending
    fact of their list asks whether they are among the customers it counts)."""
    hit = st.cache.get("shop_did")
    if hit is None and ctx.shop is not None and st.key is not None:
        hit = st.cache["shop_did"] = frozenset(ctx.shop.items_of(st.key).tolist())
    return hit


def trending_fact(
    ctx: FeatureContext,
    key: str | None,
    as_of: int,
    item: int,
    reader_did: frozenset[int] | None = None,
) -> tuple[Evidence, ...]:
    """Other customers who did the signal event on ``item`` in the trending window;
    ``reader_did``: the items reader ``key`` did it on, when the caller has them."""
    shop = ctx.shop
    if shop is None:
        return ()
    counts, day = shop.trending(as_of, TRENDING_DAYS)
    window = (day - TRENDING_DAYS * DAY, day)
    n, others = _others(shop, key, item, int(counts[item]), window, reader_did)
    if n == 0:
        return ()
    return (
        Evidence(
            fact=Fact.TRENDING, count=n, window_days=TRENDING_DAYS, date=_date(day),
            counted=shop.counted, others=others,
        ),
    )  # fmt: skip


def popularity(ctx: FeatureContext, b: UserBlock, row_user: np.ndarray, cand: np.ndarray):
    return np.log1p(ctx.customers[cand])


def popularity_evidence(ctx: FeatureContext, st: UserState, item: int) -> tuple[Evidence, ...]:
    return customers_fact(ctx, st.key, item)


def popularity_evidence_block(
    ctx: FeatureContext, states: Sequence[UserState], lists: Sequence[np.ndarray]
) -> list[Sequence[tuple[Evidence, ...]]]:
    """:func:`customers_fact` for every item of a block's lists: one look-up of the readers'
    own rows."""
    shop = ctx.shop
    if shop is None:
        return [[()] * len(x) for x in lists]
    owner, items, starts = _rows_of(lists)
    me = shop.did_pairs(_shop_users(ctx, states)[owner], items)
    n = shop.customers[items]
    counts = np.where(me, np.maximum(n - 1, 0), n).tolist()
    others = me.tolist()
    counted = shop.counted

    def column(p: int) -> LazyEvidence:
        first = int(starts[p])

        def make(r: int) -> tuple[Evidence, ...]:
            c = counts[first + r]
            if c == 0:
                return ()
            return (
                shared_evidence(Fact.CUSTOMERS, count=c, counted=counted, others=others[first + r]),
            )

        return LazyEvidence(len(lists[p]), make)

    return [column(p) for p in range(len(states))]


def popularity_evidence_many(
    ctx: FeatureContext, st: UserState, items: np.ndarray
) -> Sequence[tuple[Evidence, ...]]:
    return popularity_evidence_block(ctx, [st], [np.asarray(items)])[0]


def customers_fact(ctx: FeatureContext, key: str | None, item: int) -> tuple[Evidence, ...]:
    """Other customers who ever did the signal event on ``item`` (every retained row)."""
    shop = ctx.shop
    if shop is None:
        return ()
    n, others = _others(shop, key, item, int(shop.customers[item]))
    if n == 0:
        return ()
    return (Evidence(fact=Fact.CUSTOMERS, count=n, counted=shop.counted, others=others),)


def _others(
    shop: ShopStats,
    key: str | None,
    item: int,
    n: int,
    window: tuple[int, int] | None = None,
    reader_did: frozenset[int] | None = None,
) -> tuple[int, bool]:
    """``n`` customers less the reader when the reader is among them; and whether they were.
    ``reader_did``: the items the reader did the signal event on, when the caller has them."""
    if key is None:
        return n, False
    did = item in reader_did if reader_did is not None else shop.did(key, np.array([item]))[0]
    if not did:
        return n, False
    if window is not None and not shop.did_between(key, item, *window):
        return n, False
    return max(n - 1, 0), True


def average_rating(ctx: FeatureContext, b: UserBlock, row_user: np.ndarray, cand: np.ndarray):
    s, c, mean = ctx.rating_stats
    return (s[cand] + mean * RATING_PRIOR_WEIGHT) / (c[cand] + RATING_PRIOR_WEIGHT)


def rating_evidence(ctx: FeatureContext, st: UserState, item: int) -> tuple[Evidence, ...]:
    shop = ctx.shop
    if shop is None:
        return ()
    s, c = shop.ratings
    total, n = float(s[item]), int(c[item])
    if st.key is not None:  # other customers' ratings only
        mine, k = shop.own_rating(st.key, item)
        total, n = total - mine, n - k
    if n <= 0:
        return ()
    return (Evidence(fact=Fact.AVERAGE_RATING, value=round(total / n, 1), count=n),)


def item_age(ctx: FeatureContext, b: UserBlock, row_user: np.ndarray, cand: np.ndarray):
    return (b.as_of[row_user] - ctx.catalog.created[cand]) / DAY


def age_evidence(ctx: FeatureContext, st: UserState, item: int) -> tuple[Evidence, ...]:
    created = ctx.catalog.created[item]
    if not np.isfinite(created):
        return ()
    return (
        Evidence(
            fact=Fact.LISTED, date=_date(created), window_days=int((st.as_of - created) // DAY)
        ),
    )


INT, ITM = "interactions", "items"
HIST = frozenset({f"{INT}.user_id", f"{INT}.item_id", f"{INT}.timestamp", f"{INT}.event"})

FEATURES: tuple[Feature, ...] = (
    Feature("collab_z", "collaborative", "collaborative score relative to the user's other items",
            HIST, collab_z, collab_evidence, evidence_many=collab_evidence_many,
            evidence_block=collab_evidence_block),
    Feature("collab_raw", "collaborative", "collaborative (matrix factorization) score",
            HIST, collab_raw, collab_evidence, evidence_many=collab_evidence_many,
            evidence_block=collab_evidence_block),
    Feature("sim_recent3", "similar", "similarity to the user's 3 most recent items",
            HIST, sim_recent3, similar_evidence, evidence_many=similar_evidence_many,
            evidence_block=similar_evidence_block),
    Feature("sim_max10", "similar", "highest similarity to one of the user's 10 most recent items",
            HIST, sim_max10, similar_evidence, evidence_many=similar_evidence_many,
            evidence_block=similar_evidence_block),
    Feature("sim_mean10", "similar", "mean similarity to the user's 10 most recent items",
            HIST, sim_mean10, similar_evidence, evidence_many=similar_evidence_many,
            evidence_block=similar_evidence_block),
    Feature("cooc_recent3", "together", "customers who chose the user's recent items chose it too",
            HIST, cooc_recent3, cooc_evidence, evidence_many=cooc_evidence_many,
            evidence_block=cooc_evidence_block),
    Feature("category_affinity", "category", "share of the user's items in the item's category",
            HIST | {f"{ITM}.category"}, category_affinity, category_evidence,
            evidence_many=category_evidence_many, evidence_block=category_evidence_block),
    Feature("brand_affinity", "brand", "share of the user's items from the item's brand",
            HIST | {f"{ITM}.brand"}, brand_affinity, brand_evidence,
            lambda ctx: ctx.catalog.brand is not None),
    Feature("price_fit", "price", "closeness to the user's usual price",
            HIST | {f"{ITM}.price"}, price_fit, price_evidence,
            lambda ctx: ctx.catalog.price is not None),
    Feature("repeat_cycle", "repeat", "time since the user last bought it, in typical re-buy cycles",
            HIST, repeat_cycle, repeat_evidence, lambda ctx: ctx.has_purchases),
    Feature("trending", "trending", "shop-wide choices in the last 30 days (log)",
            HIST, trending, trending_evidence),
    Feature("popularity", "popularity", "customers who ever chose it (log)",
            HIST, popularity, popularity_evidence, evidence_many=popularity_evidence_many,
            evidence_block=popularity_evidence_block),
    Feature("average_rating", "rating", "average rating, shrunk towards the shop mean",
            HIST | {f"{INT}.value"}, average_rating, rating_evidence, lambda ctx: ctx.has_ratings),
    Feature("item_age", "new", "days since the item was listed",
            HIST | {f"{ITM}.created_at"}, item_age, age_evidence,
            lambda ctx: ctx.catalog.created is not None),
)  # fmt: skip
REGISTRY: dict[str, Feature] = {f.name: f for f in FEATURES}


def feature(name: str) -> Feature:
    """The registered feature called ``name``."""
    try:
        return REGISTRY[name]
    except KeyError:
        raise KeyError(f"unknown feature {name!r}; known: {sorted(REGISTRY)}") from None


def check_features(features: Sequence[Feature], policy: Policy, purpose: str) -> None:
    """Refuse features that read protected attributes or fields the purpose may not read."""
    pp = policy.purpose(purpose)
    for f in features:
        for field in sorted(f.reads):
            table, _, column = field.partition(".")
            if table == "audit" or policy.is_protected(column):
                raise ProtectedAttributeError(
                    f"feature {f.name!r} reads {field!r}, a protected attribute: protected "
                    "attributes are never model inputs (only the fairness audit reads them)"
                )
            if not pp.allows(table, column):
                raise ProtectedAttributeError(
                    f"feature {f.name!r} reads {field!r}, which the {purpose!r} purpose may not read"
                )


def select_features(
    ctx: FeatureContext, names: Sequence[str] | None, policy: Policy, purpose: str
) -> tuple[Feature, ...]:
    """The features to use: the named ones (or all), that this data supports and the policy allows."""
    if names is None:
        chosen = [f for f in FEATURES if f.available(ctx)]
    else:
        unknown = [n for n in names if n not in REGISTRY]
        if unknown:
            raise KeyError(f"unknown feature(s) {unknown}; known: {sorted(REGISTRY)}")
        chosen = [REGISTRY[n] for n in names if REGISTRY[n].available(ctx)]
    allowed = [
        f for f in chosen if all(policy.purpose(purpose).allows(*r.split(".", 1)) for r in f.reads)
    ]
    check_features(allowed, policy, purpose)
    return tuple(allowed)


def stack(cands: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Per-user candidate lists as rows: ``(row_user, cand)``, grouped by user."""
    lens = np.array([len(c) for c in cands], dtype=np.int64)
    row_user = np.repeat(np.arange(len(cands)), lens)
    cand = np.concatenate(list(cands)).astype(np.int64) if len(cands) else np.empty(0, np.int64)
    return row_user, cand


def feature_matrix(
    ctx: FeatureContext,
    block: UserBlock,
    row_user: np.ndarray,
    cand: np.ndarray,
    features: Sequence[Feature],
) -> np.ndarray:
    """One row per candidate of a block of users, one column per feature."""
    X = np.empty((len(cand), len(features)))
    for j, f in enumerate(features):
        X[:, j] = f.compute(ctx, block, row_user, cand)
    block.cache.clear()
    return X
