"""Item statistics precomputed at fit time, so no request scans the customers of an item."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

ITEM_BLOCK = 2048


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
    (``at`` is 0 where not ``hit``):
    a compiled binary search per pair in its row (:mod:`recsys.features.kernels`)."""
    from recsys.features import kernels  # numba loads on the first look-up, not at import

    return kernels.csr_find(indptr, indices, rows, cols)


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
        """:meth:`lookup` for a few items at once: ``len(js) x len(cand)``."""
        from recsys.features import kernels  # numba loads on the first look-up, not at import

        return kernels.csr_grid(self.indptr, self.indices, self.counts, js, cand)

    def pairs(self, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        """Customers who chose both ``rows[n]`` and ``cols[n]``, for every ``n`` (0 where not
        stored)."""
        from recsys.features import kernels  # numba loads on the first look-up, not at import

        return kernels.csr_values(self.indptr, self.indices, self.counts, rows, cols)

    def to_arrays(self, prefix: str = "cooc") -> dict[str, np.ndarray]:
        return {
            f"{prefix}_indptr": self.indptr,
            f"{prefix}_indices": self.indices,
            f"{prefix}_counts": self.counts,
        }

    @classmethod
    def from_arrays(cls, a: dict[str, np.ndarray], prefix: str = "cooc") -> Cooccurrence:
        return cls(a[f"{prefix}_indptr"], a[f"{prefix}_indices"], a[f"{prefix}_counts"])
