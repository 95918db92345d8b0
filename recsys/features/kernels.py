"""Compiled loops (numba) for the look-ups numpy can only do in many passes over the data.

A request asks whether a few dozen (row, column) pairs are stored in a sorted-rows CSR table
(co-occurrence counts, which customers did what): one binary search per pair in its own row.
numpy has no per-row search, so it either lays the rows end to end (tens of thousands of
entries copied for forty pairs) or bisects every pair at once in a dozen passes; compiled, it
is the plain loop. numba is a dependency (``shap`` needs it too); this module imports it, so
it is imported only where a look-up is first made (a process that never makes one does not pay
for loading it). Compiled code is cached next to this file, or in numba's user cache directory
when the package's is read-only, so only the first process compiles each signature (where
neither is writable, every process compiles, and a warning says so). Every kernel checks its
indices (``boundscheck``): a bad index raises ``IndexError``, as numpy does, never reads
another array's memory. numba's cache notices a change to a kernel's own
file only, so a kernel never calls a kernel of another module (``_cosine`` here and in
:mod:`recsys.rerank.kernels` are each their module's own).
"""

from __future__ import annotations

import logging

import numba
import numpy as np

log = logging.getLogger("recsys.kernels")


def jit(fn=None, **options):
    """``njit`` with the GIL released; cached on disk where numba finds a place for it.
    ``options`` go to ``njit`` (``@jit(fastmath=...)``)."""
    if fn is None:
        return lambda f: jit(f, **options)
    try:
        return numba.njit(cache=True, nogil=True, boundscheck=True, **options)(fn)
    except RuntimeError as exc:  # no writable cache location: compile in each process instead
        log.warning("compiled kernels are not cached (%s): every process compiles them", exc)
        return numba.njit(nogil=True, boundscheck=True, **options)(fn)


@jit
def _search(indptr, indices, r, c):  # pragma: no cover - compiled
    """Where column ``c`` is in row ``r`` (-1: not stored)."""
    lo = indptr[r]
    end = indptr[r + 1]
    hi = end
    while lo < hi:  # the first position whose entry is >= c
        mid = (lo + hi) >> 1
        if indices[mid] < c:
            lo = mid + 1
        else:
            hi = mid
    return lo if lo < end and indices[lo] == c else -1


@jit
def _csr_find(indptr, indices, rows, cols, hit, at):  # pragma: no cover - compiled
    for n in range(rows.shape[0]):
        k = _search(indptr, indices, rows[n], cols[n])
        hit[n] = k >= 0
        at[n] = k if k >= 0 else 0


@jit
def _csr_has(indptr, indices, rows, cols, out):  # pragma: no cover - compiled
    for n in range(rows.shape[0]):
        out[n] = rows[n] >= 0 and _search(indptr, indices, rows[n], cols[n]) >= 0


@jit
def _csr_values(indptr, indices, values, rows, cols, out):  # pragma: no cover - compiled
    for n in range(rows.shape[0]):
        k = _search(indptr, indices, rows[n], cols[n])
        out[n] = values[k] if k >= 0 else 0


@jit
def _csr_grid(indptr, indices, values, rows, cols, out):  # pragma: no cover - compiled
    for a in range(rows.shape[0]):
        for b in range(cols.shape[0]):
            k = _search(indptr, indices, rows[a], cols[b])
            out[a, b] = values[k] if k >= 0 else 0


