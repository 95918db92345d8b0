"""The scoring stage: named features -> additive ranker -> exact attributions, best first."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from recsys.features.context import FeatureContext, UserBlock
from recsys.features.registry import Feature, feature_matrix, stack
from recsys.features.stats import first_of_each
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
        X, row_user, cand = self.matrix(ctx, block, cands)
        phi = self.model.contributions(X)
        score = self.model.base + phi.sum(axis=1)
        cat = ctx.catalog
        # one sort for the block: by user, then best score first, ties by item id (as text)
        order = np.lexsort((cat.id_rank[cand], -score, row_user))
        if cat.any_twins:  # items sharing a title are one product: keep its best-scored item
            key = row_user[order] * cat.n_products + cat.product[cand[order]]
            first = first_of_each(key)
            order = order[np.sort(first)]
        ends = np.cumsum(np.bincount(row_user[order], minlength=len(cands))).tolist()
        items, score, phi = cand[order], score[order], phi[order]
        out, start = [], 0
        for end in ends:
            seg = slice(start, end)
            start = end
            out.append(
                ItemList.from_indices(
                    items[seg], cat.items.ids, score=score[seg], attributions=phi[seg]
                )
            )
        return out
