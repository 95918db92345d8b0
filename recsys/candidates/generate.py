"""Candidate sets: collaborative top-N, shop-wide trending, and items due for a re-buy."""

from __future__ import annotations

import numpy as np
from pydantic import BaseModel, ConfigDict, NonNegativeInt, PositiveInt

from recsys.features.context import FeatureContext, UserState


class CandidateConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    n_collaborative: PositiveInt = 200
    n_trending: NonNegativeInt = 50
    n_rebuy: NonNegativeInt = 20
    exclude_seen: bool = True
    """Leave out items the user already interacted with, except items customers buy again."""


def _top(scores: np.ndarray, allowed: np.ndarray, n: int) -> np.ndarray:
    idx = np.flatnonzero(allowed)
    if len(idx) <= n:
        return idx
    part = np.argpartition(-scores[idx], n)[:n]
    return idx[part]


def candidates(
    ctx: FeatureContext,
    st: UserState,
    cfg: CandidateConfig,
    exclude: np.ndarray | None = None,
) -> np.ndarray:
    """Item indices to rank for this user, sorted; never out of stock or excluded."""
    allowed = ctx.catalog.in_stock.copy()
    if exclude is not None and len(exclude):
        allowed[exclude[exclude >= 0]] = False
    rebuyable, _ = ctx.rebuy
    due = np.array([i for i in st.last_purchase if rebuyable[i] and allowed[i]], dtype=np.int64)
    if cfg.exclude_seen and st.n_items:
        allowed[st.items] = False
    parts = [_top(st.collab.astype(float), allowed, cfg.n_collaborative)]
    if cfg.n_trending:
        trend, _ = ctx.trending(st.as_of)
        parts.append(_top(trend, allowed & (trend > 0), cfg.n_trending))
    if cfg.n_rebuy and len(due):
        parts.append(due[np.argsort(-np.array([st.last_purchase[i] for i in due]))][: cfg.n_rebuy])
    return np.unique(np.concatenate(parts))
