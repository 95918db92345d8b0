"""Top-k metrics over ranked lists.

``recs`` maps a user to the ranked item ids recommended; ``truth`` maps a user to the set of
relevant items. Accuracy metrics average over users with at least one relevant item (a user
without one cannot be scored); a user with no recommendations scores zero.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

Recs = Mapping[str, Sequence[str]]
Truth = Mapping[str, set[str]]


def read_recommendations(path: str) -> dict[str, list[str]]:
    """Ranked lists from a CSV or Parquet file with ``user_id, item_id, rank`` (as
    ``recsys recommend --out`` writes); fails with file, row and column on bad input."""
    from recsys.data.loaders import read_table
    from recsys.errors import DataValidationError

    df = read_table(path)
    missing = [c for c in ("user_id", "item_id", "rank") if c not in df.columns]
    if missing:
        raise DataValidationError(
            f"missing column(s) {missing} in a recommendations file", file=path, column=missing[0],
            expected="columns user_id, item_id, rank",
        )  # fmt: skip
    if df.empty:
        raise DataValidationError(
            "no recommendations in the file", file=path, expected="at least one row"
        )
    rank = pd.to_numeric(df["rank"], errors="coerce")
    bad = rank.isna() | (rank < 1) | (rank != rank.round())
    if bad.any():
        row = int(df.loc[bad, "_row"].iloc[0])
        raise DataValidationError(
            f"rank {df.loc[bad, 'rank'].iloc[0]!r} is not a positive whole number", file=path,
            row=row, column="rank", expected="ranks 1, 2, 3 ...",
        )  # fmt: skip
    dup = df.assign(rank=rank).duplicated(["user_id", "item_id"])
    if dup.any():
        row = int(df.loc[dup, "_row"].iloc[0])
        raise DataValidationError(
            "the same item appears twice in one user's list", file=path, row=row, column="item_id",
            expected="each item once per user",
        )  # fmt: skip
    df = df.assign(rank=rank).sort_values(["user_id", "rank"], kind="stable")
    return {str(u): g["item_id"].astype(str).tolist() for u, g in df.groupby("user_id", sort=True)}


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


def _weights(k: int) -> np.ndarray:
    return 1.0 / np.log2(np.arange(2, k + 2))


def exposure_share(recs: Recs, group: set[str], k: int = 10) -> float:
    """Share of position-discounted exposure (1/log2(rank+1)) that goes to ``group``."""
    _check(recs, k)
    w = _weights(k)
    total = hit = 0.0
    for items in recs.values():
        for r, i in enumerate(list(items)[:k]):
            total += w[r]
            hit += w[r] if i in group else 0.0
    return hit / total if total else 0.0


def exposure_gini(recs: Recs, catalog: Sequence[str], k: int = 10) -> float:
    """Gini coefficient of position-discounted exposure over the whole catalogue (0 = equal)."""
    _check(recs, k)
    w = _weights(k)
    idx = {i: n for n, i in enumerate(catalog)}
    exp = np.zeros(len(catalog))
    for items in recs.values():
        for r, i in enumerate(list(items)[:k]):
            if i in idx:
                exp[idx[i]] += w[r]
    if exp.sum() == 0:
        return 0.0
    x = np.sort(exp)
    n = len(x)
    return float((2 * np.arange(1, n + 1) - n - 1) @ x / (n * x.sum()))


def intra_list_diversity(recs: Recs, categories: Mapping[str, set[str]], k: int = 10) -> float:
    """Mean over lists of the mean pairwise category distance (1 - Jaccard) within the list."""
    _check(recs, k)
    vals = []
    for items in recs.values():
        top = list(items)[:k]
        if len(top) < 2:
            continue
        d = []
        for a in range(len(top)):
            for b in range(a + 1, len(top)):
                ca, cb = categories.get(top[a], set()), categories.get(top[b], set())
                union = len(ca | cb)
                d.append(1 - len(ca & cb) / union if union else 0.0)
        vals.append(np.mean(d))
    return float(np.mean(vals)) if vals else 0.0


def novelty(recs: Recs, popularity: Mapping[str, float], n_users: int, k: int = 10) -> float:
    """Mean self-information -log2(share of users who chose the item) of recommended items."""
    _check(recs, k)
    vals = [
        -np.log2(max(popularity.get(i, 0.0), 1.0) / n_users)
        for items in recs.values()
        for i in list(items)[:k]
    ]
    return float(np.mean(vals)) if vals else 0.0


def miscalibration(
    recs: Recs,
    history: Mapping[str, Sequence[str]],
    categories: Mapping[str, set[str]],
    k: int = 10,
    alpha: float = 0.01,
) -> float:
    """Mean KL(p || q~) between each user's category mix in history (p) and in their list (q),
    with q~ = (1 - alpha) q + alpha p as in Steck (RecSys 2018); 0 = perfectly calibrated."""
    _check(recs, k)

    def mix(items: Sequence[str]) -> dict[str, float]:
        out: dict[str, float] = {}
        for i in items:
            cs = categories.get(i, set())
            for c in cs:
                out[c] = out.get(c, 0.0) + 1.0 / len(cs)
        total = sum(out.values())
        return {c: v / total for c, v in out.items()} if total else {}

    vals = []
    for u, items in recs.items():
        p = mix(history.get(u, ()))
        if not p:
            continue
        q = mix(list(items)[:k])
        vals.append(
            sum(pv * np.log(pv / ((1 - alpha) * q.get(c, 0.0) + alpha * pv)) for c, pv in p.items())
        )
    return float(np.mean(vals)) if vals else 0.0
