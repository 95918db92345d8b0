"""Re-ranking algorithms on arrays: MMR diversity, FA*IR prefix fairness, calibration.

Each takes candidate indices with relevance scores (best first) and returns a new order; all are
deterministic (ties broken by position in the input).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
from scipy.stats import binom


@dataclass(frozen=True)
class Prefix:
    """How much of a new order its reader needs: the first positions holding ``need_p[b]``
    positions that ``flags[b]`` marks and ``need_o[b]`` others (lists x positions flags). A
    reader given only that prefix returns what it returns given the whole order."""

    flags: np.ndarray
    need_p: np.ndarray
    need_o: np.ndarray

    @classmethod
    def first(cls, n: np.ndarray, width: int) -> Prefix:
        """The first ``n[b]`` positions of each list, whatever they hold."""
        n = np.asarray(n, dtype=np.int64)
        return cls(np.zeros((len(n), width), dtype=bool), np.zeros(len(n), np.int64), n)


@dataclass(frozen=True)
class ItemSimilarity:
    """Item similarity: ``factor_weight`` * cosine of the items' unit factor vectors + the
    rest * Jaccard overlap of their categories (``codes``: each item's distinct category codes,
    -1 pads)."""

    unit: np.ndarray
    codes: np.ndarray
    factor_weight: float

    def matrix(self, items: np.ndarray) -> np.ndarray:
        """For lists x positions of items: lists x positions x positions."""
        from recsys.rerank import kernels  # numba loads where re-ranking first runs

        items = np.ascontiguousarray(items, dtype=np.int64)
        out = np.empty((*items.shape, items.shape[-1]))
        kernels.similarity_matrix(self.unit, self.codes, float(self.factor_weight), items, out)
        return out


def mmr(scores: np.ndarray, sim: np.ndarray, k: int, lam: float) -> np.ndarray:
    """Maximal marginal relevance: ``lam * relevance - (1 - lam) * max similarity to chosen``.

    ``scores`` are min-max scaled first so ``lam`` means the same whatever the score scale.
    Returns positions into ``scores`` (length ``min(k, n)``).
    """
    n = len(scores)
    return mmr_many(scores[None, :], sim[None], np.array([n]), k, lam)[0][: min(k, n)]


def mmr_many(
    scores: np.ndarray,
    sim: np.ndarray | tuple[ItemSimilarity, np.ndarray],
    lengths: np.ndarray,
    k: int,
    lam: float,
    *,
    stop: Prefix | None = None,
) -> np.ndarray:
    """:func:`mmr` for a block of lists at once, each ordered as it would be alone.

    ``scores`` is lists x positions (entries past a list's length are ignored); ``sim`` lists x
    positions x positions, or an :class:`ItemSimilarity` with the lists' items (lists x
    positions), whose similarities are computed as the steps read them. Row ``b`` of the
    result, cut to ``min(k, lengths[b])``, is the order of list ``b``. With ``stop``, a list
    stops being ordered once its prefix is what the reader needs (a greedy step never depends
    on later ones, so each prefix is the full order's): the rest of its row is -1.
    """
    from recsys.rerank import kernels  # numba loads where re-ranking first runs

    n_lists, width = scores.shape
    lengths = np.minimum(np.asarray(lengths, dtype=np.int64), width)
    chosen = np.full((n_lists, min(k, width)), -1, dtype=np.int64)
    stop = stop or Prefix.first(lengths, width)
    if isinstance(sim, tuple):
        spec, items = sim
        dense = np.empty((0, 0, 0))
        unit, codes, fw = spec.unit, spec.codes, float(spec.factor_weight)
        items = np.ascontiguousarray(items, dtype=np.int64)
    else:
        dense = np.ascontiguousarray(sim, dtype=np.float64)
        unit, codes, fw = np.empty((1, 1), np.float32), np.full((1, 1), -1), 0.0
        items = np.zeros((n_lists, width), dtype=np.int64)
    kernels.mmr_order(
        np.ascontiguousarray(scores, dtype=np.float64), float(lam), lengths,
        np.ascontiguousarray(stop.flags, dtype=np.bool_),
        np.asarray(stop.need_p, dtype=np.int64), np.asarray(stop.need_o, dtype=np.int64),
        dense, unit, codes, fw, items, chosen,
    )  # fmt: skip
    return chosen


@functools.lru_cache(maxsize=256)
def fair_table(k: int, p: float, alpha: float) -> tuple[int, ...]:
    """FA*IR minimum protected counts per prefix length 1..k (Zehlike et al., CIKM 2017).

    ``m(i) = F^-1(alpha; i, p)``: a prefix with fewer protected items than that would be unlikely
    (probability below ``alpha``) under fair sampling with protected proportion ``p``.
    """
    return tuple(int(binom.ppf(alpha, i, p)) for i in range(1, k + 1))


def fair_topk(protected: np.ndarray, k: int, p: float, alpha: float) -> np.ndarray:
    """FA*IR: take the best item, unless the prefix needs another protected one to pass.

    ``protected`` is in ranked order; returns positions into it. If too few protected items
    exist, the list takes what there is (the guarantee can only hold for what is available).
    """
    flags = np.asarray(protected).tolist()  # plain bools: read once per position below
    n = len(flags)
    k = min(k, n)
    table = fair_table(k, p, alpha)
    prot = [i for i, f in enumerate(flags) if f]
    other = [i for i, f in enumerate(flags) if not f]
    out: list[int] = []
    taken = 0
    pi = oi = 0
    for pos in range(k):
        need = table[pos]
        if taken < need and pi < len(prot):
            out.append(prot[pi])
            pi += 1
            taken += 1
            continue
        best_p = prot[pi] if pi < len(prot) else n
        best_o = other[oi] if oi < len(other) else n
        if best_p < best_o:
            out.append(best_p)
            pi += 1
            taken += 1
        else:
            out.append(best_o)
            oi += 1
    return np.array(out, dtype=np.int64)


def satisfies_fair(protected_in_order: np.ndarray, p: float, alpha: float) -> bool:
    """Does every prefix hold at least the FA*IR minimum of protected items?"""
    table = fair_table(len(protected_in_order), p, alpha)
    counts = np.cumsum(protected_in_order.astype(int))
    return bool(np.all(counts >= np.array(table)))


def position_weights(k: int) -> np.ndarray:
    """Exposure of each rank: the DCG discount 1/log2(rank + 1)."""
    return 1.0 / np.log2(np.arange(2, k + 2))


def calibrate(
    scores: np.ndarray,
    categories: np.ndarray,
    target: np.ndarray,
    k: int,
    lam: float,
    alpha: float = 0.01,
) -> np.ndarray:
    """Calibrated re-ranking (Steck, RecSys 2018): greedily maximize
    ``(1 - lam) * sum of relevance - lam * KL(p || q~)``, where ``p`` is the user's category mix,
    ``q`` the list's, and ``q~ = (1 - alpha) q + alpha p``.

    ``categories`` is an items x categories 0/1 matrix; each item's weight is split evenly over
    its categories. Returns positions into ``scores``.
    """
    n = len(scores)
    k = min(k, n)
    span = scores.max() - scores.min() if n else 0.0
    rel = (scores - scores.min()) / span if span > 0 else np.zeros(n)
    share = categories / np.maximum(categories.sum(axis=1, keepdims=True), 1)
    p = target / target.sum() if target.sum() > 0 else np.full(len(target), 1 / len(target))
    mass = np.zeros(len(p))
    chosen: list[int] = []
    free = np.ones(n, dtype=bool)
    total_rel = 0.0
    support = p > 0
    for step in range(k):
        cand = np.flatnonzero(free)
        q = (mass[None, :] + share[cand]) / (step + 1)
        qt = (1 - alpha) * q + alpha * p[None, :]
        kl = (p[support][None, :] * np.log(p[support][None, :] / qt[:, support])).sum(axis=1)
        value = (1 - lam) * (total_rel + rel[cand]) - lam * kl
        j = int(cand[int(np.argmax(value))])
        chosen.append(j)
        free[j] = False
        mass += share[j]
        total_rel += rel[j]
    return np.array(chosen, dtype=np.int64)
