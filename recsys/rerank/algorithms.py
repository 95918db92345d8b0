"""Re-ranking algorithms on arrays: MMR diversity, FA*IR prefix fairness, calibration.

Each takes candidate indices with relevance scores (best first) and returns a new order; all are
deterministic (ties broken by position in the input).
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import numpy as np
from scipy.stats import binom

RowsOf = Callable[[np.ndarray, np.ndarray], np.ndarray]
"""``rows(lists, j)``: for each ``r``, the similarity of the item at position ``j[r]`` of list
``lists[r]`` to every position of that list (len(lists) x positions); of a full matrix,
``sim[lists, j]``. One that also has ``row(b, j)`` (the row ``j`` of list ``b`` alone) serves
a block of one list without the fancy indexing of a call per step."""
PrefixCheck = Callable[[np.ndarray, np.ndarray], np.ndarray]
"""``enough(lists, chosen)``: for each of ``lists``, whether the first positions of its new
order (a row of ``chosen``, len(lists) x steps so far) are all its reader needs: a reader
given only that prefix returns what it returns given the whole order."""


EARLIEST_CHECK = 4
""":func:`mmr_many` first asks ``enough`` after this many steps ..."""
CHECK_EVERY = 4
"""... then again after every this many."""


def mmr(scores: np.ndarray, sim: np.ndarray, k: int, lam: float) -> np.ndarray:
    """Maximal marginal relevance: ``lam * relevance - (1 - lam) * max similarity to chosen``.

    ``scores`` are min-max scaled first so ``lam`` means the same whatever the score scale.
    Returns positions into ``scores`` (length ``min(k, n)``).
    """
    n = len(scores)
    return mmr_many(scores[None, :], sim[None], np.array([n]), k, lam)[0][: min(k, n)]


def mmr_many(
    scores: np.ndarray,
    sim: np.ndarray | RowsOf,
    lengths: np.ndarray,
    k: int,
    lam: float,
    *,
    enough: PrefixCheck | None = None,
) -> np.ndarray:
    """:func:`mmr` for a block of lists at once (the greedy steps run over every list together).

    ``scores`` is lists x positions (entries past a list's length are ignored); ``sim`` lists x
    positions x positions, or the function giving the rows of it that the steps read. Row ``b``
    of the result, cut to ``min(k, lengths[b])``, is exactly what :func:`mmr` gives for list
    ``b`` alone. With ``enough``, a list stops being ordered once its prefix is enough (a
    greedy step never depends on later ones, so each prefix is the full order's): the rest of
    its row is -1.
    """
    n_lists, width = scores.shape
    rows_of = sim if callable(sim) else (lambda lists, j: sim[lists, j])
    valid = np.arange(width)[None, :] < lengths[:, None]
    scores = np.where(valid, scores, 0.0)
    lo = np.where(valid, scores, np.inf).min(axis=1, initial=np.inf)
    hi = np.where(valid, scores, -np.inf).max(axis=1, initial=-np.inf)
    lo = np.where(lengths > 0, lo, 0.0)
    span = np.where(lengths > 0, hi - lo, 0.0)
    scaled = (scores - lo[:, None]) / np.where(span > 0, span, 1.0)[:, None]
    rel = np.where(valid & (span > 0)[:, None], scaled, 0.0)
    steps = min(k, width)
    chosen = np.full((n_lists, steps), -1, dtype=np.int64)
    max_sim = np.zeros((n_lists, width))
    # value = lam * rel - (1 - lam) * max_sim where free, -inf where taken: ``base`` holds
    # lam * rel + (0 where free, -inf where taken or padding), the same sums as adding the
    # -inf afterwards (adding 0.0 changes no value), so a step is few passes over the block
    keep = 1 - lam
    base = lam * rel + np.where(valid, 0.0, -np.inf)
    if n_lists == 1:  # one request: the same steps on one row, without a block's indexing
        _mmr_one(chosen[0], base[0], max_sim[0], keep, rows_of, enough)
        return chosen
    value = np.empty((n_lists, width))
    active = np.arange(n_lists)  # the lists still being ordered; the arrays above follow it
    local = active
    check = EARLIEST_CHECK if enough is not None else steps + 1
    for step in range(steps):
        np.multiply(max_sim, keep, out=value)
        np.subtract(base, value, out=value)
        j = value.argmax(axis=1)  # first maximum: ties keep input order
        chosen[active, step] = j
        base[local, j] = -np.inf
        np.maximum(max_sim, rows_of(active, j), out=max_sim)
        if enough is not None and step + 1 == check:
            check += CHECK_EVERY
            done = enough(active, chosen[active, : step + 1])
            if done.all():
                break
            if done.any():  # those lists' orders are placed as far as their reader reads
                go = ~done
                active, base, max_sim = active[go], base[go], max_sim[go]
                value, local = value[go], np.arange(int(go.sum()))
    return chosen


def _mmr_one(
    chosen: np.ndarray,
    base: np.ndarray,
    max_sim: np.ndarray,
    keep: float,
    rows_of: RowsOf,
    enough: PrefixCheck | None,
) -> None:
    """:func:`mmr_many`'s steps for a block of one list, in place on its rows (``chosen`` is
    filled, ``base`` and ``max_sim`` are used up): the same sums on one row give the same
    order."""
    value = np.empty_like(base)
    which, at = np.zeros(1, dtype=np.int64), np.zeros(1, dtype=np.int64)
    row = getattr(rows_of, "row", None)  # a source that reads one row without fancy indexing
    check = EARLIEST_CHECK if enough is not None else len(chosen) + 1
    for step in range(len(chosen)):
        np.multiply(max_sim, keep, out=value)
        np.subtract(base, value, out=value)
        j = int(value.argmax())  # first maximum: ties keep input order
        chosen[step] = j
        base[j] = -np.inf
        if row is not None:
            np.maximum(max_sim, row(0, j), out=max_sim)
        else:
            at[0] = j
            np.maximum(max_sim, rows_of(which, at)[0], out=max_sim)
        if step + 1 == check:
            check += CHECK_EVERY
            if enough(which, chosen[None, : step + 1])[0]:
                return


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
