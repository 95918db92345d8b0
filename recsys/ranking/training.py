"""Training examples for the ranker from a temporal hold-out: features before, labels after."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, PositiveInt

from recsys.candidates.generate import CandidateConfig, candidates
from recsys.features.context import FeatureContext
from recsys.features.registry import Feature, feature_matrix


class TrainingConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    holdout_fraction: float = Field(0.2, gt=0, lt=1)
    """Each user's newest share of events becomes labels; the rest are the features' history."""
    relevant_rating: float = 4.0
    """A rating at or above this is a positive label (purchases and carts always are)."""
    max_users: PositiveInt = 20_000
    """Users sampled for ranker training: bounds training time on large shops."""
    seed: int = 0


def positives(inter: pd.DataFrame, relevant_rating: float) -> pd.DataFrame:
    """The events that count as a success: purchases, carts, good ratings (views if nothing else)."""
    events = set(inter["event"].unique())
    strong = inter["event"].isin(["purchase", "cart"]) | (
        (inter["event"] == "rating") & (inter["value"] >= relevant_rating)
    )
    if not events & {"purchase", "cart", "rating"}:
        strong = inter["event"] == "view"
    return inter.loc[strong, ["user_id", "item_id"]].drop_duplicates()


def training_examples(
    ctx: FeatureContext,
    labels: pd.DataFrame,
    features: Sequence[Feature],
    cand_cfg: CandidateConfig,
    cfg: TrainingConfig,
) -> tuple[np.ndarray, np.ndarray]:
    """Candidates of each labelled user, with features as of their last history event."""
    h = ctx.history
    lab_u = h.users.index(labels["user_id"])
    lab_i = h.items.index(labels["item_id"])
    ok = (lab_u >= 0) & (lab_i >= 0)
    truth = pd.Series(lab_i[ok]).groupby(lab_u[ok]).apply(set).to_dict()
    users = np.array(sorted(u for u in truth if h.indptr[u + 1] > h.indptr[u]))
    if len(users) > cfg.max_users:
        users = np.sort(np.random.default_rng(cfg.seed).choice(users, cfg.max_users, replace=False))
    Xs, ys = [], []
    for u in users:
        st = ctx.user_state(int(u), as_of=int(h.ts[h.indptr[u + 1] - 1]))
        cand = candidates(ctx, st, cand_cfg)
        Xs.append(feature_matrix(ctx, st, cand, features))
        ys.append(np.isin(cand, list(truth[u])))
    if not Xs:
        return np.empty((0, len(features))), np.empty(0, dtype=bool)
    return np.vstack(Xs), np.concatenate(ys)
