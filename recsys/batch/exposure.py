"""Fairness across a batch: amortized exposure for e-mail campaigns.

One list cannot give every provider group its due; a campaign of many lists can. Lists are
built one user after another; a protected group's items get a boost that grows while the
group's share of position-discounted exposure so far is below its target and shrinks above it,
so the campaign's share tracks the target (an integral controller on the exposure error).
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, PositiveInt

from recsys.recommender import Recommender
from recsys.rerank.algorithms import position_weights
from recsys.types import Recommendations


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
        groups = rec.reranker_.groups
        if self.config.group not in groups:
            raise KeyError(f"item group {self.config.group!r} is not available for this data")
        self.protected = groups[self.config.group]
        in_stock = rec.context_.catalog.in_stock
        self.target = self.config.target_share or float(self.protected[in_stock].mean())
        self.boost = 0.0
        self.exposure = np.zeros(2)  # [protected, total]

    @property
    def share(self) -> float:
        return float(self.exposure[0] / self.exposure[1]) if self.exposure[1] else 0.0

    def recommend(self, user_id: str, k: int = 10) -> Recommendations:
        rec = self.rec
        u = rec.context_.history.users.get(rec.key_of(user_id))
        if u < 0 or not rec.has_consent(user_id):
            return rec.recommend(user_id, k)  # not personalized: no fairness boost to apply
        scored = rec.score_candidates(u)
        n = min(len(scored.items), self.config.depth)
        s = scored.scores[:n]
        span = s.max() - s.min() if n else 0.0
        rel = (s - s.min()) / span if span > 0 else np.zeros(n)
        prot = self.protected[scored.items[:n]]
        boosted = rel + self.boost * prot
        order = np.lexsort((np.arange(n), -boosted))[:k]
        stages = ["ranker" if j < k else "fairness" for j in order]
        w = position_weights(len(order))
        self.exposure += [float((w * prot[order]).sum()), float(w.sum())]
        error = self.target - self.share
        self.boost = float(
            np.clip(self.boost + self.config.gain * error, 0.0, self.config.max_boost)
        )
        cfg = rec.config_.rerank.model_copy(
            update={
                "fairness": rec.config_.rerank.fairness.model_copy(
                    update={"group": self.config.group}
                )
            }
        )
        return rec.assemble(user_id, scored, order, stages, cfg)

    def run(self, user_ids: Iterable[str], k: int = 10) -> dict[str, Recommendations]:
        return {str(u): self.recommend(u, k) for u in user_ids}
