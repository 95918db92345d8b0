"""Train/test splits of interactions: per-user temporal, global time cut-off, leave-one-out."""

from __future__ import annotations

import numpy as np
import pandas as pd


def temporal_split(inter: pd.DataFrame, fraction: float) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Each user's newest ``fraction`` of events (at least one) versus the rest.

    Users with a single event keep it on the earlier side. Ties in time keep the input order
    (stable sort), so the split is deterministic.
    """
    if not 0 < fraction < 1:
        raise ValueError(f"fraction must be in (0, 1), got {fraction}")
    inter, pos, n = by_user_and_time(inter)
    n_late = np.maximum(1, np.round(n * fraction)).astype(int)
    late = (pos >= n - n_late) & (n > 1)
    return inter[~late], inter[late]


def by_user_and_time(
    inter: pd.DataFrame,
) -> tuple[pd.DataFrame, np.ndarray, np.ndarray, np.ndarray]:
    """Rows sorted by user id, then time (stable); per row its position among its user's rows
    and that user's row count. Sorted on arrays: pandas' multi-key sort of
    string columns is the slow part of training on large shops."""
    codes, _ = pd.factorize(inter["user_id"], sort=True)
    ts = inter["timestamp"].to_numpy(dtype="datetime64[ns]").astype(np.int64)
    order = np.lexsort((ts, codes))
    user = codes[order]
    counts = np.bincount(user, minlength=int(user.max(initial=-1)) + 1)
    start = np.concatenate([[0], np.cumsum(counts)[:-1]])
    pos = np.arange(len(user)) - start[user]
    return inter.iloc[order], pos, counts[user]


def last_n_split(inter: pd.DataFrame, n: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Each user's newest ``n`` events versus the rest (users keep at least one earlier event)."""
    inter, pos, size = by_user_and_time(inter)
    rank = size - 1 - pos
    late = (rank < n) & (rank < size - 1)
    return inter[~late], inter[late]


def leave_one_out(inter: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Each user's newest event versus the rest."""
    return last_n_split(inter, 1)


def global_split(inter: pd.DataFrame, cutoff: pd.Timestamp) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Events before ``cutoff`` versus from it on (test users must appear before it)."""
    early = inter[inter["timestamp"] < cutoff]
    late = inter[(inter["timestamp"] >= cutoff) & inter["user_id"].isin(early["user_id"])]
    return early, late
