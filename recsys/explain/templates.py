"""Every sentence a customer can read, in one place (ready for translation).

Each :class:`~recsys.types.Fact` has one renderer here, registered with :func:`template`; a
renderer returns ``None`` when the fact does not support a sentence (e.g. an item listed long ago
is not "new"). The contract tests fail when a fact has no renderer or no checker
(:mod:`recsys.testing.facts`).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from datetime import date

from recsys.types import Evidence, Fact

NEW_DAYS = 90
"""An item counts as new for this many days after it was listed."""

YOU_DID = {
    "purchase": "bought",
    "rating": "rated",
    "cart": "added to your cart",
    "view": "looked at",
}
YOU_DID_IT = {
    "purchase": "bought it",
    "rating": "rated it",
    "cart": "added it to your cart",
    "view": "looked at it",
}

COUNTED = {
    "purchase": ("bought", "bought"),
    "cart": ("added to their cart", "added it to their cart"),
    "view": ("viewed", "viewed"),
}
"""What a shop-wide count counts, as a verb (before and after the item)."""

MESSAGES: dict[str, str] = {
    "chosen_together": "{customers} who {did_shop} also {did_also} (you {did} on {date})",
    "taste_profile": "Matches the taste learned from your last {items}",
    "similar_to": "Similar to {item}, which you {did} on {date}",
    "category_share": "You often choose {category} ({count} of your last {total} items)",
    "brand_share": "You often choose {brand} ({count} of your last {total} items)",
    "usual_price": "Priced like what you usually choose: {price:.2f} (your median: {value:.2f})",
    "bought_before": "Time to restock? You last bought it on {date}, {days}; customers who buy "
    "it again do so about every {cycle} days",
    "trending": "Popular right now: {did_shop} by {customers} in the {window_days} days before "
    "{date}",
    "customers": "{Did_shop} by {customers}",
    "average_rating": "Rated {value:.1f} on average ({ratings})",
    "listed": "New: available since {date}",
    "fallback": "One of your best matches among the items you have not tried yet",
    "diversity": "Something different, in {category}",
    "calibration": "To match your usual mix: {category} ({count} of your last {total} items)",
    "diversity_plain": "Something different from your other picks",
    "item_group": "A pick from a group we make sure you see",
    "not_personalized": "{text} (not personalized: {why})",
    "shop_pick": "In stock at the shop",
    "why_no_consent": "you chose not to receive personalized recommendations",
    "why_no_history": "we have no history for you yet",
    "why_unknown": "we do not know you yet",
    "why_no_profiling": "recommendations without profiling",
    "promoted": "Promoted by the shop",
    "new_arrival": "New at the shop",
    "new_in": "New in {category}, which you often choose ({count} of your last {total} items)",
    "short_list": "{text} (added because few items match the rules of this list)",
}


def counted_phrases(counted: str | None, item: str = "") -> tuple[str, str, str]:
    """What a count counts, three ways: ("bought", "bought Tea", "bought this") or
    ("rated 4 or more", "rated Tea 4 or more", "rated this 4 or more")."""
    c = counted or "view"
    if c.startswith("rating>="):
        t = c.removeprefix("rating>=")
        return f"rated {t} or more", f"rated {item} {t} or more", f"rated this {t} or more"
    verb = COUNTED.get(c, COUNTED["view"])[0]
    return verb, f"{verb} {item}", f"{verb} this"


def others(n: int, reader_too: bool | None = None) -> str:
    """'12 other customers': a count of customers never includes the reader."""
    return (
        plural(n, "other customer", "other customers")
        if reader_too
        else plural(n, "customer", "customers")
    )


Titles = dict[str, str]
Renderer = Callable[[Evidence, Titles], str | None]
RENDERERS: dict[Fact, Renderer] = {}


def template(fact: Fact) -> Callable[[Renderer], Renderer]:
    """Register the renderer of ``fact``."""

    def register(fn: Renderer) -> Renderer:
        RENDERERS[fact] = fn
        return fn

    return register


@functools.lru_cache(maxsize=4096)
def day(iso: str) -> str:
    """'1997-10-03' -> '3 Oct 1997'."""
    d = date.fromisoformat(iso)
    return f"{d.day} {d.strftime('%b %Y')}"


def plural(n: int, one: str, many: str) -> str:
    return f"{n:,} {one if n == 1 else many}"


def _item(ev: Evidence, titles: Titles) -> str:
    return titles.get(ev.item_id or "", ev.item_id or "")


@template(Fact.CHOSEN_TOGETHER)
def _chosen_together(ev: Evidence, titles: Titles) -> str:
    _, of_item, this = counted_phrases(ev.counted, _item(ev, titles))
    return MESSAGES["chosen_together"].format(
        customers=plural(ev.count or 0, "other customer", "other customers"),
        did_shop=of_item,
        did_also=this,
        did=YOU_DID_IT[ev.event or "view"],
        date=day(ev.date or ""),
    )


@template(Fact.SIMILAR_TO)
def _similar_to(ev: Evidence, titles: Titles) -> str:
    return MESSAGES["similar_to"].format(
        item=_item(ev, titles), did=YOU_DID[ev.event or "view"], date=day(ev.date or "")
    )


@template(Fact.TASTE_PROFILE)
def _taste(ev: Evidence, titles: Titles) -> str:
    return MESSAGES["taste_profile"].format(items=plural(ev.count or 0, "item", "items"))


@template(Fact.CATEGORY_SHARE)
def _category_share(ev: Evidence, titles: Titles) -> str:
    return MESSAGES["category_share"].format(category=ev.category, count=ev.count, total=ev.total)


@template(Fact.BRAND_SHARE)
def _brand_share(ev: Evidence, titles: Titles) -> str:
    return MESSAGES["brand_share"].format(brand=ev.brand, count=ev.count, total=ev.total)


@template(Fact.USUAL_PRICE)
def _usual_price(ev: Evidence, titles: Titles) -> str:
    return MESSAGES["usual_price"].format(price=ev.price or 0.0, value=ev.value or 0.0)


@template(Fact.BOUGHT_BEFORE)
def _bought_before(ev: Evidence, titles: Titles) -> str:
    return MESSAGES["bought_before"].format(
        date=day(ev.date or ""),
        days=plural(ev.count or 0, "day ago", "days ago"),
        cycle=ev.window_days,
    )


@template(Fact.TRENDING)
def _trending(ev: Evidence, titles: Titles) -> str | None:
    if not ev.count:
        return None
    return MESSAGES["trending"].format(
        did_shop=counted_phrases(ev.counted)[0],
        customers=others(ev.count, ev.others),
        window_days=ev.window_days,
        date=day(ev.date or ""),
    )


@template(Fact.CUSTOMERS)
def _customers(ev: Evidence, titles: Titles) -> str:
    did = counted_phrases(ev.counted)[0]
    return MESSAGES["customers"].format(
        Did_shop=did[0].upper() + did[1:], customers=others(ev.count or 0, ev.others)
    )


@template(Fact.AVERAGE_RATING)
def _average_rating(ev: Evidence, titles: Titles) -> str:
    return MESSAGES["average_rating"].format(
        value=ev.value, ratings=plural(ev.count or 0, "rating", "ratings")
    )


@template(Fact.LISTED)
def _listed(ev: Evidence, titles: Titles) -> str | None:
    if ev.window_days is None or not 0 <= ev.window_days <= NEW_DAYS:
        return None
    return MESSAGES["listed"].format(date=day(ev.date or ""))


@template(Fact.DIVERSITY)
def _diversity(ev: Evidence, titles: Titles) -> str:
    if ev.category:
        return MESSAGES["diversity"].format(category=ev.category)
    return MESSAGES["diversity_plain"]


@template(Fact.ITEM_GROUP)
def _item_group(ev: Evidence, titles: Titles) -> str:
    return MESSAGES["item_group"]


@template(Fact.PROMOTED)
def _promoted(ev: Evidence, titles: Titles) -> str:
    return MESSAGES["promoted"]


@template(Fact.NEW_IN)
def _new_in(ev: Evidence, titles: Titles) -> str | None:
    if ev.window_days is None or not 0 <= ev.window_days <= NEW_DAYS:
        return None
    return MESSAGES["new_in"].format(category=ev.category, count=ev.count, total=ev.total)


def render(ev: Evidence, titles: Titles) -> str | None:
    """One sentence for one fact; ``titles`` maps item ids to names."""
    return RENDERERS[ev.fact](ev, titles)
