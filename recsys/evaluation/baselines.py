"""Systems compared side by side in an evaluation run: one small interface for all of them."""

from __future__ import annotations

import itertools
import typing
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Self

import numpy as np
import pandas as pd
import scipy.sparse as sp
from pydantic import BaseModel

from recsys.candidates.implicit_adapter import ImplicitModel
from recsys.config import RecommenderConfig
from recsys.data.dataset import Dataset
from recsys.data.splits import temporal_split
from recsys.evaluation.metrics import ndcg_values
from recsys.evaluation.protocol import Exclusions, Protocol
from recsys.features.history import History, Vocabulary
from recsys.privacy.consent import SQLiteConsentStore
from recsys.privacy.policy import Policy
from recsys.recommender import Recommender
from recsys.rerank.stages import RerankConfig
from recsys.types import Recommendations


class System(typing.Protocol):
    name: str

    def fit(self, train: pd.DataFrame, items: pd.DataFrame, users: pd.DataFrame) -> Self: ...

    def recommend_all(
        self, users: Sequence[str], k: int, exclude: Exclusions | None = None
    ) -> dict[str, list[str]]:
        """Top-``k`` item ids per user, never an item of ``exclude[user]`` (the run's rule);
        without ``exclude``, the system's own rule (its training items)."""
        ...


