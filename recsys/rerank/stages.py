"""Re-ranking stages: each takes a ranked :class:`~recsys.types.ItemList` and returns a new one.

A stage is a small pydantic config (``kind`` tells them apart in a configuration's ``stages``
list) whose ``__call__(ctx, state, items, k)`` reorders the list. :func:`rerank` runs the
configured stages in order and records, per item, which stage placed it: the ranker when the
item was already in the ranker's top ``k``, otherwise the first stage that brought it there.
A new re-ranker is one class here plus one entry in :data:`RerankStage`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Annotated, ClassVar, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, PositiveInt

from recsys.features.context import FeatureContext, UserState
from recsys.rerank.algorithms import ItemSimilarity, Prefix, calibrate, fair_topk, mmr_many
from recsys.rerank.overrides import Overrides
from recsys.rerank.promotions import NewArrivals, Promotions
from recsys.types import ItemList, Stage


class RerankInput(BaseModel):
    """What every stage may read besides the list: the model's items and the item groups."""

    model_config = ConfigDict(arbitrary_types_allowed=True, frozen=True)
    ctx: FeatureContext
    groups: Mapping[str, np.ndarray]


def item_similarity(ctx: FeatureContext, factor_weight: float) -> ItemSimilarity:
    """The model's item similarity: ``factor_weight`` * factor cosine + the rest * category
    Jaccard."""
    return ItemSimilarity(ctx.collab.item_unit_, ctx.catalog.category_codes, factor_weight)


def similarity(ctx: FeatureContext, items: np.ndarray, factor_weight: float) -> np.ndarray:
    """Item similarity: ``factor_weight`` * factor cosine + the rest * category Jaccard."""
    return similarity_many(ctx, items[None, :], factor_weight)[0]


def similarity_many(ctx: FeatureContext, items: np.ndarray, factor_weight: float) -> np.ndarray:
    """:func:`similarity` for lists x positions of items at once: lists x positions x positions."""
    return item_similarity(ctx, factor_weight).matrix(items)


Reads = Callable[[np.ndarray, np.ndarray], Prefix | None]
"""``reads(items, lengths)``: of lists given as padded items (lists x positions) and lengths,
the prefix of a new order that a reader needs (``None``: all of it)."""


