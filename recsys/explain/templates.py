"""Every sentence a customer can read, in one place (ready for translation).

A template renders one :class:`~recsys.types.Evidence` fact; it returns ``None`` when the fact
does not support a sentence (e.g. an item listed long ago is not "new").
"""

from __future__ import annotations

from datetime import date

from recsys.types import Evidence

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
SHOP_DID = {"purchase": "bought", "rating": "rated", "cart": "added to carts", "view": "viewed"}

MESSAGES: dict[str, str] = {
    "chosen_together": "{customers} who chose {item} also chose this (you {did} on {date})",
    "taste_profile": "Matches the taste learned from your last {count} items",
    "similar_to": "Similar to {item}, which you {did} on {date}",
    "category_share": "You often choose {category} ({count} of your last {total} items)",
    "brand_share": "You often choose {brand} ({count} of your last {total} items)",
    "usual_price": "Priced like what you usually choose (your median: {value:.2f})",
    "bought_before": "Time to restock? You last bought it on {date}",
    "trending": "Popular right now: {did} {times} in the {window_days} days before {date}",
    "customers": "Chosen by {customers}",
    "customers_event": "{Did} by {customers}",
    "average_rating": "Rated {value:.1f} on average by {customers}",
    "listed": "New: available since {date}",
    "fallback": "One of your best matches among the items you have not tried yet",
    "diversity": "Something different, in {category}",
    "calibration": "To match your usual mix: {category} ({count} of your last {total} items)",
    "diversity_plain": "Something different from your other picks",
    "not_personalized": "{text} (not personalized: {why})",
    "why_no_consent": "you chose not to receive personalized recommendations",
    "why_no_history": "we have no history for you yet",
    "why_no_profiling": "recommendations without profiling",
}


def day(iso: str) -> str:
    """'1997-10-03' -> '3 Oct 1997'."""
    d = date.fromisoformat(iso)
    return f"{d.day} {d.strftime('%b %Y')}"


def plural(n: int, one: str, many: str) -> str:
    return f"{n:,} {one if n == 1 else many}"


def render(ev: Evidence, titles: dict[str, str]) -> str | None:
    """One sentence for one fact; ``titles`` maps item ids to names."""
    f = ev.fact
    item = titles.get(ev.item_id or "", ev.item_id or "")
    if f == "chosen_together":
        return MESSAGES[f].format(
            customers=plural(ev.count or 0, "customer", "customers"),
            item=item,
            did=YOU_DID_IT[ev.event or "view"],
            date=day(ev.date or ""),
        )
    if f == "similar_to":
        return MESSAGES[f].format(
            item=item, did=YOU_DID[ev.event or "view"], date=day(ev.date or "")
        )
    if f in ("category_share", "brand_share", "taste_profile"):
        return MESSAGES[f].format(**ev.to_dict())
    if f == "usual_price":
        return MESSAGES[f].format(value=ev.value)
    if f == "bought_before":
        return MESSAGES[f].format(date=day(ev.date or ""))
    if f == "trending":
        if not ev.count:
            return None
        return MESSAGES[f].format(
            did=SHOP_DID[ev.event or "view"],
            times="once" if ev.count == 1 else f"{ev.count:,} times",
            window_days=ev.window_days,
            date=day(ev.date or ""),
        )
    if f == "customers":
        customers = plural(ev.count or 0, "customer", "customers")
        if ev.event:
            return MESSAGES["customers_event"].format(
                Did=SHOP_DID[ev.event].capitalize(), customers=customers
            )
        return MESSAGES[f].format(customers=customers)
    if f == "average_rating":
        return MESSAGES[f].format(
            value=ev.value, customers=plural(ev.count or 0, "customer", "customers")
        )
    if f == "listed":
        if ev.window_days is None or not 0 <= ev.window_days <= NEW_DAYS:
            return None
        return MESSAGES[f].format(date=day(ev.date or ""))
    return None
