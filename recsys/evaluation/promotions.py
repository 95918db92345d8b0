"""What promotions cost in accuracy: the same users' lists with and without them, scored alike."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from recsys.evaluation.metrics import ndcg_values


def promotion_cost(
    without: Mapping[str, Sequence[str]],
    with_promotions: Mapping[str, Sequence[str]],
    truth: Mapping[str, set[str]],
    promoted: set[str],
    k: int = 10,
) -> dict[str, float]:
    """NDCG@k of both runs over the same users, the drop (absolute and relative) and the share
    of slots promoted items took in the run with promotions."""
    users = [u for u in without if u in with_promotions]
    a = {u: list(without[u])[:k] for u in users}
    b = {u: list(with_promotions[u])[:k] for u in users}
    t = {u: set(truth[u]) for u in users if truth.get(u)}
    base = float(np.mean(ndcg_values(a, t, k))) if t else 0.0
    promo = float(np.mean(ndcg_values(b, t, k))) if t else 0.0
    slots = sum(len(v) for v in b.values())
    taken = sum(1 for v in b.values() for i in v if i in promoted)
    return {
        "ndcg_without": base,
        "ndcg_with": promo,
        "ndcg_drop": base - promo,
        "relative_drop": (base - promo) / base if base > 0 else 0.0,
        "promoted_share": taken / slots if slots else 0.0,
        "users": float(len(users)),
    }
