"""Promoted items: a re-ranking stage that reserves up to a share of a list's slots for them.

The shop (or a campaign's ``[rerank]``) names promoted items, the share of the top ``k`` they may
take (``max_share``) and optional pinned positions. The stage only moves items that are already
candidates, so a promotion never brings in an item that the filters, stock, exclusions or the
seen memory left out; it runs before the fairness stage (the pipeline refuses the other order),
so FA*IR's floors hold over the final list. Items it places get ``promoted = True``; their reason
then says "Promoted by the shop", followed by a personal fit only where their own attributions
support one (:mod:`recsys.rules.reasons`). Lists that are not personalized carry no promotion
unless ``non_personalized = true``, and then say so as well.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, ClassVar, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, PositiveInt

from recsys.errors import ConfigError
from recsys.features.context import UserState
from recsys.types import ItemList, Stage

if TYPE_CHECKING:
    from recsys.rerank.stages import RerankInput

PROMOTED = "promoted"
"""The ItemList column (bool) of items this stage placed."""


class Promotions(BaseModel):
    """``kind = "promotions"``: promoted items in at most ``max_share`` of the top ``k``."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    kind: Literal["promotions"] = "promotions"
    items: tuple[str, ...] = ()
    """Promoted item ids, in the shop's order of preference."""
    max_share: float = Field(0.2, ge=0, le=1)
    """At most ``floor(max_share * k)`` promoted items in a list of ``k`` (counting every
    promoted item in it, also those the ranker chose on its own)."""
    pins: dict[str, PositiveInt] = Field(default_factory=dict)
    """Promoted item id -> 1-based position it is placed at (within the cap)."""
    non_personalized: bool = False
    """Also place them in lists that are not personalized (labeled as promoted)."""

    stage: ClassVar[Stage] = Stage.PROMOTION

    def cap(self, k: int) -> int:
        return int(np.floor(self.max_share * k + 1e-9))

    def promoted(self, ctx_ids: object) -> np.ndarray:
        """Catalogue indices of the promoted items (unknown ids are left out)."""
        idx = ctx_ids.index(list(self.items))  # type: ignore[attr-defined]
        return np.asarray(idx[idx >= 0], dtype=np.int64)

    def reserved(self, inp: RerankInput) -> np.ndarray:
        """The items this stage may move in, kept in reach below the re-ranking depth."""
        ids = inp.ctx.catalog.items
        pinned = ids.index(list(self.pins))
        return np.concatenate([self.promoted(ids), pinned[pinned >= 0]]).astype(np.int64)

    def __call__(self, inp: RerankInput, st: UserState, items: ItemList, k: int) -> ItemList:
        return self.many(inp, [st], [items], k)[0]

    def many(
        self, inp: RerankInput, states: Sequence[UserState], lists: Sequence[ItemList], k: int
    ) -> list[ItemList]:
        ids = inp.ctx.catalog.items
        pins = {
            int(i): p
            for i, p in zip(ids.index(list(self.pins)), self.pins.values(), strict=False)
            if i >= 0
        }
        return [place(lst, self.promoted(ids), pins, k, self.cap(k)) for lst in lists]


class NewArrivals(BaseModel):
    """``kind = "new_items"``: up to ``slots`` items nobody has chosen yet, listed within
    ``new_days``, moved into the top ``k`` from the candidates (the content source proposes
    them). Their reason says they are new ("New in Coffee, which you often choose ..." where
    that rule holds, else "New: available since ..."), never that the ranker picked them."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    kind: Literal["new_items"] = "new_items"
    slots: int = Field(1, ge=0)
    new_days: PositiveInt = 90

    stage: ClassVar[Stage] = Stage.NEW_ARRIVAL

    def reserved(self, inp: RerankInput) -> np.ndarray:
        """Items nobody has chosen yet (the stage checks their age per request)."""
        return np.flatnonzero(inp.ctx.customers == 0).astype(np.int64)

    def __call__(self, inp: RerankInput, st: UserState, items: ItemList, k: int) -> ItemList:
        return self.many(inp, [st], [items], k)[0]

    def many(
        self, inp: RerankInput, states: Sequence[UserState], lists: Sequence[ItemList], k: int
    ) -> list[ItemList]:
        ctx = inp.ctx
        cold = ctx.customers == 0
        created = ctx.catalog.created
        out = []
        for st, lst in zip(states, lists, strict=True):
            new = cold.copy()
            if created is not None:
                with np.errstate(invalid="ignore"):
                    age = st.as_of - created
                new &= (age >= 0) & (age <= self.new_days * 86_400)
            fresh = lst.items[new[lst.items]]
            out.append(place(lst, fresh, {}, k, self.slots, column=NEW_ARRIVAL))
        return out


NEW_ARRIVAL = "new_arrival"
"""The ItemList column (bool) of new items the ``new_items`` stage placed."""


def place(
    lst: ItemList,
    promoted: np.ndarray,
    pins: dict[int, int],
    k: int,
    cap: int,
    column: str = PROMOTED,
) -> ItemList:
    """Move promoted items of ``lst`` into its top ``k``, within ``cap``; mark them placed."""
    before = lst.column(column) if column in lst else np.zeros(len(lst), dtype=bool)
    is_promo = np.isin(lst.items, promoted)
    if not is_promo.any() or cap <= 0:
        return lst.with_column(column, before)
    pos_of = {int(i): n for n, i in enumerate(lst.items.tolist())}
    top = min(k, len(lst))
    natural = [n for n in range(top) if is_promo[n] and int(lst.items[n]) not in pins]
    free = max(0, cap - len(natural))
    order_pref = [int(i) for i in promoted.tolist() if int(i) in pos_of]
    pinned = [i for i in order_pref if i in pins][:free]
    rest = [i for i in order_pref if i not in pins and pos_of[i] >= top]
    chosen = pinned + rest[: max(0, free - len(pinned))]
    if not chosen:
        return lst.with_column(column, before)
    chosen_pos = [pos_of[i] for i in chosen]
    others = [n for n in range(len(lst)) if n not in set(chosen_pos)]
    # items an earlier reserved-slot stage placed keep their place in the top k
    held = np.zeros(len(lst), dtype=bool)
    for name in (PROMOTED, NEW_ARRIVAL):
        if name != column and name in lst:
            held |= lst.column(name).astype(bool)
    others = [n for n in others if n < top and held[n]] + [
        n for n in others if not (n < top and held[n])
    ]
    head = others[: top - len(chosen)]
    tail = others[top - len(chosen) :]
    slots: list[int | None] = [None] * top
    for i in pinned:
        p = min(pins[i], top) - 1
        while slots[p] is not None:  # two pins on one position: the next free one
            p = (p + 1) % top
        slots[p] = pos_of[i]
    unpinned = [pos_of[i] for i in chosen if i not in pins]
    for n in range(top - 1, -1, -1):  # the lowest free slots of the top k, in preference order
        if unpinned and slots[n] is None:
            slots[n] = unpinned.pop(0)
    it = iter(head)
    order = [s if s is not None else next(it) for s in slots] + tail
    mark = before.copy()
    mark[chosen_pos] = True
    return lst.with_column(column, mark).take(np.asarray(order, dtype=np.int64))


def check_order(stages: Sequence[object]) -> None:
    """Promotions run before any fairness stage, so they never undo its floors."""
    seen_fair = False
    for s in stages:
        kind = getattr(s, "kind", None)
        if kind == "fair":
            seen_fair = True
        elif kind == "promotions" and seen_fair:
            raise ConfigError(
                "re-ranking: the promotions stage must come before the fairness stage "
                "(kind = 'fair'), so promotions never override its floors"
            )
