"""Training as a function: minimized data in, a :class:`~recsys.model.fitted.FittedModel` out."""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from datetime import datetime

import numpy as np
import pandas as pd

from recsys.candidates.implicit_adapter import ImplicitModel
from recsys.config import RecommenderConfig
from recsys.data.dataset import Dataset
from recsys.data.splits import temporal_split
from recsys.errors import ModelFitError
from recsys.features.context import FeatureContext
from recsys.features.history import Catalog, History, Vocabulary
from recsys.features.registry import Feature, select_features
from recsys.features.shop import ShopStats, seen_matrix
from recsys.model.fitted import FittedModel
from recsys.privacy.minimize import MinimizedData, minimize
from recsys.privacy.policy import Policy
from recsys.privacy.pseudonym import Pseudonymizer
from recsys.ranking.ranker import AdditiveRanker
from recsys.ranking.training import positives, training_examples


def build_context(inter: pd.DataFrame, catalog: Catalog, model: ImplicitModel) -> FeatureContext:
    """History, collaborative factors and item statistics for the users in ``inter``."""
    users = Vocabulary(np.sort(inter["user_id"].unique()).astype(object))
    history = History.from_frame(inter, users, catalog.items)
    return FeatureContext(history, catalog, model.fit(history.matrix()))


def minimized(
    data: Dataset | MinimizedData,
    config: RecommenderConfig,
    policy: Policy,
    *,
    now: datetime | pd.Timestamp | None = None,
    pseudonymizer: Pseudonymizer | None = None,
    erased: Iterable[str] = (),
) -> MinimizedData:
    """``data`` reduced to what the configured purpose may read (unless it already is)."""
    if isinstance(data, MinimizedData):
        return data
    return minimize(
        data, policy, config.purpose, now=now, pseudonymizer=pseudonymizer, erased=erased
    )


def ranker_examples(
    interactions: pd.DataFrame,
    catalog: Catalog,
    features: Sequence[Feature],
    config: RecommenderConfig,
) -> tuple[np.ndarray, np.ndarray]:
    """The ranker's training set from a temporal hold-out of ``interactions``: features from
    each user's older events (a collaborative model fitted on those alone), labels from the
    newest. Also what the evaluation's unconstrained peer learns from."""
    inner, late = temporal_split(interactions, config.training.holdout_fraction)
    inner_ctx = build_context(inner, catalog, ImplicitModel.from_config(config.collaborative))
    X, y = training_examples(
        inner_ctx,
        positives(late, config.training.relevant_rating),
        features,
        config.candidates,
        config.training,
    )
    if len(y) == 0 or y.all() or not y.any():
        raise ModelFitError(
            f"the temporal hold-out gave {int(y.sum())} positive and {int((~y).sum())} negative "
            "examples; the ranker needs both (too little data?)"
        )
    return X, y


def train(
    md: MinimizedData,
    config: RecommenderConfig,
    policy: Policy,
    *,
    key_id: str | None = None,
) -> FittedModel:
    """Fit the collaborative model and the ranker on minimized data.

    The ranker learns from a temporal hold-out: features from each user's older events (with a
    collaborative model fitted on those alone), labels from their newest ones.
    """
    t0 = time.perf_counter()
    if md.interactions.empty:
        raise ModelFitError(
            "no interactions left after minimization (consent, retention window "
            f"{policy.purpose(config.purpose).retention_days} days before {md.as_of:%Y-%m-%d}); "
            "pass an earlier `now` to evaluate historical data"
        )
    catalog = Catalog.from_frame(md.items)
    ctx = build_context(md.interactions, catalog, ImplicitModel.from_config(config.collaborative))
    ctx.collab.build_index(config.collaborative)  # serving's retrieval index (issue #13)
    # what reasons state and what is never offered again come from every retained row
    ctx.shop = ShopStats.from_frame(md.retained, catalog.items, config.training.relevant_rating)
    remember = policy.purpose(config.purpose).remember_seen
    ctx.seen = seen_matrix(
        md.retained if remember else md.interactions, ctx.history.users, catalog.items
    )
    features = select_features(ctx, config.features, policy, config.purpose)
    X, y = ranker_examples(md.interactions, catalog, features, config)
    names = [f.name for f in features]
    ranker = AdditiveRanker.from_config(config.ranker).fit(pd.DataFrame(X, columns=names), y)
    report = md.report.to_dict() if md.report is not None else None
    return FittedModel(
        config=config,
        policy=policy,
        purpose=md.purpose,
        ctx=ctx,
        feature_names=tuple(names),
        ranker=ranker.additive_,
        key_id=key_id,
        minimization=report,
        training={
            "examples": len(y),
            "positives": int(y.sum()),
            "seconds": round(time.perf_counter() - t0, 3),
            "ranker_params": ranker.get_params(),
        },
    )
