"""When a template fits: the rules that keep a true sentence from misleading its reader.

A fact can be true and still mislead: "You often choose Novels (1 of your last 26 items)", "Time
to restock?" two days after buying a soundbar, "Priced like what you usually choose" at five
times the customer's median. Each rule here decides whether a fact may speak; a refused fact is
recorded on the reason (``Reason.refused``) and the next attribution speaks instead. The
independent checker (:mod:`recsys.testing.facts`) re-applies the same rules from the data.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, PositiveInt

from recsys.features.context import FeatureContext, UserState
from recsys.types import Evidence, Fact


class ReasonRules(BaseModel):
    """Applicability rules of the reason templates (``[reasons.rules]`` in a pipeline config)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    often_top: PositiveInt = 3
    """"You often choose C" only for one of the customer's ``often_top`` largest categories
    (brands) ..."""
    often_min: PositiveInt = 2
    """... and only when at least this many of their items are in it."""
    price_min_items: PositiveInt = 3
    """... and only when the customer's median comes from at least this many priced items."""
    price_band: float = Field(1.25, gt=1)
    """"Priced like what you usually choose" only within the customer's median price divided or
    multiplied by this."""
    restock_share: float = Field(0.5, gt=0)
    """"Time to restock?" only for items with a measured re-buy cycle, once this share of the
    cycle has passed since the customer's last purchase."""
    trending_min: PositiveInt = 5
    """"Popular right now" only when at least this many customers did it in the window."""

    def top(self, counts: dict[str, int] | None, name: str | None) -> bool:
        """Is ``name`` among the ``often_top`` largest of ``counts``, with ``often_min`` or more?"""
        if counts is None or name is None:
            return False
        n = counts.get(name, 0)
        larger = sum(1 for c in counts.values() if c > n)
        return n >= self.often_min and larger < self.often_top

    def allows(self, ev: Evidence, ctx: FeatureContext, st: UserState | None) -> bool:
        """May ``ev`` speak to the user of ``st`` (``None``: a list that is not personal)?
        Facts without a rule here always may."""
        rule = _RULES.get(ev.fact)
        return True if rule is None else rule(self, ev, ctx, st)

    def in_top_categories(self, ctx: FeatureContext, st: UserState, category: str) -> bool:
        """Is ``category`` one of the customer's ``often_top`` largest (with any count)?"""
        counts = category_counts(ctx, st)
        n = counts.get(category, 0)
        return n > 0 and sum(1 for c in counts.values() if c > n) < self.often_top


def category_counts(ctx: FeatureContext, st: UserState) -> dict[str, int]:
    """The customer's items per category (of their history), by name."""
    hit = st.cache.get("category_names")
    if hit is None:
        idx = np.flatnonzero(st.category_counts)
        names = ctx.catalog.categories
        hit = st.cache["category_names"] = {
            names[i]: int(st.category_counts[i]) for i in idx.tolist()
        }
    return hit


# --- one rule per fact that has one (the others always speak) ---------------------------------
_Rule = Callable[[ReasonRules, Evidence, FeatureContext, UserState | None], bool]


def _category_share(
    r: ReasonRules, ev: Evidence, ctx: FeatureContext, st: UserState | None
) -> bool:
    """Often in a category: one of the customer's largest, with enough items (decided once per
    category and request: every item of that category asks)."""
    if st is None:
        return False
    key = ("often_category", r.often_top, r.often_min, ev.category)
    hit = st.cache.get(key)
    if hit is None:
        hit = st.cache[key] = r.top(category_counts(ctx, st), ev.category)
    return hit


def _brand_share(r: ReasonRules, ev: Evidence, ctx: FeatureContext, st: UserState | None) -> bool:
    """Often a brand: one of the customer's largest, with enough items."""
    return st is not None and r.top(st.brand_counts, ev.brand)


def _usual_price(r: ReasonRules, ev: Evidence, ctx: FeatureContext, st: UserState | None) -> bool:
    """Usual price: a median from enough priced items, the price within the band."""
    if not ev.value or not ev.price or ev.value <= 0:
        return False
    if (ev.total or 0) < r.price_min_items:
        return False
    return 1 / r.price_band <= ev.price / ev.value <= r.price_band


def _bought_before(r: ReasonRules, ev: Evidence, ctx: FeatureContext, st: UserState | None) -> bool:
    """Restock: enough of the measured re-buy cycle has passed."""
    return bool(ev.window_days) and (ev.count or 0) >= r.restock_share * (ev.window_days or 0)


def _trending(r: ReasonRules, ev: Evidence, ctx: FeatureContext, st: UserState | None) -> bool:
    """Popular right now: enough customers in the window."""
    return (ev.count or 0) >= r.trending_min


def _diversity(r: ReasonRules, ev: Evidence, ctx: FeatureContext, st: UserState | None) -> bool:
    """Something different: a category outside the customer's largest."""
    return st is not None and (ev.category is None or not r.in_top_categories(ctx, st, ev.category))


_RULES: dict[Fact, _Rule] = {
    Fact.CATEGORY_SHARE: _category_share,
    Fact.BRAND_SHARE: _brand_share,
    Fact.USUAL_PRICE: _usual_price,
    Fact.BOUGHT_BEFORE: _bought_before,
    Fact.TRENDING: _trending,
    Fact.DIVERSITY: _diversity,
}
