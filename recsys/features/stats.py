"""Item statistics precomputed at fit time, so no request scans the customers of an item."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

ITEM_BLOCK = 2048
GATHER_LIMIT = 1 << 15
"""Pair look-ups whose rows hold up to this many entries in all search those rows laid end to
end; larger ones bisect every pair's row at once (the two cost about the same here, measured
on co-occurrence rows of 500 entries)."""


def unique_ints(a: np.ndarray) -> np.ndarray:
    """``np.unique`` of a 1-D integer array (sorted distinct values), by one sort: numpy's own
    hashes first, a fixed cost several times a request's whole sort of a few hundred items."""
    a = np.sort(np.asarray(a).ravel())
    return a[_starts(a)]


def first_of_each(key: np.ndarray) -> np.ndarray:
    """Where each distinct value of ``key`` first occurs, in order of the values: what
    ``np.unique(key, return_index=True)[1]`` gives, by one stable sort."""
    perm = np.argsort(key, kind="stable")
    return perm[_starts(key[perm])]


def _starts(s: np.ndarray) -> np.ndarray:
    """Of a sorted array: where each run of equal values begins."""
    keep = np.empty(len(s), dtype=bool)
    keep[:1] = True
    np.not_equal(s[1:], s[:-1], out=keep[1:])
    return keep


