"""The last stage: diversity, then provider fairness, with a record of what each stage moved."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, PositiveInt

from recsys.features.context import FeatureContext
from recsys.privacy.policy import ItemGroupRule
from recsys.rerank.algorithms import calibrate, fair_topk, mmr
from recsys.rerank.groups import item_group


class DiversityConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    enabled: bool = True
    method: Literal["mmr", "calibration"] = "mmr"
    """``mmr``: maximal marginal relevance over item similarity; ``calibration``: match the
    user's own category mix (Steck, RecSys 2018)."""
    trade_off: float = Field(0.85, ge=0, le=1)
    """MMR: 1 = relevance only, 0 = dissimilarity only. Calibration: the KL weight is
    ``1 - trade_off``."""
    factor_weight: float = Field(0.5, ge=0, le=1)
    """Item similarity = this * factor cosine + the rest * category overlap (Jaccard)."""


class FairnessConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    enabled: bool = True
    group: str = "long_tail"
    """Name of an item group rule of the policy (``item_groups``)."""
    proportion: float = Field(0.4, gt=0, lt=1)
    """FA*IR target proportion p of protected items."""
    significance: float = Field(0.1, gt=0, lt=1)
    """FA*IR alpha: a prefix may fall short of p only as often as fair sampling would."""


class RerankConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    enabled: bool = True
    depth: PositiveInt = 100
    """How many of the ranker's best candidates the re-ranker may draw from."""
    diversity: DiversityConfig = Field(default_factory=DiversityConfig)
    fairness: FairnessConfig = Field(default_factory=FairnessConfig)


@dataclass(frozen=True)
class Reranked:
    """Final order (indices into the candidates) and the stage that placed each item."""

    order: np.ndarray
    stage: tuple[str, ...]


class Reranker:
    """Applies diversity (MMR) and provider fairness (FA*IR) to one ranked candidate list."""

    def __init__(
        self, ctx: FeatureContext, config: RerankConfig, groups: dict[str, ItemGroupRule]
    ) -> None:
        self.ctx = ctx
        self.config = config
        self.rules = groups
        self.groups: dict[str, np.ndarray] = {}
        for name, rule in groups.items():
            g = item_group(ctx, rule)
            if g is not None:
                self.groups[name] = g

    def similarity(self, items: np.ndarray) -> np.ndarray:
        w = self.config.diversity.factor_weight
        unit = self.ctx.collab.item_unit_[items].astype(np.float64)
        cos = unit @ unit.T
        c = self.ctx.catalog.item_categories[items]
        inter = (c @ c.T).toarray()
        size = np.asarray(c.sum(axis=1)).ravel()
        union = size[:, None] + size[None, :] - inter
        jac = np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)
        return w * cos + (1 - w) * jac

    def rerank(
        self,
        items: np.ndarray,
        scores: np.ndarray,
        k: int,
        config: RerankConfig | None = None,
        category_mix: np.ndarray | None = None,
    ) -> Reranked:
        """``items``/``scores`` sorted best first; returns the top ``k`` after each enabled stage.

        ``category_mix`` (the user's category counts) is needed by calibration only."""
        cfg = config or self.config
        n = min(len(items), cfg.depth)
        base = np.arange(n)
        if not cfg.enabled or n == 0:
            return Reranked(base[:k], ("ranker",) * min(k, n))
        order = base
        div = cfg.diversity
        if (
            div.enabled
            and div.method == "calibration"
            and category_mix is not None
            and category_mix.sum() > 0
        ):
            cats = self.ctx.catalog.item_categories[items[:n]].toarray()
            order = calibrate(scores[:n], cats, category_mix, n, 1 - div.trade_off)
        elif div.enabled and div.method == "mmr":
            order = mmr(scores[:n], self.similarity(items[:n]), n, div.trade_off)
        after_div = order
        fair = cfg.fairness
        group = self.groups.get(fair.group) if fair.enabled else None
        if group is not None:
            pos = fair_topk(group[items[order]], k, fair.proportion, fair.significance)
            order = order[pos]
        order = order[:k]
        top_rank = set(range(min(k, n)))
        top_div = set(after_div[:k].tolist())
        moved = "calibration" if div.method == "calibration" else "diversity"
        stage = tuple(
            "ranker" if i in top_rank else (moved if i in top_div else "fairness")
            for i in order.tolist()
        )
        return Reranked(order, stage)

    def group_label(self, config: RerankConfig | None = None) -> str:
        rule = self.rules.get((config or self.config).fairness.group)
        return rule.label if rule and rule.label else "A pick from a group we make sure you see"
