"""The approximate index: a search the graph cannot answer falls back to exact scoring."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("hnswlib")

from recsys.candidates.ann import AnnIndex, recall_at


def _small_skewed_index(ef: int = 16) -> tuple[AnnIndex, np.ndarray]:
    rng = np.random.default_rng(0)
    norms = np.exp(rng.normal(size=(1500, 1)) * 2)  # ALS item norms are this skewed
    Y = (rng.normal(size=(1500, 32)) * norms).astype(np.float32)
    return AnnIndex.build(Y, ef=ef), Y


def test_asking_for_more_than_the_graph_reaches_gives_none_not_an_error() -> None:
    index, Y = _small_skewed_index()
    allowed = np.zeros(len(Y), dtype=bool)
    allowed[:60] = True  # few allowed items: the search asks for all of the index
    v = np.random.default_rng(1).normal(size=32).astype(np.float32)
    assert index.search(v, 100, allowed) is None
    assert len(index.search(v, 10, np.ones(len(Y), dtype=bool))) == 10
    assert 0 < recall_at(index, Y, Y[:5], 10) <= 1


def test_a_request_the_index_cannot_answer_is_scored_exactly(small_shop, pseudonymizer) -> None:
    """When the graph cannot return what a request asks for, the collaborative source scores
    every item: the customer gets the exact top items, not an error."""
    from recsys.config import RecommenderConfig
    from recsys.data.synthetic import END
    from recsys.privacy.consent import SQLiteConsentStore
    from recsys.recommender import Recommender

    def fitted(ann: str) -> Recommender:
        cfg = RecommenderConfig.model_validate({"collaborative": {"ann": ann}})
        store = SQLiteConsentStore.in_memory()
        return Recommender(cfg, pseudonymizer=pseudonymizer, consent=store).fit(small_shop, now=END)

    rec, exact = fitted("hnsw"), fitted("exact")
    index = rec.model_.ctx.collab.index_

    class Unanswerable:  # hnswlib's failure when a search reaches fewer items than asked
        calls = 0

        def __getattr__(self, name: str):
            return getattr(graph, name)

        def knn_query(self, *a, **k):
            Unanswerable.calls += 1
            raise RuntimeError("Cannot return the results in a contiguous 2D array.")

    graph, index.index = index.index, Unanswerable()
    users = small_shop.users["user_id"].astype(str).iloc[:30].tolist()
    got, want = rec.recommend_many(users, 5), exact.recommend_many(users, 5)
    assert Unanswerable.calls > 0
    assert [r.item_ids for r in got] == [r.item_ids for r in want]
    assert all(r.reason.text for recs in got for r in recs)


def test_a_block_search_gives_each_user_what_a_search_alone_gives() -> None:
    """One graph call for a block's users: the same items, in the same order, as one search per
    user, also for users who need more than ``ef`` results, get too few allowed items at the
    first request, have a zero vector, or when the graph cannot answer the block's call."""
    index, Y = _small_skewed_index(ef=64)
    rng = np.random.default_rng(2)
    vectors = rng.normal(size=(12, 32)).astype(np.float32)
    vectors[3] = 0.0  # a user with no collaborative vector
    allowed = rng.random((12, len(Y))) < 0.9
    allowed[5] = rng.random(len(Y)) < 0.3  # asks for more than ef at once: searched alone
    allowed[7] = True
    allowed[7, np.argsort(-(Y @ vectors[7]))[:60]] = False  # the nearest are not allowed:
    # the first request (within ef) finds too few, the next asks for four times as many
    alone = [index.search(v, 40, a) for v, a in zip(vectors, allowed, strict=True)]
    together = index.search_many(vectors, 40, allowed)
    assert len(together) == len(alone)
    for a, b in zip(alone, together, strict=True):
        assert (a is None) == (b is None)
        if a is not None:
            np.testing.assert_array_equal(a, b)
    assert len(together[3]) == 0 and len(together[0]) == 40

    class Unanswerable:  # the graph fails a block call: every user is searched alone
        def __init__(self, graph) -> None:
            self.graph = graph

        def __getattr__(self, name: str):
            return getattr(self.graph, name)

        def knn_query(self, data, k, **kw):
            if len(data) > 1:
                raise RuntimeError("Cannot return the results in a contiguous 2D array.")
            return self.graph.knn_query(data, k=k, **kw)

    index.index = Unanswerable(index.index)
    again = index.search_many(vectors, 40, allowed)
    for a, b in zip(alone, again, strict=True):
        if a is not None:
            np.testing.assert_array_equal(a, b)


def test_a_block_search_with_tied_distances_gives_what_a_search_alone_gives() -> None:
    """Equal distances (here every vector four times): which tied item a shorter answer keeps is
    hnswlib's choice, so users share a graph call only with users asking for as many items."""
    rng = np.random.default_rng(4)
    Y = np.repeat(rng.normal(size=(300, 16)).astype(np.float32), 4, axis=0)
    index = AnnIndex.build(Y, ef=128)
    vectors = rng.normal(size=(60, 16)).astype(np.float32)
    allowed = np.ones((60, len(Y)), dtype=bool)
    for p, v in enumerate(vectors):
        order = np.argsort(-(Y @ v))
        allowed[p, order[:17]] = False  # seen items: the nearest
        allowed[p, rng.choice(order[600:], 8 * p, replace=False)] = False  # users ask for
        # more or fewer at first (37 to 50): most cut the block's longer answer short
    alone = [index.search(v, 20, a) for v, a in zip(vectors, allowed, strict=True)]
    together = index.search_many(vectors, 20, allowed)
    for a, b in zip(alone, together, strict=True):
        np.testing.assert_array_equal(a, b)


def test_users_asking_for_as_many_items_share_one_graph_call() -> None:
    """A block whose users ask for the same number (most users: never fewer than ``ef``) costs
    one graph call, and a user with too few allowed items one more, shared with its like."""
    index, Y = _small_skewed_index(ef=64)
    rng = np.random.default_rng(5)
    vectors = rng.normal(size=(20, 32)).astype(np.float32)
    allowed = np.ones((20, len(Y)), dtype=bool)
    for p in (4, 9):  # their nearest are not allowed: a second request, four times as large
        allowed[p, np.argsort(-(Y @ vectors[p]))[:60]] = False
    calls: list[int] = []

    class Counted:
        def __init__(self, graph) -> None:
            self.graph = graph

        def __getattr__(self, name: str):
            return getattr(self.graph, name)

        def knn_query(self, data, k, **kw):
            calls.append(len(data))
            return self.graph.knn_query(data, k=k, **kw)

    alone = [index.search(v, 40, a) for v, a in zip(vectors, allowed, strict=True)]
    index.index = Counted(index.index)
    together = index.search_many(vectors, 40, allowed)
    for a, b in zip(alone, together, strict=True):
        np.testing.assert_array_equal(a, b)
    assert calls == [20, 2]
