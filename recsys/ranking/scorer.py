"""The scoring stage: named features -> additive ranker -> exact attributions, best first."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from recsys.features.context import FeatureContext, UserBlock
from recsys.features.registry import Feature, feature_matrix, stack
from recsys.ranking.additive import AdditiveModel
from recsys.types import ItemList


@dataclass(frozen=True)
class Scorer:
    """Scores every candidate of a block of users in one pass.

    Each output list is sorted by score (ties by item id) and carries the columns ``score``
    (the ranker's log-odds) and ``attributions`` (one exact SHAP value per feature, adding up to
    ``score - model.base``).
    """

    features: tuple[Feature, ...]
    model: AdditiveModel

    def matrix(
        self, ctx: FeatureContext, block: UserBlock, cands: Sequence[np.ndarray]
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Feature rows of every candidate: ``(X, row_user, cand)``."""
        row_user, cand = stack(cands)
        return feature_matrix(ctx, block, row_user, cand, self.features), row_user, cand

    def __call__(
        self, ctx: FeatureContext, block: UserBlock, cands: Sequence[np.ndarray]
    ) -> list[ItemList]:
        X, _, cand = self.matrix(ctx, block, cands)
        phi = self.model.contributions(X)
        score = self.model.base + phi.sum(axis=1)
        ids = ctx.catalog.items.ids
        product, twins = ctx.catalog.product, ctx.catalog.has_twin
        out, start = [], 0
        for c in cands:
            seg = slice(start, start + len(c))
            start += len(c)
            items = cand[seg]
            order = np.lexsort((ids[items].astype(str), -score[seg]))
            if twins.any():  # items sharing a title are one product: keep its best-scored item
                _, first = np.unique(product[items[order]], return_index=True)
                order = order[np.sort(first)]
            out.append(
                ItemList.from_indices(
                    items[order], ids, score=score[seg][order], attributions=phi[seg][order]
                )
            )
        return out
