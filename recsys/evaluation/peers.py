"""Stronger peers for an evaluation run: a graph model and the unconstrained ranker.

``RP3beta`` (Paudel et al., 2016) is a three-step random walk user -> item -> user -> item with
popularity damping; on top-N benchmarks it matches many neural models (Dacrema et al., RecSys
2019). ``UnconstrainedRanker`` learns from exactly the pipeline's candidates, features and
training examples, but its trees may combine features: the NDCG gap to our additive ranker is
what exact, per-feature reasons cost.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Self

import numpy as np
import pandas as pd
from sklearn.ensemble import HistGradientBoostingClassifier

from recsys.candidates.sources import block_candidates
from recsys.config import RecommenderConfig
from recsys.data.dataset import Dataset
from recsys.evaluation.baselines import MatrixSystem
from recsys.evaluation.protocol import Exclusions
from recsys.features.context import UserBlock
from recsys.features.registry import feature_matrix, stack
from recsys.model.train import minimized, ranker_examples, train
from recsys.privacy.policy import Policy


class RP3beta(MatrixSystem):
    """Item-item transition probabilities of a 3-step walk, each raised to ``alpha`` and divided
    by the target item's popularity to the power ``beta``; the ``neighbors`` strongest kept."""

    name = "rp3beta"

    def __init__(self, alpha: float = 1.0, beta: float = 0.5, neighbors: int = 200) -> None:
        self.alpha = alpha
        self.beta = beta
        self.neighbors = neighbors

    def fit(self, train: pd.DataFrame, items: pd.DataFrame, users: pd.DataFrame) -> Self:
        X = self.X_ = self._binary(train, items)
        user_deg = np.maximum(np.asarray(X.sum(axis=1)).ravel(), 1.0)
        item_deg = np.asarray(X.sum(axis=0)).ravel()
        Pui = X.multiply(1.0 / user_deg[:, None]).tocsr()  # user -> item
        Piu = X.T.multiply(1.0 / np.maximum(item_deg, 1.0)[:, None]).tocsr()  # item -> user
        if self.alpha != 1.0:
            Pui.data **= self.alpha
            Piu.data **= self.alpha
        W = (Piu @ Pui).toarray()
        W /= np.power(np.maximum(item_deg, 1.0), self.beta)[None, :]
        np.fill_diagonal(W, 0.0)
        if self.neighbors < W.shape[1]:
            cut = np.argpartition(-W, self.neighbors, axis=1)[:, self.neighbors :]
            np.put_along_axis(W, cut, 0.0, axis=1)
        self.W_ = W
        return self

    def _scores(self, u: np.ndarray) -> np.ndarray:
        return np.asarray(self.X_[u] @ self.W_)


class UnconstrainedRanker:
    """The pipeline's candidates and features, ranked by gradient-boosted trees whose splits
    may interact (our ranker forbids that, so every attribution is exact)."""

    name = "unconstrained GBM"

    def __init__(self, config: RecommenderConfig | None = None, policy: Policy | None = None):
        self.config = config
        self.policy = policy

    def fit(self, train_: pd.DataFrame, items: pd.DataFrame, users: pd.DataFrame) -> Self:
        cfg = self.config or RecommenderConfig(purpose="evaluation")
        policy = self.policy or Policy.default()
        ds = Dataset(interactions=train_, items=items, users=users)
        md = minimized(ds, cfg, policy, now=train_["timestamp"].max())
        self.model_ = model = train(md, cfg, policy)
        X, y = ranker_examples(md.interactions, model.ctx.catalog, model.features, cfg)
        r = cfg.ranker
        X[:, np.isnan(X).all(axis=0)] = 0.0
        self.gbm_ = HistGradientBoostingClassifier(
            max_iter=r.max_iter, learning_rate=r.learning_rate, max_leaf_nodes=r.max_leaf_nodes,
            min_samples_leaf=r.min_samples_leaf, l2_regularization=r.l2_regularization,
            early_stopping=False, random_state=r.random_state,
        ).fit(X, y)  # fmt: skip
        return self

    def recommend_all(
        self, users: Sequence[str], k: int, exclude: Exclusions | None = None
    ) -> dict[str, list[str]]:
        ctx = self.model_.ctx
        h, cfg = ctx.history, self.model_.config
        ids = ctx.catalog.items.ids
        out: dict[str, list[str]] = {str(u): [] for u in users}
        known = [(str(u), h.users.get(str(u))) for u in users]
        known = [(u, i) for u, i in known if i >= 0 and h.indptr[i + 1] > h.indptr[i]]
        for start in range(0, len(known), 256):
            chunk = known[start : start + 256]
            states = [ctx.user_state(i, as_of=int(h.ts[h.indptr[i + 1] - 1])) for _, i in chunk]
            block = UserBlock.build(ctx, states)
            hidden = None
            if exclude is not None:
                hidden = [ctx.catalog.items.index(sorted(exclude.get(u, ()))) for u, _ in chunk]
            cands = block_candidates(ctx, block, cfg.candidates, exclude=hidden)
            row_user, cand = stack(cands)
            X = feature_matrix(ctx, block, row_user, cand, self.model_.features)
            score = self.gbm_.decision_function(X) if len(X) else np.empty(0)
            for p, (u, _) in enumerate(chunk):
                mine = row_user == p
                c, s = cand[mine], score[mine]
                order = np.lexsort((ids[c].astype(str), -s))[:k]
                out[u] = ids[c[order]].tolist()
        return out
