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
