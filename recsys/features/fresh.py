"""Fresh events: a request's recent events merged into the user's history, and the user's
collaborative vector folded in from both (the ALS user step, as ``implicit``'s
``recalculate_user``), without retraining."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from recsys.features.history import EVENT_WEIGHT

if TYPE_CHECKING:
    from recsys.candidates.implicit_adapter import ImplicitModel

FreshEvents = tuple[np.ndarray, np.ndarray, np.ndarray]
"""``(items, ts, event codes)`` of a request's recent events, items as catalogue indices."""


def merge(
    items: np.ndarray, ts: np.ndarray, ev: np.ndarray, fresh: FreshEvents
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """History plus fresh events, in time order (a fresh event after a stored one at the same
    second)."""
    fi, ft, fe = fresh
    all_i = np.concatenate([items, fi]).astype(np.int64)
    all_t = np.concatenate([ts, ft]).astype(np.int64)
    all_e = np.concatenate([ev, fe]).astype(np.int8)
    order = np.argsort(all_t, kind="stable")
    return all_i[order], all_t[order], all_e[order]


def confidences(items: np.ndarray, ev: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distinct items and their confidences (event weights summed, as the training matrix)."""
    hist, inv = np.unique(items, return_inverse=True)
    conf = np.bincount(inv, weights=EVENT_WEIGHT[ev], minlength=len(hist))
    return hist, conf


def fold_in(collab: ImplicitModel, items: np.ndarray, ev: np.ndarray, stored: np.ndarray):
    """The user's vector re-solved from all their events (ALS); ``stored`` (the trained vector,
    zeros for a new visitor) where the algorithm has no user step (BPR) or there are no events."""
    if collab.algorithm != "als" or not len(items):
        return stored
    hist, conf = confidences(items, ev)
    return collab.user_vector(hist, conf)


def confidence_of(st, items: np.ndarray) -> np.ndarray | None:
    """Confidences of ``items`` in a state built with fresh events (``None``: not such a
    state; the stored confidence matrix is then the truth)."""
    got = st.cache.get("fresh_confidence")
    if got is None:
        return None
    hist, conf = got
    pos = np.minimum(np.searchsorted(hist, items), max(len(hist) - 1, 0))
    return np.where(hist[pos] == items, conf[pos], 0.0) if len(hist) else np.zeros(len(items))