def csr_find(
    indptr: np.ndarray, indices: np.ndarray, rows: np.ndarray, cols: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Is ``cols[n]`` stored in row ``rows[n]`` of a CSR layout with sorted rows, and where
    (``at`` is 0 where not ``hit``)."""
    rows = np.ascontiguousarray(rows, dtype=np.int64)
    cols = np.ascontiguousarray(cols, dtype=np.int64)
    hit = np.empty(len(rows), dtype=np.bool_)
    at = np.empty(len(rows), dtype=np.int64)
    if len(rows):
        _csr_find(indptr, indices, rows, cols, hit, at)
    return hit, at


def csr_grid(
    indptr: np.ndarray,
    indices: np.ndarray,
    values: np.ndarray,
    rows: np.ndarray,
    cols: np.ndarray,
) -> np.ndarray:
    """``len(rows) x len(cols)``: the stored value of every (row, column) pair, 0.0 where the
    pair is not stored (a CSR layout with sorted rows)."""
    rows = np.ascontiguousarray(rows, dtype=np.int64)
    cols = np.ascontiguousarray(cols, dtype=np.int64)
    out = np.empty((len(rows), len(cols)))
    if out.size:
        _csr_grid(indptr, indices, values, rows, cols, out)
    return out


def csr_values(
    indptr: np.ndarray,
    indices: np.ndarray,
    values: np.ndarray,
    rows: np.ndarray,
    cols: np.ndarray,
) -> np.ndarray:
    """The stored value of each pair ``(rows[n], cols[n])``, 0.0 where it is not stored."""
    rows = np.ascontiguousarray(rows, dtype=np.int64)
    cols = np.ascontiguousarray(cols, dtype=np.int64)
    out = np.empty(len(rows))
    if len(rows):
        _csr_values(indptr, indices, values, rows, cols, out)
    return out


def csr_has(
    indptr: np.ndarray, indices: np.ndarray, rows: np.ndarray, cols: np.ndarray
) -> np.ndarray:
    """Is ``cols[n]`` stored in row ``rows[n]`` (a row below 0: no row, nothing stored)?"""
    rows = np.ascontiguousarray(rows, dtype=np.int64)
    cols = np.ascontiguousarray(cols, dtype=np.int64)
    out = np.empty(len(rows), dtype=np.bool_)
    if len(rows):
        _csr_has(indptr, indices, rows, cols, out)
    return out


@jit
def _best_share(share, row_user, codes, out):  # pragma: no cover - compiled
    for r in range(codes.shape[0]):
        u = row_user[r]
        best = -np.inf
        found = False
        for c in range(codes.shape[1]):
            code = codes[r, c]
            if code >= 0:
                found = True
                if share[u, code] > best:
                    best = share[u, code]
        out[r] = max(best, 0.0) if found else 0.0


def best_share(share: np.ndarray, row_user: np.ndarray, codes: np.ndarray) -> np.ndarray:
    """Per row ``r``: the largest ``share[row_user[r], code]`` over the codes of row ``r``
    (``codes``: rows x slots, -1 pads), floored at 0; 0 for a row without codes."""
    out = np.empty(len(codes))
    if len(codes):
        _best_share(
            np.ascontiguousarray(share, dtype=np.float64),
            np.ascontiguousarray(row_user, dtype=np.int64),
            np.ascontiguousarray(codes),
            out,
        )
    return out


@jit
def _others_both(
    cooc_indptr, cooc_indices, cooc_counts, did_indptr, did_indices, w, item_did, j, item
):  # pragma: no cover - compiled
    """Other customers who chose both ``j`` and ``item``: the co-occurrence count, less the
    reader ``w`` (-1: none; ``item_did``: they chose ``item``) when they chose both."""
    k = _search(cooc_indptr, cooc_indices, j, item)
    n = cooc_counts[k] if k >= 0 else 0
    if item_did and w >= 0 and _search(did_indptr, did_indices, w, j) >= 0:
        n -= 1  # the reader chose both: never counted among the others
    return n


@jit
def _cited_history(
    contrib,
    c_start,
    hist,
    h_start,
    items,
    i_start,
    who,
    cooc_indptr,
    cooc_indices,
    cooc_counts,
    did_indptr,
    did_indices,
    top,
    has,
    item_of,
    count_of,
):  # pragma: no cover - compiled
    for p in range(who.shape[0]):
        nh = h_start[p + 1] - h_start[p]
        ni = i_start[p + 1] - i_start[p]
        base = c_start[p]
        w = who[p]
        for col in range(ni):
            out = i_start[p] + col
            item = items[out]
            has[out] = False
            item_of[out] = -1
            count_of[out] = 0.0
            item_did = w >= 0 and _search(did_indptr, did_indices, w, item) >= 0
            taken = 0
            last_v = np.inf
            last_row = -1
            while taken < top and taken < nh:
                # the next largest contribution in the column (ties: the earlier history item)
                row = -1
                v = 0.0
                for r in range(nh):
                    x = contrib[base + r * ni + col]
                    after = x < last_v or (x == last_v and r > last_row)
                    if after and (row < 0 or x > v):
                        row, v = r, x
                if row < 0:
                    break
                last_v, last_row = v, row
                taken += 1
                j = hist[h_start[p] + row]
                if not (v > 0) or j == item:
                    continue
                n = _others_both(
                    cooc_indptr, cooc_indices, cooc_counts, did_indptr, did_indices,
                    w, item_did, j, item,
                )  # fmt: skip
                if n > 0:
                    has[out] = True
                    item_of[out] = j
                    count_of[out] = n
                    break


def cited_history(
    contribs: list[np.ndarray],
    hists: list[np.ndarray],
    lists: list[np.ndarray],
    who: np.ndarray,
    cooc: tuple[np.ndarray, np.ndarray, np.ndarray],
    did: tuple[np.ndarray, np.ndarray],
    top: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For each user ``p`` and each item of ``lists[p]``: of the ``top`` history items
    (``hists[p]``) adding most to it (``contribs[p]``: history x items; ties: the earlier
    history item), the first with a positive part, other than the item itself, that other
    customers also chose with the item: ``(has, item, count)`` per item of the lists laid end
    to end. Other customers: the co-occurrence count (``cooc``: indptr, indices, counts) less
    the reader ``who[p]`` (a row of ``did``, -1: none) when they chose both."""

    def starts(parts: list[np.ndarray]) -> np.ndarray:
        return np.concatenate([[0], np.cumsum([p.size for p in parts])]).astype(np.int64)

    flat = [np.ascontiguousarray(c, dtype=np.float64).ravel() for c in contribs]
    items = np.concatenate([np.empty(0, np.int64), *lists]).astype(np.int64)
    n = len(items)
    has, item_of, count_of = np.zeros(n, bool), np.full(n, -1, np.int64), np.zeros(n)
    if n:
        _cited_history(
            np.concatenate([np.empty(0), *flat]), starts(flat),
            np.concatenate([np.empty(0, np.int64), *hists]).astype(np.int64), starts(hists),
            items, starts(lists), np.ascontiguousarray(who, dtype=np.int64),
            *cooc, *did, int(top), has, item_of, count_of,
        )  # fmt: skip
    return has, item_of, count_of


@jit
def _chosen_with(
    recent,
    owner,
    items,
    who,
    cooc_indptr,
    cooc_indices,
    cooc_counts,
    did_indptr,
    did_indices,
    best_item,
    best_n,
):  # pragma: no cover - compiled
    for r in range(items.shape[0]):
        p = owner[r]
        item = items[r]
        w = who[p]
        item_did = w >= 0 and _search(did_indptr, did_indices, w, item) >= 0
        best_item[r] = recent[p, 0]
        best_n[r] = 0.0
        for s in range(recent.shape[1]):
            j = recent[p, s]
            if j < 0 or j == item:
                continue
            n = _others_both(
                cooc_indptr, cooc_indices, cooc_counts, did_indptr, did_indices,
                w, item_did, j, item,
            )  # fmt: skip
            if n > best_n[r]:
                best_item[r] = j
                best_n[r] = n


def chosen_with(
    recent: np.ndarray,
    owner: np.ndarray,
    items: np.ndarray,
    who: np.ndarray,
    cooc: tuple[np.ndarray, np.ndarray, np.ndarray],
    did: tuple[np.ndarray, np.ndarray],
) -> tuple[np.ndarray, np.ndarray]:
    """Per row ``r``: of its user's recent items (``recent[owner[r]]``, -1 pads), the one
    that most other customers chose with ``items[r]`` (the first on a tie) and that count
    (0: none did). Other customers: the co-occurrence count (``cooc``) less the reader
    ``who[owner[r]]`` (a row of ``did``, -1: none) when they chose both."""
    n = len(items)
    best_item, best_n = np.empty(n, dtype=np.int64), np.empty(n)
    if n:
        _chosen_with(
            np.ascontiguousarray(recent, dtype=np.int64),
            np.ascontiguousarray(owner, dtype=np.int64),
            np.ascontiguousarray(items, dtype=np.int64),
            np.ascontiguousarray(who, dtype=np.int64),
            *cooc, *did, best_item, best_n,
        )  # fmt: skip
    return best_item, best_n


@jit
def _numpy_sum(a, n):  # pragma: no cover - compiled
    """``a[:n].sum()`` as numpy adds a short row (its pairwise sum: one by one from 0.0 below
    eight values, else eight running sums added in a fixed tree, then the rest)."""
    if n < 8:
        res = 0.0
        for i in range(n):
            res += a[i]
        return res
    r0, r1, r2, r3 = a[0], a[1], a[2], a[3]
    r4, r5, r6, r7 = a[4], a[5], a[6], a[7]
    i = 8
    while i + 8 <= n:
        r0 += a[i]
        r1 += a[i + 1]
        r2 += a[i + 2]
        r3 += a[i + 3]
        r4 += a[i + 4]
        r5 += a[i + 5]
        r6 += a[i + 6]
        r7 += a[i + 7]
        i += 8
    res = ((r0 + r1) + (r2 + r3)) + ((r4 + r5) + (r6 + r7))
    while i < n:
        res += a[i]
        i += 1
    return res


@jit(fastmath={"reassoc"})
def _row_dots(Y, rows, v, out):  # pragma: no cover - compiled
    for r in range(rows.shape[0]):
        y = Y[rows[r]]
        acc = 0.0
        for f in range(v.shape[0]):
            acc += y[f] * v[f]
        out[r] = acc


def row_dots(Y: np.ndarray, rows: np.ndarray, v: np.ndarray) -> np.ndarray:
    """``Y[rows] @ v`` in float64 without gathering the rows (reassociated into vector lanes:
    the order of additions is the compiled loop's, the same for every row and call)."""
    rows = np.ascontiguousarray(rows, dtype=np.int64)
    out = np.empty(len(rows))
    if len(rows):
        _row_dots(Y, rows, np.ascontiguousarray(v, dtype=np.float64), out)
    return out


@jit(fastmath={"reassoc"})
def _cosine(unit, a, b):  # pragma: no cover - compiled
    """``unit[a] . unit[b]`` in float64. Reassociation lets the sum run in vector lanes: the
    order of additions is the compiled loop's, the same for every pair and every call."""
    x, y = unit[a], unit[b]
    s = 0.0
    for d in range(x.shape[0]):
        s += np.float64(x[d]) * np.float64(y[d])
    return s


@jit
def _most_similar(unit, recent, owner, items, out):  # pragma: no cover - compiled
    for r in range(items.shape[0]):
        p = owner[r]
        best = -1
        value = 0.0
        for s in range(recent.shape[1]):
            j = recent[p, s]
            if j < 0 or j == items[r]:
                continue
            c = _cosine(unit, j, items[r])
            if best < 0 or c > value:
                best, value = j, c
        out[r] = best


def most_similar(
    unit: np.ndarray, recent: np.ndarray, owner: np.ndarray, items: np.ndarray
) -> np.ndarray:
    """Per row ``r``: of its user's recent items (``recent[owner[r]]``, -1 pads), the one
    whose unit vector is closest to ``items[r]``'s (the first on a tie; never the item
    itself; -1: none)."""
    out = np.empty(len(items), dtype=np.int64)
    if len(items):
        _most_similar(
            unit, np.ascontiguousarray(recent, dtype=np.int64),
            np.ascontiguousarray(owner, dtype=np.int64),
            np.ascontiguousarray(items, dtype=np.int64), out,
        )  # fmt: skip
    return out


@jit
def _cooc_mean(indptr, indices, counts, cust, recent, row_user, cand, out):  # pragma: no cover
    for r in range(cand.shape[0]):
        u = row_user[r]
        c = cand[r]
        total = 0.0
        n = 0
        for s in range(recent.shape[1]):
            j = recent[u, s]
            if j < 0:
                break
            k = _search(indptr, indices, j, c)
            v = np.float64(counts[k]) if k >= 0 else 0.0
            total += v / np.sqrt((cust[c] + 1.0) * (cust[j] + 1.0))
            n += 1
        out[r] = total / n if n else np.nan


def cooc_mean(
    indptr: np.ndarray,
    indices: np.ndarray,
    counts: np.ndarray,
    cust: np.ndarray,
    recent: np.ndarray,
    row_user: np.ndarray,
    cand: np.ndarray,
) -> np.ndarray:
    """Per row ``r``: the mean over its user's recent items ``j`` (``recent[row_user[r]]``,
    -1 pads at the end) of ``count(j, c) / sqrt((cust[c] + 1) (cust[j] + 1))`` for the
    candidate ``c = cand[r]``, summed in the recent items' order as numpy's mean over them
    does; NaN for a user with no recent item."""
    out = np.empty(len(cand))
    if len(cand):
        _cooc_mean(
            indptr, indices, counts, np.ascontiguousarray(cust, dtype=np.float64),
            np.ascontiguousarray(recent, dtype=np.int64),
            np.ascontiguousarray(row_user, dtype=np.int64),
            np.ascontiguousarray(cand, dtype=np.int64), out,
        )  # fmt: skip
    return out


@jit
def _rebuy_cycles(bought, ts, start, as_of, gaps, day, row_user, cand, out):  # pragma: no cover
    for r in range(cand.shape[0]):
        u = row_user[r]
        c = cand[r]
        last = np.nan
        for k in range(start[u], start[u + 1]):
            if bought[k] == c:
                last = np.float64(ts[k])
                break
        gap = gaps[c] if np.isfinite(gaps[c]) else 30.0
        out[r] = (np.float64(as_of[u]) - last) / day / gap


def rebuy_cycles(
    bought: np.ndarray,
    ts: np.ndarray,
    start: np.ndarray,
    as_of: np.ndarray,
    gaps: np.ndarray,
    day: int,
    row_user: np.ndarray,
    cand: np.ndarray,
) -> np.ndarray:
    """Per row ``r``: the time since its user (``row_user[r]``) last bought ``cand[r]``, in
    days (``day`` seconds) and then in units of the item's re-buy cycle ``gaps`` (30 where it
    is not finite); NaN where they never bought it. Each user's distinct bought items are
    ``bought[start[u]:start[u + 1]]``, at times ``ts``; ``as_of``: each user's request time.
    The same operations, in the same order, as numpy's ``(as_of - last) / day / gap``."""
    out = np.empty(len(cand))
    if len(cand):
        _rebuy_cycles(
            np.ascontiguousarray(bought, dtype=np.int64),
            np.ascontiguousarray(ts, dtype=np.int64),
            np.ascontiguousarray(start, dtype=np.int64),
            np.ascontiguousarray(as_of, dtype=np.int64),
            np.ascontiguousarray(gaps, dtype=np.float64), float(day),
            np.ascontiguousarray(row_user, dtype=np.int64),
            np.ascontiguousarray(cand, dtype=np.int64), out,
        )  # fmt: skip
    return out


@jit
def _clear_products(mask, owner, items, has_twin, product, indptr, indices):  # pragma: no cover
    for n in range(items.shape[0]):
        o = owner[n]
        i = items[n]
        mask[o, i] = False
        if has_twin[i]:
            p = product[i]
            for k in range(indptr[p], indptr[p + 1]):
                mask[o, indices[k]] = False


def clear_products(
    mask: np.ndarray,
    owner: np.ndarray,
    items: np.ndarray,
    has_twin: np.ndarray,
    product: np.ndarray,
    indptr: np.ndarray,
    indices: np.ndarray,
) -> None:
    """``mask[owner[n], j] = False`` for ``items[n]`` and, when it has twins (``has_twin``),
    every item ``j`` of its product (``product``; a product's items are row ``product[i]`` of
    the CSR layout ``indptr``, ``indices``), in place."""
    if len(items):
        _clear_products(
            mask, np.ascontiguousarray(owner, dtype=np.int64),
            np.ascontiguousarray(items, dtype=np.int64), has_twin, product, indptr, indices,
        )  # fmt: skip


@jit
def _recent_similarity(unit, recent, row_user, cand, first, out):  # pragma: no cover
    width = recent.shape[1]
    vals = np.empty(width)
    for r in range(cand.shape[0]):
        u = row_user[r]
        n_first = n_all = 0
        best = -np.inf
        for s in range(width):
            j = recent[u, s]
            if j < 0:
                vals[s] = 0.0
                continue
            x = _cosine(unit, j, cand[r])
            vals[s] = x
            n_all += 1
            if s < first:
                n_first += 1
            if x > best:
                best = x
        out[0, r] = _numpy_sum(vals, first) / n_first if n_first > 0 else np.nan
        out[1, r] = best if n_all > 0 else np.nan
        out[2, r] = _numpy_sum(vals, width) / n_all if n_all > 0 else np.nan


def recent_similarity(
    unit: np.ndarray, recent: np.ndarray, row_user: np.ndarray, cand: np.ndarray, first: int
) -> np.ndarray:
    """Per row ``r`` (3 x rows), from the cosines of ``cand[r]`` to its user's recent items
    (``recent[row_user[r]]``, -1 pads): their mean over the first ``first`` recent items,
    their largest and their mean over all, NaN for a user with no recent item; the cosines
    are :func:`_cosine`'s (the "similar to" evidence's), each mean adds as numpy sums a row
    (:func:`_numpy_sum`)."""
    out = np.empty((3, len(cand)))
    if len(cand):
        _recent_similarity(
            unit, np.ascontiguousarray(recent, dtype=np.int64),
            np.ascontiguousarray(row_user, dtype=np.int64),
            np.ascontiguousarray(cand, dtype=np.int64), int(min(first, recent.shape[1])), out,
        )  # fmt: skip
    return out
