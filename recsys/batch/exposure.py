"""Fairness across a batch: amortized exposure for e-mail campaigns.

One list cannot give every provider group its due; a campaign of many lists can. Lists are
built one user after another; a protected group's items get a boost that grows while the
group's share of position-discounted exposure so far is below its target and shrinks above it,
so the campaign's share tracks the target (an integral controller on the exposure error).

The controller runs as the re-ranking step of the one pipeline (every filter of a request
applies), before the per-list re-rankers (MMR, FA*IR), and measures the lists they return. Its
state is two numbers and a boost (:class:`ControllerState`), so a job that runs in chunks, or
on several workers, starts every chunk from a state fixed in advance: the output of a chunk
depends on nothing but the chunk, whoever computes it and whenever.
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

    @property
    def share(self) -> float:
        return self.state.share

    def __call__(self, st: UserState, ranked: ItemList, q: Query) -> ItemList:
        """The pipeline's re-ranking step for one user, in campaign order."""
        k, s = q.k, self.state
        n = min(len(ranked), self.config.depth)
        top = ranked.head(n)
        score = top.column("score")
        span = score.max() - score.min() if n else 0.0
        rel = (score - score.min()) / span if span > 0 else np.zeros(n)
        prot = self.protected[top.items]
        boosted = rel + s.boost * prot
        order = np.lexsort((np.arange(n), -boosted))
        ranker_top = set(top.items[:k].tolist())
        lst = (
            top.take(order)
            .with_column("score", boosted[order])
            .with_column("ranker_score", score[order])
        )
        if self.rerank is not None and self.rerank.enabled:
            lst = rerank_many(self.rerank_input, [st], [lst], k, self.rerank)[0]
        else:
            lst = lst.head(k)
        lst = self._provenance(lst, ranker_top)
        w = position_weights(len(lst))
        s.protected += float((w * self.protected[lst.items]).sum())
        s.total += float(w.sum())
        error = self.target - s.share
        s.boost = float(np.clip(s.boost + self.config.gain * error, 0.0, self.config.max_boost))
        return lst

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
