"""Training examples for the ranker from a temporal hold-out: features before, labels after."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, PositiveInt

from recsys.candidates.sources import CandidateConfig, block_candidates
from recsys.features.context import FeatureContext, UserBlock
from recsys.features.registry import Feature, feature_matrix, stack

BLOCK = 256


class TrainingConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    holdout_fraction: float = Field(0.2, gt=0, lt=1)
    """Each user's newest share of events becomes labels; the rest are the features' history."""
    relevant_rating: float = 4.0
    """A rating at or above this is a positive label (purchases and carts always are)."""
    max_users: PositiveInt = 20_000
    """Users sampled for ranker training: bounds training time on large shops."""
    max_examples: PositiveInt = 1_000_000
    """About this many (user, candidate) rows at most: fewer users are sampled when each brings
    many candidates, so the ranker's training time stays bounded."""
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


def candidates_per_user(cfg: CandidateConfig) -> int:
    """The most candidates one user can get (the sum of the sources' sizes)."""
    return max(1, sum(s.n for s in cfg.sources))


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
    cap = min(cfg.max_users, max(1, cfg.max_examples // candidates_per_user(cand_cfg)))
    if len(users) > cap:
        users = np.sort(np.random.default_rng(cfg.seed).choice(users, cap, replace=False))
    Xs, ys = [], []
    for start in range(0, len(users), BLOCK):
        chunk = users[start : start + BLOCK]
        states = [ctx.user_state(int(u), as_of=int(h.ts[h.indptr[u + 1] - 1])) for u in chunk]
        block = UserBlock.build(ctx, states)
        cands = block_candidates(ctx, block, cand_cfg)
        row_user, cand = stack(cands)
        Xs.append(feature_matrix(ctx, block, row_user, cand, features))
        ys.append(
            np.concatenate([np.isin(c, list(truth[u])) for c, u in zip(cands, chunk, strict=True)])
        )
    if not Xs:
        return np.empty((0, len(features))), np.empty(0, dtype=bool)
    return np.vstack(Xs), np.concatenate(ys)
