"""Candidate sources: each proposes items for a block of users; the pipeline takes their union.

A source is a small class with a pydantic config (a member of :data:`SourceConfig`, told apart by
``kind``) and ``__call__(ctx, block, allowed) -> list[np.ndarray]``: item indices per user, drawn
only from that user's ``allowed`` items (in stock, not excluded, not already seen). A new source
is one class here plus one entry in :data:`SOURCES`.
"""

from __future__ import annotations

from typing import Annotated, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, NonNegativeInt, PositiveInt

from recsys.candidates.content import ContentSource
from recsys.features.context import FeatureContext, UserBlock
from recsys.features.history import DAY
from recsys.features.stats import unique_ints


def top_allowed(scores: np.ndarray, allowed: np.ndarray, n: int) -> np.ndarray:
    """The ``n`` allowed items with the highest scores (unordered)."""
    idx = np.flatnonzero(allowed)
    if len(idx) <= n:
        return idx
    return idx[np.argpartition(-scores[idx], n)[:n]]


class CollaborativeSource(BaseModel):
    """The collaborative model's top items for the user."""

    model_config = ConfigDict(extra="forbid")
    kind: Literal["collaborative"] = "collaborative"
    n: PositiveInt = 100
    """How many. Measured (``benchmarks/candidate_breadth.py``, validation NDCG@10 and
    recall@10 of the whole pipeline): 50 to 200 are within a few percent of each other on
    MovieLens-100K and three synthetic shops, 100 a little above 200 on both, 300 well below;
    100 halves the index search and the features' work of 200."""

    def __call__(
        self, ctx: FeatureContext, block: UserBlock, allowed: np.ndarray
    ) -> list[np.ndarray]:
        if not block.exact:  # the approximate index built at fit time (collaborative.ann)
            if not len(block):
                return []
            vectors = np.array([st.vector for st in block.states])
            out = []
            found_all = ctx.collab.index_.search_many(vectors, self.n, allowed)
            for p, (st, found) in enumerate(zip(block.states, found_all, strict=True)):
                if found is None:  # the graph cannot give that many: score every item,
                    # in float32 as an exact block ranks them
                    scores = (ctx.item_factors64 @ st.vector.astype(np.float64)).astype(np.float32)
                    found = top_allowed(scores, allowed[p], self.n)
                out.append(found)
            return out
        return [top_allowed(block.scores[p], allowed[p], self.n) for p in range(len(block))]


class TrendingSource(BaseModel):
    """What the shop chose most in the trending window before the request time."""

    model_config = ConfigDict(extra="forbid")
    kind: Literal["trending"] = "trending"
    n: NonNegativeInt = 50

    def __call__(
        self, ctx: FeatureContext, block: UserBlock, allowed: np.ndarray
    ) -> list[np.ndarray]:
        if not self.n:
            return [np.empty(0, dtype=np.int64) for _ in block.states]
        return [self._top(ctx, st.as_of, allowed[p]) for p, st in enumerate(block.states)]

    def _top(self, ctx: FeatureContext, as_of: int, allowed: np.ndarray) -> np.ndarray:
        """The first ``n`` allowed items of the shop's trending ranking (most chosen first,
        ties in catalogue order: which tied items make the cut is fixed, not left to a
        selection algorithm)."""
        _, ranked = ctx.trending_items(as_of)
        m = 2 * self.n + 16
        while True:
            head = ranked[:m]
            found = head[allowed[head]]
            if len(found) >= self.n or m >= len(ranked):
                return found[: self.n]
            m *= 4