def padded(lists: Sequence[ItemList]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Items and scores of several lists as lists x positions arrays (zero padded), and lengths."""
    items, lengths = padded_items(lists)
    scores = np.zeros(items.shape)
    for b, lst in enumerate(lists):
        scores[b, : len(lst)] = lst.column("score")
    return items, scores, lengths


def padded_items(lists: Sequence[ItemList]) -> tuple[np.ndarray, np.ndarray]:
    """The items of several lists as a lists x positions array (zero padded), and lengths."""
    lengths = np.array([len(lst) for lst in lists], dtype=np.int64)
    items = np.zeros((len(lists), int(lengths.max(initial=0))), dtype=np.int64)
    for b, lst in enumerate(lists):
        items[b, : len(lst)] = lst.items
    return items, lengths


class StageBase(BaseModel):
    """A re-ranker: ``__call__`` reorders one user's list; ``many`` a block of users' lists (a
    stage vectorizes it where that pays; by default it calls ``__call__`` per list)."""

    stage: ClassVar[Stage]

    def __call__(self, inp: RerankInput, st: UserState, items: ItemList, k: int) -> ItemList:
        return self.many(inp, [st], [items], k)[0]

    def many(
        self, inp: RerankInput, states: Sequence[UserState], lists: Sequence[ItemList], k: int
    ) -> list[ItemList]:
        return [self(inp, st, lst, k) for st, lst in zip(states, lists, strict=True)]


class MMR(StageBase):
    """Maximal marginal relevance: trade relevance against similarity to items placed above."""

    model_config = ConfigDict(extra="forbid")
    kind: Literal["mmr"] = "mmr"
    trade_off: float = Field(0.95, ge=0, le=1)
    """1 = relevance only, 0 = dissimilarity only. The default is measured
    (``benchmarks/rerank_defaults.py``): on MovieLens-100K and the synthetic shop 0.85 cost
    about 1.3% of validation NDCG against 0.95."""
    factor_weight: float = Field(0.5, ge=0, le=1)
    """Item similarity = this * factor cosine + the rest * category overlap (Jaccard)."""

    stage: ClassVar[Stage] = Stage.DIVERSITY

    def many(
        self,
        inp: RerankInput,
        states: Sequence[UserState],
        lists: Sequence[ItemList],
        k: int,
        *,
        reads: Reads | None = None,
    ) -> list[ItemList]:
        """``reads``: how much of the new order the next reader needs (:func:`consumer_reads`);
        each list is ordered that far and cut there."""
        items, scores, lengths = padded(lists)
        sim = (item_similarity(inp.ctx, self.factor_weight), items)
        stop = reads(items, lengths) if reads is not None else None
        order = mmr_many(scores, sim, lengths, items.shape[1], self.trade_off, stop=stop)
        out = []
        for b, lst in enumerate(lists):
            head = order[b, : len(lst)]
            if head[-1:].tolist() == [-1]:  # stopped early: the placed prefix
                head = head[head >= 0]
            out.append(lst.take(head))
        return out


class Calibration(StageBase):
    """Match the user's own category mix (Steck, RecSys 2018)."""

    model_config = ConfigDict(extra="forbid")
    kind: Literal["calibration"] = "calibration"
    trade_off: float = Field(0.85, ge=0, le=1)
    """1 = relevance only; the KL weight is ``1 - trade_off``."""

    stage: ClassVar[Stage] = Stage.CALIBRATION

    def __call__(self, inp: RerankInput, st: UserState, items: ItemList, k: int) -> ItemList:
        mix = st.category_counts
        if mix.sum() <= 0:
            return items
        cats = inp.ctx.catalog.item_categories[items.items].toarray()
        order = calibrate(items.column("score"), cats, mix, len(items), 1 - self.trade_off)
        return items.take(order)


class FairTopK(StageBase):
    """FA*IR (Zehlike et al., CIKM 2017): every prefix holds the minimum share of a protected
    item group that fair sampling would give."""

    model_config = ConfigDict(extra="forbid")
    kind: Literal["fair"] = "fair"
    group: str = "long_tail"
    """Name of an item group rule of the policy (``item_groups``)."""
    proportion: float = Field(0.55, gt=0, lt=1)
    """Target proportion p of protected items. The default is measured
    (``benchmarks/rerank_defaults.py``, 100 collaborative candidates): the long tail's share of
    top-10 exposure on MovieLens-100K and the synthetic shop is 10.4-14.3% at 0.4, 14.8-21.5%
    at 0.5 and 16.3-23.5% at 0.55, the smallest p above the policy's 15% on both."""
    significance: float = Field(0.1, gt=0, lt=1)
    """alpha: a prefix may fall short of p only as often as fair sampling would."""

    stage: ClassVar[Stage] = Stage.FAIRNESS

    def __call__(self, inp: RerankInput, st: UserState, items: ItemList, k: int) -> ItemList:
        group = inp.groups.get(self.group)
        if group is None:
            return items
        return items.take(fair_topk(group[items.items], k, self.proportion, self.significance))

    def reads(self, inp: RerankInput, k: int) -> Reads | None:
        """FA*IR takes its top ``k`` from the first ``k`` protected and the first ``k`` other
        items of its input, so a prefix holding those (or every one a list has) fixes it."""
        group = inp.groups.get(self.group)
        if group is None:
            return None

        def prefix(items: np.ndarray, lengths: np.ndarray) -> Prefix:
            flags = group[items] & (np.arange(items.shape[1])[None, :] < lengths[:, None])
            protected = flags.sum(axis=1)
            return Prefix(flags, np.minimum(k, protected), np.minimum(k, lengths - protected))

        return prefix


RerankStage = Annotated[
    MMR | Calibration | FairTopK | Overrides | Promotions | NewArrivals, Field(discriminator="kind")
]


def default_stages() -> list[RerankStage]:
    return [MMR(), FairTopK()]


class RerankConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    enabled: bool = True
    depth: PositiveInt = 100
    """How many of the ranker's best candidates the re-rankers may draw from."""
    stages: list[RerankStage] = Field(default_factory=default_stages)
    """Applied in order; an empty list (or ``enabled = false``) keeps the ranker's order."""

    def group_names(self) -> list[str]:
        return [s.group for s in self.stages if isinstance(s, FairTopK)]


def rerank(
    inp: RerankInput, st: UserState, ranked: ItemList, k: int, cfg: RerankConfig
) -> ItemList:
    """The top ``k`` after every stage, with columns ``stage`` (who placed each item) and
    ``group`` (the item group a fairness stage placed it for)."""
    return rerank_many(inp, [st], [ranked], k, cfg)[0]


def rerank_many(
    inp: RerankInput,
    states: Sequence[UserState],
    ranked: Sequence[ItemList],
    k: int,
    cfg: RerankConfig,
) -> list[ItemList]:
    """:func:`rerank` for a block of users, each stage running over the whole block."""
    if cfg.enabled:
        # items a stage reserves slots for (promotions, new arrivals) stay in reach below depth
        wanted = [s.reserved(inp) for s in cfg.stages if hasattr(s, "reserved")]
        keep = np.unique(np.concatenate(wanted)) if wanted else np.empty(0, dtype=np.int64)
        lists = [_within_depth(lst, cfg.depth, keep) for lst in ranked]
    else:
        lists = list(ranked)
    ranker_top = [set(lst.items[:k].tolist()) for lst in lists]
    placed: list[list[tuple[Stage, str | None, set[int]]]] = [[] for _ in lists]
    if cfg.enabled:
        for n, stage in enumerate(cfg.stages):
            if isinstance(stage, MMR):  # greedy: it may stop where its reader stops reading
                reads = consumer_reads(inp, cfg.stages[n + 1 :], k)
                lists = stage.many(inp, states, lists, k, reads=reads)
            else:
                lists = stage.many(inp, states, lists, k)
            group = stage.group if isinstance(stage, FairTopK) else None
            for p, lst in zip(placed, lists, strict=True):
                p.append((stage.stage, group, set(lst.items[:k].tolist())))
    return [
        _provenance(lst.head(k), top, p)
        for lst, top, p in zip(lists, ranker_top, placed, strict=True)
    ]


def consumer_reads(inp: RerankInput, after: Sequence[RerankStage], k: int) -> Reads | None:
    """How much of a stage's new order the next one reads: the top ``k`` at the end; a prefix
    :class:`FairTopK` names; otherwise all of it (``None``)."""
    if not after:
        return lambda items, lengths: Prefix.first(np.minimum(k, lengths), items.shape[1])
    reads = getattr(after[0], "reads", None)
    return reads(inp, k) if reads is not None else None


def _within_depth(lst: ItemList, depth: int, keep: np.ndarray) -> ItemList:
    """The ranker's best ``depth`` items, then any of ``keep`` from further down, in order."""
    if len(lst) <= depth:
        return lst  # lists never change: no copy needed
    if not len(keep):
        return lst.head(depth)
    below = depth + np.flatnonzero(np.isin(lst.items[depth:], keep))
    return lst.take(np.concatenate([np.arange(depth), below]))


def _provenance(
    lst: ItemList, ranker_top: set[int], placed: list[tuple[Stage, str | None, set[int]]]
) -> ItemList:
    labels, groups = [], []
    for i in lst.items.tolist():
        label, group = Stage.RANKER, None
        if i not in ranker_top:
            label, group = next((s, g) for s, g, top in placed if i in top)
        labels.append(str(label))
        groups.append(group)
    stage, group = np.empty(len(labels), dtype=object), np.empty(len(groups), dtype=object)
    stage[:], group[:] = labels, groups
    return ItemList(lst.items, lst.ids, {**lst.columns, "stage": stage, "group": group})
