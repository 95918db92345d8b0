"""An independent fact-checker for reasons: recomputes each stated fact from minimized data.

It reads the plain minimized tables (not the model's arrays), so a bug in the feature code and
the same bug here would have to be written twice to slip through.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from recsys.data.schema import CATEGORY_SEP
from recsys.explain.rules import ReasonRules
from recsys.privacy.minimize import MinimizedData
from recsys.privacy.policy import Policy
from recsys.types import Evidence, Fact, Recommendation

SIGNAL_ORDER = ("purchase", "rating", "cart", "view")  # restated on purpose: an independent check


@dataclass
class FactChecker:
    """Checks every stated fact, and every applicability rule, against minimized tables.

    The customer's own facts ("your last 25 items") are checked against the history the model
    learned from (``interactions``); shop-wide numbers against every retained row
    (``MinimizedData.retained``), never including the reader. ``as_of`` is the request time the
    reasons were written for (default: the newest event, the model's default).
    """

    data: MinimizedData
    policy: Policy | None = None
    rules: ReasonRules = field(default_factory=ReasonRules)
    as_of: pd.Timestamp | None = None
    promoted: frozenset[str] = frozenset()
    """Item ids the shop promotes (a "Promoted by the shop" reason holds only for these)."""

    def __post_init__(self) -> None:
        inter = self.data.interactions.copy()
        inter["date"] = inter["timestamp"].dt.strftime("%Y-%m-%d")
        self.inter = inter
        shop = self.data.retained.copy()
        present = set(shop["event"])
        self.signal = next(e for e in SIGNAL_ORDER if e in present)
        self.shop = shop
        self.items = self.data.items.set_index("item_id")
        self.titles = self.items["title"].astype(str).str.strip().str.casefold()
        if self.as_of is None:
            self.as_of = inter["timestamp"].max()

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
        by_user = self.__dict__.get("_by_user")
        if by_user is None:
            by_user = self.__dict__["_by_user"] = dict(tuple(self.inter.groupby("user_id")))
        return by_user.get(user_key, self.inter.iloc[:0])

    def signal_rows(self, counted: str | None) -> pd.DataFrame:
        """Retained rows of the event a count says it counts (``purchase``, ``rating>=4``)."""
        cache = self.__dict__.setdefault("_signal_cache", {})
        if counted not in cache:
            cache[counted] = self._signal_rows(counted)
        return cache[counted]

    def _signal_rows(self, counted: str | None) -> pd.DataFrame:
        if counted is None:
            return self.shop.iloc[:0]
        if counted.startswith("rating>="):
            t = float(counted.removeprefix("rating>="))
            if self.signal != "rating":
                return self.shop.iloc[:0]
            return self.shop[(self.shop["event"] == "rating") & (self.shop["value"] >= t)]
        if counted != self.signal:
            return self.shop.iloc[:0]
        return self.shop[self.shop["event"] == counted]

    def shop_rows(self, item: str) -> pd.DataFrame:
        """Every retained row of ``item``."""
        by_item = self.__dict__.get("_shop_by_item")
        if by_item is None:
            by_item = self.__dict__["_shop_by_item"] = dict(tuple(self.shop.groupby("item_id")))
        return by_item.get(item, self.shop.iloc[:0])

    def doers(self, item: str, counted: str | None) -> set[str]:
        """Customers with a retained row of what ``counted`` counts on ``item``."""
        cache = self.__dict__.setdefault("_doers", {})
        if counted not in cache:
            rows = self.signal_rows(counted)
            cache[counted] = rows.groupby("item_id")["user_id"].agg(set).to_dict()
        return cache[counted].get(item, set())

    def check(self, user_key: str, rec: Recommendation) -> list[str]:
        """Every false statement or broken rule in the recommendation's reason (empty: none)."""
        out = [
            f"{rec.item_id}: {ev}"
            for ev in rec.reason.evidence
            if not self.holds(user_key, rec.item_id, ev)
        ]
        cited = [ev.item_id for ev in rec.reason.evidence if ev.item_id is not None]
        if len(cited) != len(set(cited)):
            out.append(f"{rec.item_id}: cites an item twice: {cited}")
        own = self.titles.get(rec.item_id)
        twins = [c for c in cited if c != rec.item_id and self.titles.get(c) == own]
        if twins:
            out.append(f"{rec.item_id}: cites {twins}, which have the recommended item's title")
        return out

    def holds(self, user_key: str, item: str, ev: Evidence) -> bool:
        """Does ``ev``, stated for ``item`` to user ``user_key``, hold (and may it speak)?"""
        check = CHECKS.get(ev.fact)
        return bool(check is not None and check(self, user_key, item, ev))

    def mine(self, user_key: str) -> tuple[pd.DataFrame, pd.DataFrame]:
        mine = self._user(user_key)
        return mine, mine.drop_duplicates("item_id")

    def top(self, user_key: str, col: str, value: str | None, *, min_count: bool) -> bool:
        """Is ``value`` among the reader's ``often_top`` largest categories (brands)?"""
        _, distinct = self.mine(user_key)
        attr = self.items.loc[distinct["item_id"], col].astype(str)
        if col == "category":
            attr = attr.str.split(CATEGORY_SEP, regex=False).explode()
        counts = attr[attr != ""].value_counts()
        n = int(counts.get(value, 0))
        larger = int((counts > n).sum())
        if n == 0 or larger >= self.rules.often_top:
            return False
        return not min_count or n >= self.rules.often_min

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
    both = fc.doers(ev.item_id or "", ev.counted) & fc.doers(item, ev.counted)
    return fc.did(user_key, ev) and len(both - {user_key}) == ev.count and (ev.count or 0) > 0


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
    ok = _share(fc, user_key, "category", ev.category, ev)
    return ok and fc.top(user_key, "category", ev.category, min_count=True)


@checker(Fact.BRAND_SHARE)
def _brand_share(fc: FactChecker, user_key: str, item: str, ev: Evidence) -> bool:
    return _share(fc, user_key, "brand", ev.brand, ev) and fc.top(
        user_key, "brand", ev.brand, min_count=True
    )


@checker(Fact.TASTE_PROFILE)
def _taste(fc: FactChecker, user_key: str, item: str, ev: Evidence) -> bool:
    return len(fc.mine(user_key)[1]) == ev.count


@checker(Fact.TRENDING)
def _trending(fc: FactChecker, user_key: str, item: str, ev: Evidence) -> bool:
    end = pd.Timestamp(ev.date, tz="UTC")
    start = end - pd.Timedelta(days=ev.window_days or 0)
    rows = fc.shop_rows(item)
    counted = fc.signal_rows(ev.counted)
    rows = rows[rows.index.isin(counted.index)]
    sel = rows[(rows["timestamp"] >= start) & (rows["timestamp"] < end)]
    who = set(sel["user_id"])
    others = who - {user_key}
    return (
        len(others) == ev.count
        and bool(ev.others) == (user_key in who)
        and (ev.count or 0) >= fc.rules.trending_min
    )


@checker(Fact.CUSTOMERS)
def _customers(fc: FactChecker, user_key: str, item: str, ev: Evidence) -> bool:
    who = fc.doers(item, ev.counted)
    return len(who - {user_key}) == ev.count and bool(ev.others) == (user_key in who)


@checker(Fact.AVERAGE_RATING)
def _average_rating(fc: FactChecker, user_key: str, item: str, ev: Evidence) -> bool:
    rows = fc.shop_rows(item)
    r = rows[(rows["event"] == "rating") & (rows["user_id"] != user_key)]["value"]
    return len(r) == ev.count and len(r) > 0 and round(float(r.mean()), 1) == ev.value


@checker(Fact.LISTED)
def _listed(fc: FactChecker, user_key: str, item: str, ev: Evidence) -> bool:
    return fc.items.loc[item, "created_at"].strftime("%Y-%m-%d") == ev.date


@checker(Fact.BOUGHT_BEFORE)
def _bought_before(fc: FactChecker, user_key: str, item: str, ev: Evidence) -> bool:
    mine, _ = fc.mine(user_key)
    buys = mine[(mine["item_id"] == item) & (mine["event"] == "purchase")]
    if not len(buys) or buys["date"].iloc[-1] != ev.date:
        return False
    days = (fc.as_of - buys["timestamp"].iloc[-1]) // pd.Timedelta(days=1)
    cycle = _rebuy_cycle(fc, item)
    return (
        cycle is not None
        and ev.window_days == max(1, round(cycle))
        and ev.count == days
        and days >= fc.rules.restock_share * ev.window_days
    )


def _rebuy_cycle(fc: FactChecker, item: str) -> float | None:
    """Median days between a customer's purchases of ``item`` (model history), if measured."""
    buys = fc.inter[(fc.inter["item_id"] == item) & (fc.inter["event"] == "purchase")]
    gaps = buys.sort_values("timestamp").groupby("user_id")["timestamp"].diff().dropna()
    gaps = gaps / pd.Timedelta(days=1)
    gaps = gaps[gaps >= 1]
    return float(gaps.median()) if len(gaps) else None


@checker(Fact.DIVERSITY)
def _diversity(fc: FactChecker, user_key: str, item: str, ev: Evidence) -> bool:
    cats = str(fc.items.loc[item, "category"]).split(CATEGORY_SEP)
    if ev.category is None:
        return True
    return ev.category in cats and not fc.top(user_key, "category", ev.category, min_count=False)


@checker(Fact.ITEM_GROUP)
def _item_group(fc: FactChecker, user_key: str, item: str, ev: Evidence) -> bool:
    return item in fc.group_members(ev.category or "")


@checker(Fact.USUAL_PRICE)
def _usual_price(fc: FactChecker, user_key: str, item: str, ev: Evidence) -> bool:
    _, distinct = fc.mine(user_key)
    prices = fc.items.loc[distinct["item_id"], "price"].to_numpy(dtype=float)
    median = round(float(np.nanmedian(prices)), 2)
    price = round(float(fc.items.loc[item, "price"]), 2)
    band = fc.rules.price_band
    priced = int(np.isfinite(prices).sum())
    enough = priced >= fc.rules.price_min_items and ev.total == priced
    return (
        enough and median == ev.value and price == ev.price and 1 / band <= price / median <= band
    )


@checker(Fact.PROMOTED)
def _promoted(fc: FactChecker, user_key: str, item: str, ev: Evidence) -> bool:
    return ev.item_id == item and item in fc.promoted


@checker(Fact.NEW_IN)
def _new_in(fc: FactChecker, user_key: str, item: str, ev: Evidence) -> bool:
    """Listed on ``date``, ``window_days`` before the request, nobody has chosen it yet, and it
    is in one of the reader's often-chosen categories (with the stated share)."""
    row = fc.items.loc[item]
    created = row["created_at"]
    if pd.isna(created) or created.strftime("%Y-%m-%d") != ev.date:
        return False
    age = (fc.as_of - created) // pd.Timedelta(days=1)
    in_cat = ev.category in str(row["category"]).split(CATEGORY_SEP)
    return (
        age == ev.window_days
        and 0 <= age <= 90
        and in_cat
        and not len(fc.shop_rows(item))
        and not (fc.inter["item_id"] == item).any()
        and _share(fc, user_key, "category", ev.category, ev)
        and fc.top(user_key, "category", ev.category, min_count=True)
    )
