"""An independent fact-checker for reasons: recomputes each stated fact from minimized data.

It reads the plain minimized tables (not the model's arrays), so a bug in the feature code and
the same bug here would have to be written twice to slip through.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from recsys.data.schema import CATEGORY_SEP
from recsys.privacy.minimize import MinimizedData
from recsys.privacy.policy import Policy
from recsys.types import Evidence, Recommendation

SIGNAL_ORDER = ("purchase", "rating", "cart", "view")  # restated on purpose: an independent check


@dataclass
class FactChecker:
    data: MinimizedData
    policy: Policy | None = None

    def __post_init__(self) -> None:
        inter = self.data.interactions.copy()
        inter["date"] = inter["timestamp"].dt.strftime("%Y-%m-%d")
        self.inter = inter
        self.items = self.data.items.set_index("item_id")
        present = set(inter["event"])
        self.signal = next(e for e in SIGNAL_ORDER if e in present)

    def group_members(self, name: str) -> set[str]:
        """Members of a policy item group, recomputed from the minimized tables."""
        if self.policy is None or name not in self.policy.item_groups:
            return set()
        rule = self.policy.item_groups[name]
        if rule.kind == "long_tail":
            sizes = self.inter["item_id"].value_counts().reindex(self.items.index, fill_value=0)
        else:
            per_seller = self.items["seller_id"].value_counts()
            sizes = per_seller.reindex(per_seller.index)
        ranked = sizes.sort_values(ascending=False, kind="stable")
        head = set(
            ranked.index[: int((ranked.cumsum() / ranked.sum()).searchsorted(rule.head_share) + 1)]
        )
        if rule.kind == "long_tail":
            return set(self.items.index) - head
        return set(self.items.index[~self.items["seller_id"].isin(head)])

    def _user(self, user_key: str) -> pd.DataFrame:
        return self.inter[self.inter["user_id"] == user_key]

    def _customers_of(self, item: str) -> set[str]:
        return set(self.inter.loc[self.inter["item_id"] == item, "user_id"])

    def check(self, user_key: str, rec: Recommendation) -> list[str]:
        """Every false statement among the recommendation's evidence (empty when all hold)."""
        return [
            f"{rec.item_id}: {ev}"
            for ev in rec.reason.evidence
            if not self.holds(user_key, rec.item_id, ev)
        ]

    def holds(self, user_key: str, item: str, ev: Evidence) -> bool:
        mine = self._user(user_key)
        distinct = mine.drop_duplicates("item_id")
        if ev.fact in ("chosen_together", "similar_to"):
            did = (
                (mine["item_id"] == ev.item_id)
                & (mine["event"] == ev.event)
                & (mine["date"] == ev.date)
            ).any()
            if ev.fact == "similar_to":
                return bool(did)
            both = self._customers_of(ev.item_id) & self._customers_of(item)
            return bool(did) and len(both) == ev.count
        if ev.fact in ("category_share", "brand_share"):
            col, val = (
                ("category", ev.category) if ev.fact == "category_share" else ("brand", ev.brand)
            )
            attr = self.items.loc[distinct["item_id"], col].astype(str)
            if col == "category":
                n = int(attr.str.split(CATEGORY_SEP, regex=False).map(lambda cs: val in cs).sum())
            else:
                n = int((attr == val).sum())
            return n == ev.count and len(distinct) == ev.total
        if ev.fact == "taste_profile":
            return len(distinct) == ev.count
        if ev.fact == "trending":
            end = pd.Timestamp(ev.date, tz="UTC")
            start = end - pd.Timedelta(days=ev.window_days or 0)
            sel = self.inter[
                (self.inter["item_id"] == item)
                & (self.inter["event"] == ev.event)
                & (self.inter["timestamp"] >= start)
                & (self.inter["timestamp"] < end)
            ]
            return len(sel) == ev.count and ev.event == self.signal
        if ev.fact == "customers":
            ok = len(self._customers_of(item)) == ev.count
            return ok and (ev.event is None or set(self.inter["event"]) == {ev.event})
        if ev.fact == "average_rating":
            r = self.inter[(self.inter["item_id"] == item) & (self.inter["event"] == "rating")][
                "value"
            ]
            return len(r) == ev.count and round(float(r.mean()), 1) == ev.value
        if ev.fact == "listed":
            return self.items.loc[item, "created_at"].strftime("%Y-%m-%d") == ev.date
        if ev.fact == "bought_before":
            buys = mine[(mine["item_id"] == item) & (mine["event"] == "purchase")]
            return len(buys) > 0 and buys["date"].iloc[-1] == ev.date
        if ev.fact == "diversity":
            cats = str(self.items.loc[item, "category"]).split(CATEGORY_SEP)
            return ev.category is None or ev.category in cats
        if ev.fact == "item_group":
            return item in self.group_members(ev.category or "")
        if ev.fact == "usual_price":
            prices = self.items.loc[distinct["item_id"], "price"].to_numpy(dtype=float)
            return round(float(np.nanmedian(prices)), 2) == ev.value
        return False
