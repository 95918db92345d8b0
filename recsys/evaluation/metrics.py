"""Top-k metrics over ranked lists.

``recs`` maps a user to the ranked item ids recommended; ``truth`` maps a user to the set of
relevant items. Accuracy metrics average over users with at least one relevant item (a user
without one cannot be scored); a user with no recommendations scores zero.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

Recs = Mapping[str, Sequence[str]]
Truth = Mapping[str, set[str]]


def _check(recs: Recs, k: int) -> None:
    if k <= 0:
        raise ValueError(f"k must be positive, got {k}")
    if not isinstance(recs, Mapping):
        raise TypeError("recommendations must map user ids to ranked item lists")
    for u, items in recs.items():
        if len(set(items)) != len(items):
            raise ValueError(f"user {u!r}: the list repeats an item")


def _per_user(recs: Recs, truth: Truth, k: int, fn) -> np.ndarray:
    _check(recs, k)
    vals = [fn(list(recs.get(u, ()))[:k], rel) for u, rel in truth.items() if rel]
    return np.array(vals, dtype=float)


def ndcg_values(recs: Recs, truth: Truth, k: int = 10) -> np.ndarray:
    disc = 1.0 / np.log2(np.arange(2, k + 2))

    def one(top: list[str], rel: set[str]) -> float:
        gains = np.array([i in rel for i in top], dtype=float)
        return float((gains * disc[: len(top)]).sum() / disc[: min(len(rel), k)].sum())

    return _per_user(recs, truth, k, one)


def recall_values(recs: Recs, truth: Truth, k: int = 10) -> np.ndarray:
    return _per_user(recs, truth, k, lambda top, rel: len(rel.intersection(top)) / len(rel))


def precision_values(recs: Recs, truth: Truth, k: int = 10) -> np.ndarray:
    """Hits over k (not over the list length): a short list is not rewarded."""
    return _per_user(recs, truth, k, lambda top, rel: len(rel.intersection(top)) / k)


def hit_values(recs: Recs, truth: Truth, k: int = 10) -> np.ndarray:
    return _per_user(recs, truth, k, lambda top, rel: float(bool(rel.intersection(top))))


def mrr_values(recs: Recs, truth: Truth, k: int = 10) -> np.ndarray:
    def one(top: list[str], rel: set[str]) -> float:
        return next((1.0 / (r + 1) for r, i in enumerate(top) if i in rel), 0.0)

    return _per_user(recs, truth, k, one)


def ap_values(recs: Recs, truth: Truth, k: int = 10) -> np.ndarray:
    """Average precision at k, normalized by min(|relevant|, k)."""

    def one(top: list[str], rel: set[str]) -> float:
        hits, total = 0, 0.0
        for r, i in enumerate(top):
            if i in rel:
                hits += 1
                total += hits / (r + 1)
        return total / min(len(rel), k)

    return _per_user(recs, truth, k, one)


def catalog_coverage(recs: Recs, n_items: int, k: int = 10) -> float:
    """Share of the catalogue that appears in at least one top-k list."""
    _check(recs, k)
    shown = {i for items in recs.values() for i in list(items)[:k]}
    return len(shown) / n_items if n_items else 0.0


ACCURACY = {
    "ndcg": ndcg_values,
    "recall": recall_values,
    "precision": precision_values,
    "hit_rate": hit_values,
    "mrr": mrr_values,
    "map": ap_values,
}


def accuracy(recs: Recs, truth: Truth, k: int = 10) -> dict[str, float]:
    return {f"{name}@{k}": float(fn(recs, truth, k).mean()) for name, fn in ACCURACY.items()}
