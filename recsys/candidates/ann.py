"""Approximate maximum-inner-product retrieval over the collaborative item factors (hnswlib).

Chosen by measurement (``benchmarks/ann_choice.py``): on the ALS factors of the synthetic shop
(100,000 items x 128 factors), hnswlib in inner-product space reached recall@200 0.93 at 0.36 ms
per query, faiss-cpu's ``IndexHNSWFlat`` 0.91 at 0.57 ms (same M, ef_construction, ef); the L2
augmentation trick (``[y, sqrt(M^2 - |y|^2)]``) reached only 0.17 with either library, because
ALS item norms are very skewed (median 0.003, maximum 8). Items whose factor is zero (never chosen) are not indexed:
they score 0 for everybody. The exact scores of the retrieved items are recomputed from the
factors, so only *which* items become candidates is approximate.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

M = 16
EF_CONSTRUCTION = 200
AUTO_MIN_ITEMS = 20_000
"""``ann = "auto"`` builds an index from this many items on (``benchmarks/serving.py``: below it
exact scoring of every item is as fast as a graph search and loses nothing)."""


def _hnswlib():
    try:
        import hnswlib
    except ImportError as exc:  # pragma: no cover - depends on the installation
        raise ImportError(
            "the approximate index needs hnswlib: pip install 'recsys[serve]' (or set "
            'collaborative.ann = "exact")'
        ) from exc
    return hnswlib


def available() -> bool:
    """Whether hnswlib is installed (``ann = "auto"`` falls back to exact scoring without it)."""
    try:
        _hnswlib()
    except ImportError:
        return False
    return True


class AnnIndex:
    """An HNSW graph over the non-zero item factors, in inner-product space."""

    def __init__(self, index, n_items: int, ef: int) -> None:
        self.index = index
        self.n_items = n_items
        self.ef = ef
        self.index.set_ef(ef)
        self.index.set_num_threads(1)

    @classmethod
    def build(
        cls, item_factors: np.ndarray, *, ef: int = 128, threads: int = 1, seed: int = 0
    ) -> AnnIndex:
        hnswlib = _hnswlib()
        live = np.flatnonzero(np.linalg.norm(item_factors, axis=1) > 0)
        index = hnswlib.Index(space="ip", dim=item_factors.shape[1])
        index.init_index(
            max_elements=max(len(live), 1), M=M, ef_construction=EF_CONSTRUCTION, random_seed=seed
        )
        index.set_num_threads(threads)
        if len(live):
            index.add_items(np.ascontiguousarray(item_factors[live], dtype=np.float32), live)
        return cls(index, len(item_factors), ef)

    def __len__(self) -> int:
        return self.index.get_current_count()

    @property
    def dim(self) -> int:
        return int(self.index.dim)

    def search(self, vector: np.ndarray, n: int, allowed: np.ndarray) -> np.ndarray | None:
        """About the ``n`` allowed items with the largest inner product with ``vector``
        (unordered). Asks the graph for more than ``n`` when some items are not allowed;
        ``None`` when the graph cannot give that many (a search reaches only part of a graph,
        so asking for most of a small index can fail): the caller scores exactly instead."""
        size = len(self)
        if size == 0 or n <= 0 or not np.any(vector):
            return np.empty(0, dtype=np.int64)
        share = max(np.count_nonzero(allowed) / len(allowed), 1e-3)  # = allowed.mean()
        return self._attempts(vector, n, allowed, int(self._want(n, np.array([share]))[0]), 3)

    def _want(self, n: int, share: np.ndarray) -> np.ndarray:
        """How many items to ask the graph for, per user whose ``share`` of items is allowed:
        enough for ``n`` allowed ones and a margin, and never fewer than ``ef`` (the graph
        searches ``max(ef, k)`` anyway, so asking for ``ef`` costs nothing more): most users of
        a common catalogue then ask for the same number and share one graph call."""
        want = np.maximum(np.ceil(n / share).astype(np.int64) + 16, self.ef)
        return np.minimum(len(self), want)

    def _attempts(
        self, vector: np.ndarray, n: int, allowed: np.ndarray, want: int, tries: int
    ) -> np.ndarray | None:
        """Ask for ``want`` items, then four times as many, ``tries`` times at most; ``None``
        when the graph cannot answer."""
        size = len(self)
        found = np.empty(0, dtype=np.int64)
        for _ in range(tries):  # hnswlib searches with max(ef, k): ef is never changed per
            # query, so concurrent requests see one setting (the same results as sequential ones)
            try:
                labels, _ = self.index.knn_query(vector[None].astype(np.float32), k=want)
            except RuntimeError as exc:  # any other failure is a broken index: raise it
                if "Cannot return the results" not in str(exc):
                    raise
                return None
            found = labels[0].astype(np.int64)
            found = found[allowed[found]]
            if len(found) >= n or want == size:
                return found[:n]
            want = min(size, want * 4)
        return found[:n]

    def search_many(
        self, vectors: np.ndarray, n: int, allowed: np.ndarray
    ) -> list[np.ndarray | None]:
        """:meth:`search` for a block of users (``vectors``: users x factors; ``allowed``:
        users x items), the same items for each. Users asking for the same number of items
        share one graph call, round by round (a user with too few allowed items among its
        answer asks again for four times as many, as :meth:`search` does): hnswlib answers
        each query of a call as it would alone, so sharing changes nothing. :meth:`_want`
        makes most users of a common catalogue ask for the same number."""
        size = len(self)
        if size == 0 or n <= 0:
            return [np.empty(0, dtype=np.int64) for _ in range(len(vectors))]
        out: list[np.ndarray | None] = [np.empty(0, dtype=np.int64)] * len(vectors)
        # per row: count_nonzero over a whole row is far faster than along an axis
        count = np.array([np.count_nonzero(row) for row in allowed], dtype=np.float64)
        want = self._want(n, np.maximum(count / allowed.shape[1], 1e-3))
        pending = np.flatnonzero(np.any(vectors, axis=1)).tolist()  # no vector: no items
        for attempt in range(3):
            groups: dict[int, list[int]] = {}
            for p in pending:
                groups.setdefault(int(want[p]), []).append(p)
            pending = []
            for w, members in groups.items():
                try:
                    labels, _ = self.index.knn_query(
                        np.ascontiguousarray(vectors[members], dtype=np.float32), k=w
                    )
                except RuntimeError as exc:  # a user the graph cannot answer: one by one
                    if "Cannot return the results" not in str(exc):
                        raise
                    for p in members:
                        out[p] = self._attempts(vectors[p], n, allowed[p], w, 3 - attempt)
                    continue
                for row, p in enumerate(members):
                    found = labels[row].astype(np.int64)
                    found = found[allowed[p, found]]
                    out[p] = found[:n]
                    if len(found) < n and w < size:  # too few allowed: ask for more
                        want[p] = min(size, w * 4)
                        pending.append(p)
            if not pending:
                break
        return out

    def update(self, items: np.ndarray, item_factors: np.ndarray) -> None:
        """Replace the vectors of ``items`` (after their factors were re-solved: erasure); items
        never indexed (a zero factor) stay out."""
        items = np.asarray(items, dtype=np.int64)
        present = set(self.index.get_ids_list())
        keep = np.array([i in present for i in items.tolist()], dtype=bool)
        if keep.any():  # hnswlib re-links an existing label to its new vector
            self.index.add_items(
                np.ascontiguousarray(item_factors[items[keep]], dtype=np.float32), items[keep]
            )

    # --- files ------------------------------------------------------------------------------
    def save(self, path: Path) -> None:
        self.index.save_index(str(path))

    @classmethod
    def load(cls, path: Path, dim: int, n_items: int, ef: int) -> AnnIndex:
        hnswlib = _hnswlib()
        index = hnswlib.Index(space="ip", dim=dim)
        index.load_index(str(path))
        return cls(index, n_items, ef)

    def __getstate__(self) -> dict:
        return {"index": self.index, "n_items": self.n_items, "ef": self.ef}

    def __setstate__(self, state: dict) -> None:
        self.__init__(state["index"], state["n_items"], state["ef"])


def recall_at(index: AnnIndex, item_factors: np.ndarray, vectors: np.ndarray, n: int) -> float:
    """Mean share of the exact top ``n`` (all items allowed) that the index returns (nothing,
    for a search the graph cannot answer)."""
    allowed = np.ones(len(item_factors), dtype=bool)
    hits = []
    for v in vectors:
        exact = np.argpartition(-(item_factors @ v), n)[:n]
        found = index.search(v, n, allowed)
        hits.append(len(np.intersect1d(exact, found)) / n if found is not None else 0.0)
    return float(np.mean(hits)) if hits else float("nan")
