"""Non-personalized candidates: what many customers chose recently, in stock.

Serves cold-start users and users who did not consent to personalization; its reason states the
exact count it ranked by, so the fact can be checked against the shop's data.
"""

from __future__ import annotations

from typing import Self

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator
from sklearn.utils.validation import check_is_fitted

from recsys.types import Evidence, ItemList, Reason

SIGNAL_ORDER = ("purchase", "rating", "cart", "view")
VERB = {"purchase": "bought", "rating": "rated", "cart": "added to their cart", "view": "viewed"}


class PopularityCandidates(BaseEstimator):
    """Items ranked by distinct customers with the strongest signal the data has, in a window.

    The window ends at the newest event seen in ``fit`` (the data cut-off), so the same data gives
    the same list whenever it is served.
    """

    def __init__(self, window_days: int = 30, min_customers: int = 3) -> None:
        self.window_days = window_days
        self.min_customers = min_customers

    def fit(self, interactions: pd.DataFrame, items: pd.DataFrame) -> Self:
        present = set(interactions["event"].unique())
        self.event_ = next((e for e in SIGNAL_ORDER if e in present), "view")
        sig = interactions[interactions["event"] == self.event_]
        self.as_of_ = sig["timestamp"].max() if len(sig) else pd.Timestamp.now(tz="UTC")
        window = self.window_days
        recent = sig[sig["timestamp"] > self.as_of_ - pd.Timedelta(days=window)]
        # too little recent activity (e.g. an old data set): widen the window until enough
        while recent["user_id"].nunique() < self.min_customers * 10 and window < 3650:
            window *= 2
            recent = sig[sig["timestamp"] > self.as_of_ - pd.Timedelta(days=window)]
        self.effective_window_days_ = window
        counts = recent.groupby("item_id")["user_id"].nunique()
        in_stock = (
            items.set_index("item_id")["in_stock"]
            if "in_stock" in items
            else pd.Series(True, index=items["item_id"])
        )
        counts = counts[counts.index.isin(in_stock.index[in_stock.to_numpy(dtype=bool)])]
        counts = counts[counts >= self.min_customers]
        ranked = ItemList(
            counts.index.to_numpy(dtype=object), counts.to_numpy(dtype=float)
        ).sorted()
        self.ranked_ = ranked
        self.customers_ = dict(
            zip(ranked.ids.tolist(), ranked.scores.astype(int).tolist(), strict=True)
        )
        return self

    def candidates(self, n: int, exclude: set[str] | None = None) -> ItemList:
        """The ``n`` most popular items, skipping ``exclude``."""
        check_is_fitted(self, "ranked_")
        lst = self.ranked_ if not exclude else self.ranked_.without(list(exclude))
        return ItemList(lst.ids[:n], lst.scores[:n])

    def evidence(self, item_id: str) -> Evidence:
        check_is_fitted(self, "ranked_")
        return Evidence(
            fact="trending",
            item_id=item_id,
            count=self.customers_.get(item_id, 0),
            window_days=self.effective_window_days_,
            date=self.as_of_.strftime("%Y-%m-%d"),
        )

    def reason(self, item_id: str) -> Reason:
        ev = self.evidence(item_id)
        as_of = self.as_of_.strftime("%-d %b %Y")
        text = (
            f"Popular in the shop: {ev.count} customers {VERB[self.event_]} it in the "
            f"{ev.window_days} days to {as_of}"
        )
        return Reason(text=text, features=("trending",), evidence=(ev,), stage="popularity")

    def scores_for(self, item_ids: np.ndarray) -> np.ndarray:
        """Customer counts for arbitrary items (0 when not popular)."""
        check_is_fitted(self, "ranked_")
        return np.array([self.customers_.get(i, 0) for i in item_ids], dtype=float)