class MatrixSystem:
    """Shared by systems that score every item: leaves out the excluded items of each user
    (by default, every training item)."""

    name = "matrix"
    personal = True
    """False for shop-wide lists, which customers unknown to the training data get too."""

    def _index(self, train: pd.DataFrame, items: pd.DataFrame) -> History:
        users = Vocabulary(np.sort(train["user_id"].unique()).astype(object))
        self.history_ = History.from_frame(
            train, users, Vocabulary(items["item_id"].to_numpy(dtype=object))
        )
        return self.history_

    def _binary(self, train: pd.DataFrame, items: pd.DataFrame) -> sp.csr_matrix:
        """Users x items, 1 where the user interacted with the item."""
        X = self._index(train, items).matrix()
        X.data[:] = 1.0
        return X.tocsr()

    def _scores(self, u: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def recommend_all(
        self, users: Sequence[str], k: int, exclude: Exclusions | None = None
    ) -> dict[str, list[str]]:
        h = self.history_
        ids = h.items.ids
        out: dict[str, list[str]] = {}
        idx = h.users.index(list(users))
        hidden = (
            None
            if exclude is None
            else [h.items.index(sorted(exclude.get(str(u), ()))) for u in users]
        )
        for start in range(0, len(users), 512):
            batch = idx[start : start + 512]
            known = batch >= 0 if self.personal else np.ones(len(batch), dtype=bool)
            s = np.full((len(batch), len(ids)), -np.inf)
            if known.any():
                s[known] = self._scores(batch[known])
            for row, u in enumerate(batch):
                if hidden is not None:
                    ex = hidden[start + row]
                    s[row, ex[ex >= 0]] = -np.inf
                elif u >= 0:
                    s[row, h.item[h.span(int(u))]] = -np.inf
            top = np.argsort(-s, axis=1, kind="stable")[:, :k]
            for row, user in enumerate(users[start : start + 512]):
                keep = top[row][np.isfinite(s[row, top[row]])]
                out[str(user)] = ids[keep].tolist()
        return out


class MostPopular(MatrixSystem):
    """Items by the number of distinct training users."""

    name = "popular"
    personal = False

    def fit(self, train: pd.DataFrame, items: pd.DataFrame, users: pd.DataFrame) -> Self:
        self.counts_ = np.asarray(self._binary(train, items).sum(axis=0)).ravel()
        return self

    def _scores(self, u: np.ndarray) -> np.ndarray:
        return np.tile(self.counts_, (len(u), 1)).astype(float)


class Bestseller(MatrixSystem):
    """The shop's bestseller list: items by purchases in the ``days`` before the training
    cut-off (the last training event); items not bought in that window are not listed."""

    name = "bestseller"
    personal = False

    def __init__(self, days: int = 30) -> None:
        self.days = days

    def fit(self, train: pd.DataFrame, items: pd.DataFrame, users: pd.DataFrame) -> Self:
        h = self._index(train, items)
        cutoff = train["timestamp"].max()
        recent = train[
            (train["event"] == "purchase")
            & (train["timestamp"] > cutoff - pd.Timedelta(days=self.days))
        ]
        idx = h.items.index(recent["item_id"].tolist())
        counts = np.bincount(idx[idx >= 0], minlength=len(h.items.ids)).astype(float)
        counts[counts == 0] = -np.inf  # an unsold item is no bestseller
        self.counts_ = counts
        return self

    def _scores(self, u: np.ndarray) -> np.ndarray:
        return np.tile(self.counts_, (len(u), 1))


class ItemKNN(MatrixSystem):
    """Item-based k-nearest neighbours on cosine similarity of binary interactions."""

    name = "item-knn"

    def __init__(self, neighbors: int = 50) -> None:
        self.neighbors = neighbors

    def fit(self, train: pd.DataFrame, items: pd.DataFrame, users: pd.DataFrame) -> Self:
        X = self.X_ = self._binary(train, items)
        norms = np.sqrt(np.asarray(X.multiply(X).sum(axis=0)).ravel())
        S = (X.T @ X).toarray() / np.maximum(np.outer(norms, norms), 1e-12)
        np.fill_diagonal(S, 0.0)
        if self.neighbors < S.shape[0]:
            cut = np.argpartition(-S, self.neighbors, axis=0)[self.neighbors :]
            np.put_along_axis(S, cut, 0.0, axis=0)
        self.S_ = S
        return self

    def _scores(self, u: np.ndarray) -> np.ndarray:
        return np.asarray(self.X_[u] @ self.S_)


class EASE(MatrixSystem):
    """EASE (Steck, WWW 2019): a closed-form item-item model, B = I - P / diag(P)."""

    name = "ease"

    def __init__(self, l2: float = 300.0) -> None:
        self.l2 = l2

    def fit(self, train: pd.DataFrame, items: pd.DataFrame, users: pd.DataFrame) -> Self:
        X = self.X_ = self._binary(train, items)
        G = (X.T @ X).toarray().astype(np.float64)
        G[np.diag_indices_from(G)] += self.l2
        P = np.linalg.inv(G)
        B = -P / np.diag(P)[None, :]
        np.fill_diagonal(B, 0.0)
        self.B_ = B
        return self

    def _scores(self, u: np.ndarray) -> np.ndarray:
        return np.asarray(self.X_[u] @ self.B_)


class ImplicitSystem(MatrixSystem):
    """``implicit`` ALS or BPR alone."""

    def __init__(self, **params: Any) -> None:
        self.params = params
        self.name = str(params.get("algorithm", "als"))

    def fit(self, train: pd.DataFrame, items: pd.DataFrame, users: pd.DataFrame) -> Self:
        h = self._index(train, items)
        self.model_ = ImplicitModel(**self.params).fit(h.matrix())
        return self

    def _scores(self, u: np.ndarray) -> np.ndarray:
        return self.model_.user_factors_[u] @ self.model_.item_factors_.T


class PipelineSystem:
    """The full recsys pipeline (candidates, features, ranker), as of each user's last event."""

    def __init__(
        self,
        config: RecommenderConfig,
        policy: Policy | None = None,
        name: str | None = None,
        rerank: bool | RerankConfig = False,
    ) -> None:
        self.config = config
        self.policy = policy
        self.rerank = rerank
        self.name = name or (
            "recsys (no re-ranking)" if rerank is False else "recsys (full, re-ranked)"
        )
        self.recommends_rebuys = any(
            s.kind == "rebuy" and s.n > 0 for s in config.candidates.sources
        )

    def fit(self, train: pd.DataFrame, items: pd.DataFrame, users: pd.DataFrame) -> Self:
        ds = Dataset(interactions=train, items=items, users=users)
        self.data_ = ds
        self.unprofiled_users = set(
            users.loc[~users["consent_personalization"].astype(bool), "user_id"]
        )
        self.model_ = Recommender(
            self.config, policy=self.policy, consent=SQLiteConsentStore.in_memory()
        ).fit(ds, now=train["timestamp"].max())
        self.last_ = train.groupby("user_id")["timestamp"].max()
        return self

    def recommend_lists(
        self, users: Sequence[str], k: int, exclude: Exclusions | None = None
    ) -> list[Recommendations]:
        """Full recommendations (reasons included); ``exclude`` goes into each query, so the
        pipeline drops those items like any excluded item (with ``candidates.exclude_seen``
        as configured)."""
        rec = self.model_
        ex = exclude or {}
        queries = [
            rec.query(u, k, as_of=self.last_.get(u), rerank=self.rerank,
                      exclude=sorted(ex.get(str(u), ())))
            for u in users
        ]  # fmt: skip
        return rec.recommend_many(queries)

    def recommend_all(
        self, users: Sequence[str], k: int, exclude: Exclusions | None = None
    ) -> dict[str, list[str]]:
        lists = self.recommend_lists(users, k, exclude)
        return {str(u): r.item_ids for u, r in zip(users, lists, strict=True)}


def relevant(test: pd.DataFrame, relevant_rating: float = 4.0) -> dict[str, set[str]]:
    """Relevant test items per user: good ratings, purchases, carts (views if nothing else)."""
    from recsys.ranking.training import positives

    pos = positives(test, relevant_rating)
    return {str(u): set(g) for u, g in pos.groupby("user_id")["item_id"]}


def with_overrides(model: BaseModel, overrides: Mapping[str, Any]) -> Any:
    """A copy of a pydantic config with dotted-path overrides (``{"ranker.max_iter": 150}``)."""
    data = model.model_dump()
    for key, value in overrides.items():
        node = data
        *path, last = key.split(".")
        for part in path:
            node = node[int(part)] if isinstance(node, list) else node[part]
        if isinstance(node, list):
            node[int(last)] = value
        else:
            node[last] = value
    return type(model).model_validate(data)


def pipeline_factory(
    base: RecommenderConfig, policy: Policy | None = None, rerank: bool | RerankConfig = False
):
    """Builds pipeline systems from dotted overrides, e.g. ``{"ranker.max_iter": 150}``."""

    def make(**overrides: Any) -> PipelineSystem:
        return PipelineSystem(with_overrides(base, overrides), policy, rerank=rerank)

    return make


def validation_split(
    train: pd.DataFrame, items: pd.DataFrame, fraction: float, protocol: Protocol | None
) -> tuple[pd.DataFrame, dict[str, set[str]], Exclusions | None]:
    """The validation split of ``train``: its inner training part, the relevant held-out items
    and the exclusions (``None``: each system's own rule, as before protocols)."""
    inner, val = temporal_split(train, fraction)
    if protocol is None:
        return inner, relevant(val), None
    exclude = protocol.exclusions(inner, items, sorted(val["user_id"].astype(str).unique()))
    return inner, protocol.truth(val, exclude), exclude


def tune(
    make: Callable[..., System],
    grid: Mapping[str, Sequence[Any]],
    train: pd.DataFrame,
    items: pd.DataFrame,
    users: pd.DataFrame,
    *,
    fraction: float = 0.2,
    k: int = 10,
    fixed: Mapping[str, Any] | None = None,
    protocol: Protocol | None = None,
) -> tuple[dict[str, Any], float, list[tuple[dict[str, Any], float]]]:
    """Grid search on a validation split carved from ``train`` (the test set is never touched),
    under the run's ``protocol`` when given (the same exclusion and relevance rules)."""
    inner, truth, exclude = validation_split(train, items, fraction, protocol)
    users_v = sorted(truth)
    trials = []
    for values in itertools.product(*grid.values()):
        params = {**(fixed or {}), **dict(zip(grid.keys(), values, strict=True))}
        sys_ = make(**params).fit(inner, items, users)
        score = float(ndcg_values(sys_.recommend_all(users_v, k, exclude), truth, k).mean())
        trials.append((params, score))
    best = max(trials, key=lambda t: t[1])
    return best[0], best[1], trials


class PipelineFactory:
    """Makes pipeline systems for a seed (picklable, for parallel runs)."""

    def __init__(self, config: RecommenderConfig, rerank: bool = False) -> None:
        self.config = config
        self.rerank = rerank

    def __call__(self, seed: int) -> PipelineSystem:
        cfg = self.config.model_copy(deep=True)
        cfg.collaborative.random_state = seed
        cfg.ranker.random_state = seed
        return PipelineSystem(cfg, rerank=self.rerank)


class ImplicitFactory:
    """Makes ``implicit`` systems for a seed (picklable, for parallel runs)."""

    def __init__(self, **params: Any) -> None:
        self.params = params

    def __call__(self, seed: int) -> ImplicitSystem:
        return ImplicitSystem(**{**self.params, "random_state": seed})


def long_tail_items(train: pd.DataFrame, items: pd.DataFrame, head_share: float = 0.8) -> set[str]:
    """Items outside the most popular set that makes ``head_share`` of ``train``'s interactions."""
    counts = train["item_id"].value_counts().reindex(items["item_id"], fill_value=0)
    ranked = counts.sort_values(ascending=False, kind="stable")
    head = ranked.index[: int((ranked.cumsum() / ranked.sum()).searchsorted(head_share) + 1)]
    return set(items["item_id"]) - set(head)


def tune_rerank(
    system: PipelineSystem,
    grid: Mapping[str, Sequence[Any]],
    train: pd.DataFrame,
    items: pd.DataFrame,
    users: pd.DataFrame,
    *,
    min_long_tail: float,
    fraction: float = 0.2,
    k: int = 10,
    protocol: Protocol | None = None,
) -> tuple[RerankConfig, dict[str, float], list[tuple[dict[str, Any], float, float]]]:
    """Re-ranking settings with the best validation NDCG among those giving the long tail at
    least ``min_long_tail`` of top-k exposure (one fit; re-ranking is configured per call)."""
    from recsys.evaluation.metrics import exposure_share

    inner, truth, exclude = validation_split(train, items, fraction, protocol)
    tail = long_tail_items(inner, items)
    system.fit(inner, items, users)
    base = system.config.rerank
    trials = []
    for values in itertools.product(*grid.values()):
        system.rerank = with_overrides(base, dict(zip(grid.keys(), values, strict=True)))
        recs = system.recommend_all(sorted(truth), k, exclude)
        trials.append(
            (dict(zip(grid.keys(), values, strict=True)), float(ndcg_values(recs, truth, k).mean()),
             exposure_share(recs, tail, k))
        )  # fmt: skip
    ok = [t for t in trials if t[2] >= min_long_tail] or trials
    best = max(ok, key=lambda t: t[1])
    return with_overrides(base, best[0]), {"ndcg": best[1], "long_tail": best[2]}, trials
