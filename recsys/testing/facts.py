"""An independent fact-checker for reasons: recomputes each stated fact from minimized data.

It reads the plain minimized tables (not the model's arrays), so a bug in the feature code and
the same bug here would have to be written twice to slip through.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from recsys.data.schema import CATEGORY_SEP
from recsys.privacy.minimize import MinimizedData
from recsys.privacy.policy import Policy
from recsys.types import Evidence, Fact, Recommendation

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

    def customers_of(self, item: str) -> set[str]:
        return set(self.inter.loc[self.inter["item_id"] == item, "user_id"])

    def check(self, user_key: str, rec: Recommendation) -> list[str]:
        """Every false statement among the recommendation's evidence (empty when all hold)."""
        return [
            f"{rec.item_id}: {ev}"
            for ev in rec.reason.evidence
            if not self.holds(user_key, rec.item_id, ev)
        ]

    def holds(self, user_key: str, item: str, ev: Evidence) -> bool:
        """Does ``ev``, stated for ``item`` to user ``user_key``, hold in the data?"""
        check = CHECKS.get(ev.fact)
        return bool(check is not None and check(self, user_key, item, ev))

    def mine(self, user_key: str) -> tuple[pd.DataFrame, pd.DataFrame]:
        mine = self._user(user_key)
        return mine, mine.drop_duplicates("item_id")

    def did(self, user_key: str, ev: Evidence) -> bool:
        mine = self._user(user_key)
        return bool(
            (
                (mine["item_id"] == ev.item_id)
                & (mine["event"] == ev.event)
                & (mine["date"] == ev.date)
            ).any()
        )


Check = Callable[[FactChecker, str, str, Evidence], bool]
CHECKS: dict[Fact, Check] = {}


def checker(fact: Fact) -> Callable[[Check], Check]:
    """Register the independent check of ``fact``."""

    def register(fn: Check) -> Check:
        CHECKS[fact] = fn
        return fn

    return register


@checker(Fact.SIMILAR_TO)
def _similar_to(fc: FactChecker, user_key: str, item: str, ev: Evidence) -> bool:
    return fc.did(user_key, ev)


@checker(Fact.CHOSEN_TOGETHER)
def _chosen_together(fc: FactChecker, user_key: str, item: str, ev: Evidence) -> bool:
    both = fc.customers_of(ev.item_id or "") & fc.customers_of(item)
    return fc.did(user_key, ev) and len(both) == ev.count


def _share(fc: FactChecker, user_key: str, col: str, val: str | None, ev: Evidence) -> bool:
    _, distinct = fc.mine(user_key)
    attr = fc.items.loc[distinct["item_id"], col].astype(str)
    if col == "category":
        n = int(attr.str.split(CATEGORY_SEP, regex=False).map(lambda cs: val in cs).sum())
    else:
        n = int((attr == val).sum())
    return n == ev.count and len(distinct) == ev.total


@checker(Fact.CATEGORY_SHARE)
def _category_share(fc: FactChecker, user_key: str, item: str, ev: Evidence) -> bool:
    return _share(fc, user_key, "category", ev.category, ev)


@checker(Fact.BRAND_SHARE)
def _brand_share(fc: FactChecker, user_key: str, item: str, ev: Evidence) -> bool:
    return _share(fc, user_key, "brand", ev.brand, ev)


@checker(Fact.TASTE_PROFILE)
def _taste(fc: FactChecker, user_key: str, item: str, ev: Evidence) -> bool:
    return len(fc.mine(user_key)[1]) == ev.count


@checker(Fact.TRENDING)
def _trending(fc: FactChecker, user_key: str, item: str, ev: Evidence) -> bool:
    end = pd.Timestamp(ev.date, tz="UTC")
    start = end - pd.Timedelta(days=ev.window_days or 0)
    inter = fc.inter
    sel = inter[
        (inter["item_id"] == item)
        & (inter["event"] == ev.event)
        & (inter["timestamp"] >= start)
        & (inter["timestamp"] < end)
    ]
    return len(sel) == ev.count and ev.event == fc.signal


@checker(Fact.CUSTOMERS)
def _customers(fc: FactChecker, user_key: str, item: str, ev: Evidence) -> bool:
    ok = len(fc.customers_of(item)) == ev.count
    return ok and (ev.event is None or set(fc.inter["event"]) == {ev.event})


@checker(Fact.AVERAGE_RATING)
def _average_rating(fc: FactChecker, user_key: str, item: str, ev: Evidence) -> bool:
    inter = fc.inter
    r = inter[(inter["item_id"] == item) & (inter["event"] == "rating")]["value"]
    return len(r) == ev.count and round(float(r.mean()), 1) == ev.value


@checker(Fact.LISTED)
def _listed(fc: FactChecker, user_key: str, item: str, ev: Evidence) -> bool:
    return fc.items.loc[item, "created_at"].strftime("%Y-%m-%d") == ev.date


@checker(Fact.BOUGHT_BEFORE)
def _bought_before(fc: FactChecker, user_key: str, item: str, ev: Evidence) -> bool:
    mine, _ = fc.mine(user_key)
    buys = mine[(mine["item_id"] == item) & (mine["event"] == "purchase")]
    return len(buys) > 0 and buys["date"].iloc[-1] == ev.date


@checker(Fact.DIVERSITY)
def _diversity(fc: FactChecker, user_key: str, item: str, ev: Evidence) -> bool:
    cats = str(fc.items.loc[item, "category"]).split(CATEGORY_SEP)
    return ev.category is None or ev.category in cats


@checker(Fact.ITEM_GROUP)
def _item_group(fc: FactChecker, user_key: str, item: str, ev: Evidence) -> bool:
    return item in fc.group_members(ev.category or "")


@checker(Fact.USUAL_PRICE)
def _usual_price(fc: FactChecker, user_key: str, item: str, ev: Evidence) -> bool:
    _, distinct = fc.mine(user_key)
    prices = fc.items.loc[distinct["item_id"], "price"].to_numpy(dtype=float)
    return round(float(np.nanmedian(prices)), 2) == ev.value