class RebuySource(BaseModel):
    """Items the user bought that customers buy again and that are due: at least ``due_share``
    of the item's measured re-buy cycle has passed since the user's last purchase (a tea bought
    11 days ago on a 35-day cycle is not offered again yet). Most recently bought first."""

    model_config = ConfigDict(extra="forbid")
    kind: Literal["rebuy"] = "rebuy"
    n: NonNegativeInt = 20
    due_share: float = Field(0.5, ge=0)
    """The same share the "Time to restock?" reason needs (``reasons.rules.restock_share``)."""

    def __call__(
        self, ctx: FeatureContext, block: UserBlock, allowed: np.ndarray
    ) -> list[np.ndarray]:
        rebuyable, gaps = ctx.rebuy
        out = []
        for p, st in enumerate(block.states):
            lp = st.last_purchase
            due = np.array(
                [
                    i
                    for i, ts in lp.items()
                    if rebuyable[i]
                    and allowed[p, i]
                    and np.isfinite(gaps[i])
                    and (st.as_of - ts) / DAY >= self.due_share * gaps[i]
                ],
                dtype=np.int64,
            )
            if self.n and len(due):
                due = due[np.argsort(-np.array([lp[i] for i in due]))][: self.n]
            out.append(due[: self.n])
        return out


SourceConfig = Annotated[
    CollaborativeSource | TrendingSource | RebuySource | ContentSource, Field(discriminator="kind")
]
SOURCES = {"collaborative": CollaborativeSource, "trending": TrendingSource, "rebuy": RebuySource}
SOURCES["content"] = ContentSource


def default_sources() -> list[SourceConfig]:
    return [CollaborativeSource(), TrendingSource(), RebuySource()]


class CandidateConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    sources: list[SourceConfig] = Field(default_factory=default_sources)
    """Candidate sources, in order; the candidates are their union."""
    exclude_seen: bool = True
    """Leave out items the user already interacted with, except items customers buy again
    (proposed by the ``rebuy`` source)."""


def block_candidates(
    ctx: FeatureContext,
    block: UserBlock,
    cfg: CandidateConfig,
    exclude: list[np.ndarray] | None = None,
    rules: np.ndarray | None = None,
    promoted: list[np.ndarray] | None = None,
) -> list[np.ndarray]:
    """Sorted item indices to rank, per user of the block: the union of every source's items;
    never out of stock or excluded; never already seen unless a re-buy; only items the ``rules``
    mask (users x items, :mod:`recsys.rules`) lets through. ``promoted`` items per user are
    candidates too, under the same conditions."""
    base = np.tile(ctx.catalog.in_stock, (len(block), 1))
    if rules is not None:
        base &= rules
    if exclude is not None:
        for p, ex in enumerate(exclude):
            base[p, ex[ex >= 0]] = False
    allowed = base.copy()
    if cfg.exclude_seen:
        # the seen memory, not only what the model learned from (history cap, min_rating), and
        # every item that is the same product (same title) as a seen one
        seen = [np.concatenate([st.items, st.seen]) for st in block.states]
        owner = np.repeat(np.arange(len(seen)), [len(x) for x in seen])
        flat = np.concatenate(seen) if seen else np.empty(0, dtype=np.int64)
        ctx.catalog.exclude_products(allowed, owner, flat)
    parts: list[list[np.ndarray]] = [[] for _ in range(len(block))]
    for source in cfg.sources:
        # re-buys are seen items by definition: they only need to be in stock and not excluded
        mask = base if source.kind == "rebuy" else allowed
        for p, items in enumerate(source(ctx, block, mask)):
            items = np.asarray(items, dtype=np.int64)
            parts[p].append(items[mask[p, items]] if len(items) else items)
    for p, items in enumerate(promoted or ()):
        parts[p].append(items[allowed[p, items]])
    out = [unique_ints(np.concatenate(p)) if p else np.empty(0, dtype=np.int64) for p in parts]
    block.fill(ctx, out)  # with approximate retrieval, only the candidates get scores
    return out


def trending_list(
    ctx: FeatureContext, as_of: int, k: int, exclude: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray, int]:
    """The non-personalized source: the shop's most chosen in-stock items in the trending window
    (the same list for everyone at the same time). Returns items, their counts, and the day."""
    counts, ranked, day = ctx.trending_ranked(as_of)
    allowed = ctx.catalog.in_stock
    if exclude is not None and len(exclude):
        allowed = allowed.copy()
        allowed[exclude[exclude >= 0]] = False
    idx = ranked[allowed[ranked]][:k]
    return idx, counts[idx].astype(float), day
