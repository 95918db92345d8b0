"""Fairness across a batch: amortized exposure for e-mail campaigns.

One list cannot give every provider group its due; a campaign of many lists can. Lists are
built one user after another; a protected group's items get a boost that grows while the
group's share of position-discounted exposure so far is below its target and shrinks above it,
so the campaign's share tracks the target (an integral controller on the exposure error). It
runs as the re-ranking step of the one pipeline, so every filter of a request applies here too.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, PositiveInt

from recsys.errors import ConfigError
from recsys.features.context import UserState
from recsys.recommender import Recommender
from recsys.rerank.algorithms import position_weights
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


class BatchExposure:
    """Builds lists for many users so that a group's exposure share tracks a target."""

    def __init__(self, rec: Recommender, config: BatchExposureConfig | None = None) -> None:
        self.rec = rec
        self.config = config or BatchExposureConfig()
        model = rec.model_
        if self.config.group not in model.groups:
            raise ConfigError(
                f"item group {self.config.group!r} is not available for this data; "
                f"available: {sorted(model.groups)}"
            )
        self.protected = model.groups[self.config.group]
        in_stock = model.ctx.catalog.in_stock
        self.target = self.config.target_share or float(self.protected[in_stock].mean())
        self.boost = 0.0
        self.exposure = np.zeros(2)  # [protected, total]

    @property
    def share(self) -> float:
        return float(self.exposure[0] / self.exposure[1]) if self.exposure[1] else 0.0

    def __call__(self, st: UserState, ranked: ItemList, q: Query) -> ItemList:
        """The pipeline's re-ranking step for one user, in campaign order."""
        k = q.k
        n = min(len(ranked), self.config.depth)
        s = ranked.column("score")[:n]
        span = s.max() - s.min() if n else 0.0
        rel = (s - s.min()) / span if span > 0 else np.zeros(n)
        prot = self.protected[ranked.items[:n]]
        order = np.lexsort((np.arange(n), -(rel + self.boost * prot)))[:k]
        w = position_weights(len(order))
        self.exposure += [float((w * prot[order]).sum()), float(w.sum())]
        error = self.target - self.share
        self.boost = float(
            np.clip(self.boost + self.config.gain * error, 0.0, self.config.max_boost)
        )
        stage = np.array(
            [str(Stage.RANKER if j < k else Stage.FAIRNESS) for j in order], dtype=object
        )
        return (
            ranked.take(order)
            .with_column("stage", stage)
            .with_column("group", np.array([self.config.group] * len(order), dtype=object))
        )

    def run(self, user_ids: Iterable[str], k: int = 10) -> dict[str, Recommendations]:
        queries = [self.rec.query(u, k) for u in user_ids]
        lists = self.rec.recommend_many(queries, reranker=self)
        return {q.user_id: r for q, r in zip(queries, lists, strict=True)}
