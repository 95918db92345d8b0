"""Fairness across a batch: amortized exposure for e-mail campaigns.

One list cannot give every provider group its due; a campaign of many lists can. Lists are
built one user after another; a protected group's items get a boost that grows while the
group's share of position-discounted exposure so far is below its target and shrinks above it,
so the campaign's share tracks the target (an integral controller on the exposure error).

The controller runs as the re-ranking step of the one pipeline (every filter of a request
applies), before the per-list re-rankers (MMR, FA*IR), and measures the lists they return.

A job that runs in chunks or on several workers cannot share one running controller without
serializing the chunks. It runs two passes instead: :func:`calibrate_boost` finds, on a sample
of the campaign's customers spread over the whole audience, the one boost at which the group's
share meets the target; every chunk then holds that boost (:meth:`ExposureController.hold`).
Each list depends only on its customer, so the output is the same whatever the chunk size, the
engine or the order chunks finish in, and the share over the send is the sample's.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, PositiveInt

from recsys.errors import ConfigError
from recsys.features.context import UserState
from recsys.model.fitted import FittedModel
from recsys.recommender import Recommender
from recsys.rerank.algorithms import position_weights
from recsys.rerank.stages import RerankConfig, RerankInput, rerank_many
from recsys.types import ItemList, Query, Recommendations, Stage


class BatchExposureConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    group: str = "small_sellers"
    """Protected item group (a rule of the policy's ``item_groups``)."""
    target_share: float | None = Field(None, gt=0, lt=1)
    """Target share of exposure; default: the group's share of in-stock items."""
    gain: float = Field(2.0, gt=0)
    depth: PositiveInt = 100
    max_boost: float = Field(3.0, gt=0)


@dataclass
class ControllerState:
    boost: float = 0.0
    protected: float = 0.0
    """Position-discounted exposure of the group so far."""
    total: float = 0.0

    @property
    def share(self) -> float:
        return self.protected / self.total if self.total else 0.0


class ExposureController:
    """Re-ranks one list after another so that a group's exposure share tracks a target.

    Called by :meth:`recsys.pipeline.Pipeline.run` as its ``reranker``: boosted by the group's
    deficit so far, the best ``depth`` candidates go through the per-list re-rankers
    (``rerank``; ``None``: none), and the list they return is what the controller counts.
    Scores and attributions stay the ranker's; an item the boost brought in says so.
    """

    def __init__(
        self,
        model: FittedModel,
        config: BatchExposureConfig | None = None,
        *,
        rerank: RerankConfig | None = None,
        state: ControllerState | None = None,
    ) -> None:
        self.config = config or BatchExposureConfig()
        if self.config.group not in model.groups:
            raise ConfigError(
                f"item group {self.config.group!r} is not available for this data; "
                f"available: {sorted(model.groups)}"
            )
        self.protected = model.groups[self.config.group]
        in_stock = model.ctx.catalog.in_stock
        self.target = self.config.target_share or float(self.protected[in_stock].mean())
        self.rerank = rerank
        self.rerank_input = RerankInput(ctx=model.ctx, groups=model.groups)
        self.state = state or ControllerState()
        self.adapt = True

    def hold(self, boost: float) -> None:
        """Build every list with ``boost`` (no feedback): lists no longer depend on each other."""
        self.state = ControllerState(boost)
        self.adapt = False

    @property
    def share(self) -> float:
        return self.state.share

    def __call__(self, st: UserState, ranked: ItemList, q: Query) -> ItemList:
        """The pipeline's re-ranking step for one user, in campaign order."""
        return self.many([st], [ranked], [q])[0]

    def many(
        self, states: list[UserState], ranked: list[ItemList], queries: list[Query]
    ) -> list[ItemList]:
        """Lists for several users, counted in order. A held boost builds them as one block
        (the per-list re-rankers run over all of them); an adapting one one after another."""
        if self.adapt and len(queries) > 1:  # the boost moves after every list
            return [
                self.many([st], [lst], [q])[0]
                for st, lst, q in zip(states, ranked, queries, strict=True)
            ]
        s = self.state
        boosted, tops = self._boosted(ranked, queries, s.boost)
        out: list[ItemList] = []
        by_k: dict[int, list[int]] = {}
        for n, q in enumerate(queries):
            by_k.setdefault(q.k, []).append(n)
        done: dict[int, ItemList] = {}
        for k, members in by_k.items():
            if self.rerank is not None and self.rerank.enabled:
                lists = rerank_many(
                    self.rerank_input, [states[n] for n in members],
                    [boosted[n] for n in members], k, self.rerank,
                )  # fmt: skip
            else:
                lists = [boosted[n].head(k) for n in members]
            done.update(zip(members, lists, strict=True))
        for n in range(len(queries)):
            lst = self._provenance(done[n], tops[n])
            w = position_weights(len(lst))
            s.protected += float((w * self.protected[lst.items]).sum())
            s.total += float(w.sum())
            if self.adapt:
                error = self.target - s.share
                s.boost = float(
                    np.clip(s.boost + self.config.gain * error, 0, self.config.max_boost)
                )
            out.append(lst)
        return out

    def _boosted(
        self, ranked: list[ItemList], queries: list[Query], boost: float
    ) -> tuple[list[ItemList], list[set[int]]]:
        """Each list's best ``depth`` items by min-max scaled score + ``boost`` for the group
        (ties keep the ranker's order), all lists at once; and each ranker's top ``k``."""
        n = np.array([min(len(lst), self.config.depth) for lst in ranked], dtype=np.int64)
        width = int(n.max(initial=0))
        dtype = np.result_type(*(lst.column("score").dtype for lst in ranked)) if ranked else float
        score = np.zeros((len(ranked), width), dtype=dtype)  # the lists' own precision
        items = np.zeros((len(ranked), width), dtype=np.int64)
        for r, lst in enumerate(ranked):
            score[r, : n[r]] = lst.column("score")[: n[r]]
            items[r, : n[r]] = lst.items[: n[r]]
        real = np.arange(width)[None, :] < n[:, None]
        lo = np.where(real, score, np.inf).min(axis=1, initial=np.inf)
        span = np.where(real, score, -np.inf).max(axis=1, initial=-np.inf) - lo
        flat = ~(span > 0)  # one score (or none): no relevance spread
        rel = (score - lo[:, None]) / np.where(flat, 1.0, span)[:, None]
        b = np.where(flat[:, None], 0.0, rel) + boost * self.protected[items]
        b = np.where(real, b, -np.inf)  # padding sorts last
        order = np.lexsort((np.broadcast_to(np.arange(width), b.shape), -b), axis=-1)
        boosted, tops = [], []
        for r, (lst, q) in enumerate(zip(ranked, queries, strict=True)):
            o = order[r, : n[r]]
            tops.append(set(lst.items[: min(q.k, int(n[r]))].tolist()))
            boosted.append(lst.take(o).with_columns(score=b[r, o], ranker_score=score[r, o]))
        return boosted, tops

    def _provenance(self, lst: ItemList, ranker_top: set[int]) -> ItemList:
        """The ranker's scores back in place; items only the boost brought in are ``fairness``
        items of the controlled group (those a per-list stage placed keep that stage)."""
        stage = (
            lst.column("stage").copy()
            if "stage" in lst
            else np.full(len(lst), str(Stage.RANKER), dtype=object)
        )
        group = (
            lst.column("group").copy() if "group" in lst else np.full(len(lst), None, dtype=object)
        )
        for r, i in enumerate(lst.items.tolist()):
            if i not in ranker_top and stage[r] == str(Stage.RANKER):
                stage[r], group[r] = str(Stage.FAIRNESS), self.config.group
        return (
            lst.with_column("score", lst.column("ranker_score"))
            .with_column("stage", stage.astype(object))
            .with_column("group", group.astype(object))
        )


class Collect:
    """A pass-through re-ranker that keeps what the pipeline hands it (calibration's input)."""

    def __init__(self) -> None:
        self.seen: list[tuple[UserState, ItemList, Query]] = []

    def __call__(self, st: UserState, ranked: ItemList, q: Query) -> ItemList:
        self.seen.append((st, ranked, q))
        return ranked.head(q.k)


def calibrate_boost(
    controller: ExposureController,
    sample: list[tuple[UserState, ItemList, Query]],
    steps: int = 14,
) -> float:
    """The held boost whose lists over ``sample`` give the group a share closest to the target
    (bisection on ``[0, max_boost]``; the share grows with the boost)."""
    if not sample:
        return 0.0

    states, lists, queries = (list(x) for x in zip(*sample, strict=True))

    def share(boost: float) -> float:
        controller.hold(boost)
        controller.many(states, lists, queries)
        return controller.share

    lo, hi = 0.0, controller.config.max_boost
    tried = {lo: share(lo), hi: share(hi)}
    for _ in range(steps):
        mid = (lo + hi) / 2
        tried[mid] = share(mid)
        lo, hi = (mid, hi) if tried[mid] < controller.target else (lo, mid)
    return min(tried, key=lambda b: (abs(tried[b] - controller.target), b))


class BatchExposure(ExposureController):
    """An in-memory campaign over a :class:`Recommender` (exploration, benchmarks): one
    controller over all users, the ranker's order without per-list re-ranking. The e-mail job
    (:mod:`recsys.batch.offers`) adds consent, exclusions, chunks and workers."""

    def __init__(self, rec: Recommender, config: BatchExposureConfig | None = None) -> None:
        self.rec = rec
        super().__init__(rec.model_, config)

    def run(self, user_ids: Iterable[str], k: int = 10) -> dict[str, Recommendations]:
        queries = [self.rec.query(u, k) for u in user_ids]
        lists = self.rec.recommend_many(queries, reranker=self)
        return {q.user_id: r for q, r in zip(queries, lists, strict=True)}
