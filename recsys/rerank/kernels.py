"""Compiled MMR (numba): the greedy steps and the item similarities they read, in one loop.

A step reads one row of the list's similarity matrix (the item just placed against every
other); numpy needs several passes per step and computed rows in bands to keep BLAS busy, and
a request spent most of its re-ranking in that overhead. Here a similarity is computed when a
step reads it, by the same compiled code for every pair, so a list's order is the same
whichever lists share a call (as with BLAS, the last bit of a cosine may differ between CPUs).
Imported where MMR first runs (numba's loading cost, see :mod:`recsys.features.kernels`).
"""

from __future__ import annotations

import numpy as np

from recsys.features.kernels import jit


@jit(fastmath={"reassoc"})
def _cosine(unit, a, b):  # pragma: no cover - compiled
    """``unit[a] . unit[b]`` in float64. Reassociation lets the sum run in vector lanes: the
    order of additions is the compiled loop's, the same for every pair and every call. (This
    module's own: see :mod:`recsys.features.kernels` on numba's cache.)"""
    x, y = unit[a], unit[b]
    s = 0.0
    for d in range(x.shape[0]):
        s += np.float64(x[d]) * np.float64(y[d])
    return s


@jit
def _similarity(unit, codes, fw, a, b):  # pragma: no cover - compiled
    """``fw`` * factor cosine + (1 - ``fw``) * Jaccard of the two items' category codes
    (distinct per item, -1 pads; no category on either side: 0)."""
    ca, cb = codes[a], codes[b]
    inter = size_a = size_b = 0
    for c1 in range(ca.shape[0]):
        if ca[c1] >= 0:
            size_a += 1
            for c2 in range(cb.shape[0]):
                if cb[c2] == ca[c1]:
                    inter += 1
    for c2 in range(cb.shape[0]):
        if cb[c2] >= 0:
            size_b += 1
    union = size_a + size_b - inter
    jac = inter / union if union > 0 else 0.0
    return fw * _cosine(unit, a, b) + (1.0 - fw) * jac


@jit
def similarity_matrix(unit, codes, fw, items, out):  # pragma: no cover - compiled
    """``out[b, j, m]``: the similarity of items ``items[b, j]`` and ``items[b, m]``."""
    for b in range(items.shape[0]):
        for j in range(items.shape[1]):
            for m in range(items.shape[1]):
                out[b, j, m] = _similarity(unit, codes, fw, items[b, j], items[b, m])


@jit
def mmr_order(
    scores, lam, lengths, flags, need_p, need_o, dense, unit, codes, fw, items, chosen
):  # pragma: no cover - compiled
    """Per list ``b``: the greedy MMR order of its first ``lengths[b]`` positions into
    ``chosen[b]`` (already -1), stopping once the placed prefix holds ``need_p[b]`` positions
    flagged in ``flags`` and ``need_o[b]`` others. A step takes the first maximum of ``lam *
    relevance - (1 - lam) * max_sim`` over the free positions, relevance being the scores
    min-max scaled (0 when they are all equal) and ``max_sim`` (from 0) the largest similarity
    to a placed item: read from ``dense`` (lists x positions x positions) when it has any, else
    computed from ``unit``, ``codes``, ``fw`` and ``items``."""
    use_dense = dense.shape[0] > 0
    keep = 1 - lam
    width = scores.shape[1]
    base = np.empty(width)
    max_sim = np.empty(width)
    for b in range(scores.shape[0]):
        n = lengths[b]
        if n == 0:
            continue
        lo, hi = scores[b, 0], scores[b, 0]
        for m in range(1, n):
            lo = min(lo, scores[b, m])
            hi = max(hi, scores[b, m])
        span = hi - lo
        for m in range(n):
            base[m] = lam * ((scores[b, m] - lo) / span) if span > 0 else lam * 0.0
            max_sim[m] = 0.0
        got_p = 0
        for step in range(min(n, chosen.shape[1])):
            if got_p >= need_p[b] and step - got_p >= need_o[b]:
                break
            j = -1
            best = 0.0
            for m in range(n):
                if base[m] == -np.inf:  # placed
                    continue
                v = base[m] - max_sim[m] * keep
                if j < 0 or v > best:
                    j, best = m, v
            chosen[b, step] = j
            base[j] = -np.inf
            if flags[b, j]:
                got_p += 1
            for m in range(n):
                if base[m] == -np.inf:  # placed: never read again
                    continue
                if use_dense:
                    s = dense[b, j, m]
                else:
                    s = _similarity(unit, codes, fw, items[b, j], items[b, m])
                if s > max_sim[m]:
                    max_sim[m] = s
