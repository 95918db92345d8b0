"""Honest reasons for items that business rules placed: promoted, filled in, new arrivals.

Runs after the explainer, on the items a customer sees:

- a promoted item says "Promoted by the shop"; its own reason follows only when its own
  attributions support one (never the generic "one of your best matches");
- an item that filled a short list says it is popular and why it is there;
- a new item (no customer has chosen it yet) that the ranker placed says what is known about it:
  "New in Coffee, which you often choose (...)", only where the "often" rule holds.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Set

import numpy as np

from recsys.explain.explainer import Explainer
from recsys.explain.rules import category_counts
from recsys.explain.templates import MESSAGES, NEW_DAYS, render
from recsys.features.context import FeatureContext, UserState
from recsys.features.history import DAY
from recsys.features.registry import customers_fact
from recsys.rerank.promotions import NEW_ARRIVAL, PROMOTED
from recsys.types import Evidence, Fact, ItemList, Reason, Stage


def _own(explainer: Explainer, ctx: FeatureContext, st: UserState, i: int, phi) -> Reason | None:
    """The item's own reason from its attributions, if they support one."""
    own = explainer.reason(ctx, st, i, phi)
    return None if own.text == MESSAGES["fallback"] or not own.evidence else own


def promoted_reason(
    explainer: Explainer, ctx: FeatureContext, st: UserState | None, i: int, phi, why: str | None
) -> Reason:
    ev = Evidence(fact=Fact.PROMOTED, item_id=str(ctx.catalog.items.ids[i]))
    head = render(ev, explainer.titles) or MESSAGES["promoted"]
    own = _own(explainer, ctx, st, i, phi) if st is not None and phi is not None else None
    if why is not None:
        head = MESSAGES["not_personalized"].format(text=head, why=why)
    if own is None:
        return Reason(text=head, evidence=(ev,), stage=Stage.PROMOTION)
    return dataclasses.replace(
        own, text=f"{head}. {own.text}", evidence=(ev, *own.evidence), stage=Stage.PROMOTION
    )


def fill_reason(ctx: FeatureContext, key: str | None, i: int, titles: dict[str, str]) -> Reason:
    facts = customers_fact(ctx, key, i)
    text = render(facts[0], titles) if facts else None
    text = MESSAGES["short_list"].format(text=text or MESSAGES["shop_pick"])
    return Reason(text=text, evidence=tuple(facts[:1]), stage=Stage.POPULARITY)


def new_in_evidence(explainer: Explainer, ctx: FeatureContext, st: UserState, i: int):
    """ "New in C, which you often choose": for an item nobody has chosen yet, listed within
    ``NEW_DAYS``, in one of the customer's often-chosen categories (the "often" rule)."""
    cat = ctx.catalog
    if ctx.customers[i] > 0 or cat.created is None or not np.isfinite(cat.created[i]):
        return None
    age = int((st.as_of - cat.created[i]) // DAY)
    if not 0 <= age <= NEW_DAYS:
        return None
    counts = category_counts(ctx, st)
    best = None
    for c in cat.categories_of(i):
        if explainer.rules.top(counts, c) and (best is None or counts[c] > counts[best]):
            best = c
    if best is None:
        return None
    date = str(np.datetime64(int(cat.created[i]), "s").astype("datetime64[D]"))
    ev = Evidence(
        fact=Fact.NEW_IN, category=best, count=counts[best], total=st.n_items,
        date=date, window_days=age,
    )  # fmt: skip
    return None if explainer.sensitivity.reveals(ev, ctx) else ev


def arrival_reason(explainer: Explainer, ctx: FeatureContext, st: UserState, i: int, phi) -> Reason:
    """A new item in a reserved slot: what is new about it, then its own reason if any."""
    ev = new_in_evidence(explainer, ctx, st, i)
    if ev is None:
        created = ctx.catalog.created[i] if ctx.catalog.created is not None else np.nan
        date = (
            str(np.datetime64(int(created), "s").astype("datetime64[D]"))
            if np.isfinite(created)
            else None
        )
        age = int((st.as_of - created) // DAY) if np.isfinite(created) else None
        ev = Evidence(fact=Fact.LISTED, date=date, window_days=age)
    head = render(ev, explainer.titles) or MESSAGES["new_arrival"]
    own = _own(explainer, ctx, st, i, phi)
    if own is None:
        return Reason(text=head, evidence=(ev,) if ev.date else (), stage=Stage.NEW_ARRIVAL)
    # nothing twice: "New in C, which you often choose (...)" already says it is new and in C
    said = {ev.fact, Fact.LISTED} if ev.fact == Fact.NEW_IN else {ev.fact}
    own_ev = tuple(
        e
        for e in own.evidence
        if e.fact not in said and not (e.fact == Fact.CATEGORY_SHARE and e.category == ev.category)
    )
    text = head + "".join(
        f". {render(e, explainer.titles)}" for e in own_ev if render(e, explainer.titles)
    )
    return dataclasses.replace(own, text=text, evidence=(ev, *own_ev), stage=Stage.NEW_ARRIVAL)


def finish(
    explainer: Explainer,
    ctx: FeatureContext,
    st: UserState,
    lst: ItemList,
    filled: Set[int] = frozenset(),
) -> ItemList:
    """Rewrite the reasons of promoted, filled-in and new items of a personalized list."""
    promoted = lst.column(PROMOTED) if PROMOTED in lst else np.zeros(len(lst), bool)
    arrival = lst.column(NEW_ARRIVAL) if NEW_ARRIVAL in lst else np.zeros(len(lst), bool)
    stages = lst.column("stage") if "stage" in lst else np.full(len(lst), "ranker", object)
    phi = lst.column("attributions")
    reasons = lst.column("reason").copy()
    new_stages = stages.astype(object).copy()
    changed = False
    for r, i in enumerate(lst.items.tolist()):
        if promoted[r] or stages[r] == Stage.PROMOTION:
            reasons[r] = promoted_reason(explainer, ctx, st, i, phi[r], None)
        elif i in filled:
            reasons[r] = fill_reason(ctx, st.key, i, explainer.titles)
        elif arrival[r] or stages[r] == Stage.NEW_ARRIVAL:
            reasons[r] = arrival_reason(explainer, ctx, st, i, phi[r])
        elif stages[r] == Stage.RANKER and (ev := new_in_evidence(explainer, ctx, st, i)):
            own = reasons[r]
            head = render(ev, explainer.titles) or ""
            keep = own.text != MESSAGES["fallback"]
            reasons[r] = dataclasses.replace(
                own,
                text=f"{head}. {own.text}" if keep else head,
                evidence=(ev, *own.evidence) if keep else (ev,),
            )
        else:
            continue
        new_stages[r] = str(reasons[r].stage)
        changed = True
    if not changed:
        return lst
    return lst.with_column("reason", reasons).with_column("stage", new_stages)


def finish_plain(
    explainer: Explainer,
    ctx: FeatureContext,
    lst: ItemList,
    promoted: Set[int],
    filled: Set[int],
    why: str,
    key: str | None,
) -> ItemList:
    """The same for a list that is not personalized (no attributions, no history read)."""
    if not promoted and not filled:
        return lst
    reasons = lst.column("reason").copy()
    for r, i in enumerate(lst.items.tolist()):
        if i in promoted:
            reasons[r] = promoted_reason(explainer, ctx, None, i, None, why)
        elif i in filled:
            base = fill_reason(ctx, key, i, explainer.titles)
            reasons[r] = dataclasses.replace(
                base, text=MESSAGES["not_personalized"].format(text=base.text, why=why)
            )
    return lst.with_column("reason", reasons)