def csr_find(
    indptr: np.ndarray, indices: np.ndarray, rows: np.ndarray, cols: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Is ``cols[n]`` stored in row ``rows[n]`` of a CSR layout with sorted rows, and where
    (``at`` is only meaningful where ``hit``). Pairs of one row: one ``searchsorted`` in it.
    Pairs whose rows hold few entries in all (a request's reasons): those rows laid end to end
    as ``pair * 2**32 + column`` (still sorted), one ``searchsorted`` for every pair. Many
    pairs: a binary search over all of them at once, one step per halving of a row."""
    rows = np.asarray(rows, dtype=np.int64)
    cols = np.asarray(cols, dtype=np.int64)
    if not len(rows):
        return np.zeros(0, dtype=bool), np.zeros(0, dtype=np.int64)
    lo = indptr[rows].astype(np.int64)
    hi = indptr[rows + 1].astype(np.int64)
    if rows.min() == rows.max():  # one row (one request's candidates)
        a, b = int(lo[0]), int(hi[0])
        if b == a:
            return np.zeros(len(rows), dtype=bool), np.zeros(len(rows), dtype=np.int64)
        at = np.minimum(a + np.searchsorted(indices[a:b], cols), b - 1)
        return indices[at] == cols, at
    size = hi - lo
    total = int(size.sum())
    if total <= GATHER_LIMIT:
        if not total:
            return np.zeros(len(rows), dtype=bool), np.zeros(len(rows), dtype=np.int64)
        begin = np.cumsum(size) - size  # where each pair's row starts in the laid-out rows
        pos = np.arange(total, dtype=np.int64) + np.repeat(lo - begin, size)
        slot = np.repeat(np.arange(len(rows), dtype=np.int64) << 32, size)
        keys = slot + indices[pos]
        q = (np.arange(len(rows), dtype=np.int64) << 32) + cols
        k = np.minimum(np.searchsorted(keys, q), total - 1)
        fits = (cols >= 0) & (cols < 1 << 32)  # a column past the slot would read the next pair's
        return (keys[k] == q) & fits, pos[k]
    end = hi.copy()
    while True:  # first position in [lo, hi) whose neighbour is >= the column
        todo = lo < hi
        if not todo.any():
            break
        mid = (lo + hi) // 2
        below = todo & (indices[np.minimum(mid, len(indices) - 1)] < cols)
        lo = np.where(below, mid + 1, lo)
        hi = np.where(todo & ~below, mid, hi)
    found = lo < end
    at = np.minimum(lo, max(len(indices) - 1, 0))
    hit = found & (indices[at] == cols) if len(indices) else found
    return hit, at


@dataclass(frozen=True)
class Cooccurrence:
    """Per item, the items chosen by the same customers and how many customers chose both.

    CSR layout over items, neighbours sorted by index; each row keeps at most ``max_neighbors``
    entries (the largest counts), so size is bounded whatever the number of customers. A count
    that is stored is exact; a pair that is not stored reads as 0 (and is never cited).
    """

    indptr: np.ndarray
    indices: np.ndarray
    counts: np.ndarray

    @classmethod
    def build(cls, user_items: sp.csr_matrix, max_neighbors: int) -> Cooccurrence:
        """From a binary users x items matrix, in blocks of items (bounded memory)."""
        X = sp.csr_matrix(user_items, dtype=np.int32)
        XT = X.T.tocsr()
        n = X.shape[1]
        indptr = [np.zeros(1, dtype=np.int64)]
        indices, counts = [], []
        offset = 0
        for start in range(0, n, ITEM_BLOCK):
            block = (XT[start : start + ITEM_BLOCK] @ X).tocsr()
            block.sort_indices()
            for r in range(block.shape[0]):
                lo, hi = block.indptr[r], block.indptr[r + 1]
                idx, cnt = block.indices[lo:hi], block.data[lo:hi]
                keep = (idx != start + r) & (cnt > 0)
                idx, cnt = idx[keep], cnt[keep]
                if len(idx) > max_neighbors:
                    top = np.lexsort((idx, -cnt))[:max_neighbors]
                    top.sort()
                    idx, cnt = idx[top], cnt[top]
                indices.append(idx.astype(np.int32))
                counts.append(cnt.astype(np.int32))
                offset += len(idx)
                indptr.append(np.array([offset], dtype=np.int64))
        return cls(
            np.concatenate(indptr),
            np.concatenate(indices) if indices else np.empty(0, np.int32),
            np.concatenate(counts) if counts else np.empty(0, np.int32),
        )

    def lookup(self, j: int, cand: np.ndarray) -> np.ndarray:
        """Customers who chose both item ``j`` and each of ``cand`` (0 where not stored)."""
        lo, hi = self.indptr[j], self.indptr[j + 1]
        idx = self.indices[lo:hi]
        pos = np.searchsorted(idx, cand)
        pos = np.minimum(pos, max(len(idx) - 1, 0))
        if not len(idx):
            return np.zeros(len(cand))
        hit = idx[pos] == cand
        return np.where(hit, self.counts[lo:hi][pos], 0).astype(float)

    def lookup_rows(self, js: np.ndarray, cand: np.ndarray) -> np.ndarray:
        """:meth:`lookup` for a few items at once: ``len(js) x len(cand)``. The rows of ``js``
        are laid end to end as ``slot * n_items + neighbour`` (still sorted), so one search
        serves them all."""
        js = np.asarray(js, dtype=np.int64)
        cand = np.asarray(cand, dtype=np.int64)
        n_items = len(self.indptr) - 1
        lo, hi = self.indptr[js].tolist(), self.indptr[js + 1].tolist()
        keys = np.concatenate(
            [np.empty(0, np.int64)]
            + [
                self.indices[a:b].astype(np.int64) + s * n_items
                for s, (a, b) in enumerate(zip(lo, hi, strict=True))
            ]
        )
        if not len(keys) or not len(cand):
            return np.zeros((len(js), len(cand)))
        vals = np.concatenate([self.counts[a:b] for a, b in zip(lo, hi, strict=True)])
        q = (np.arange(len(js), dtype=np.int64)[:, None] * n_items + cand[None, :]).ravel()
        at = np.minimum(np.searchsorted(keys, q), len(keys) - 1)
        out = np.where(keys[at] == q, vals[at], 0).astype(float)
        return out.reshape(len(js), len(cand))

    def pairs(self, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        """Customers who chose both ``rows[n]`` and ``cols[n]``, for every ``n`` (0 where not
        stored), searched for all pairs at once (:func:`csr_find`)."""
        hit, at = csr_find(self.indptr, self.indices, rows, cols)
        return np.where(hit, self.counts[at] if len(self.counts) else 0, 0).astype(float)

    def to_arrays(self, prefix: str = "cooc") -> dict[str, np.ndarray]:
        return {
            f"{prefix}_indptr": self.indptr,
            f"{prefix}_indices": self.indices,
            f"{prefix}_counts": self.counts,
        }

    @classmethod
    def from_arrays(cls, a: dict[str, np.ndarray], prefix: str = "cooc") -> Cooccurrence:
        return cls(a[f"{prefix}_indptr"], a[f"{prefix}_indices"], a[f"{prefix}_counts"])
