"""Protected item groups, defined by rules over item attributes (in the policy), not by lists."""

from __future__ import annotations

import numpy as np

from recsys.features.context import FeatureContext
from recsys.privacy.policy import ItemGroupRule


def _outside_head(sizes: np.ndarray, head_share: float) -> np.ndarray:
    """Members outside the largest ones that together reach ``head_share`` of the total."""
    order = np.lexsort((np.arange(len(sizes)), -sizes))
    cum = np.cumsum(sizes[order]) / max(sizes.sum(), 1e-12)
    head = order[: int(np.searchsorted(cum, head_share) + 1)]
    out = np.ones(len(sizes), dtype=bool)
    out[head] = False
    return out


def item_group(ctx: FeatureContext, rule: ItemGroupRule) -> np.ndarray | None:
    """Per item index: is it in the protected group? ``None`` if the data cannot tell."""
    if rule.kind == "long_tail":
        counts = np.bincount(ctx.history.item, minlength=len(ctx.catalog.items)).astype(float)
        return _outside_head(counts, rule.head_share)
    sellers = ctx.catalog.seller
    if sellers is None:
        return None
    codes, inverse = np.unique(sellers, return_inverse=True)
    small = _outside_head(np.bincount(inverse, minlength=len(codes)).astype(float), rule.head_share)
    return small[inverse]
