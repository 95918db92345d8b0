"""The rules of an evaluation run, the same for every system compared in it.

Which of a customer's training items no system may recommend (``exclude``), which test events
count as a success (``relevant``), and whether today's stock flag filters lists. Every system,
baselines, the pipeline and the shop's own list read from a file, gets its exclusions from
:meth:`Protocol.exclusions` and is scored against :meth:`Protocol.truth`; nothing else decides.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import pandas as pd
from pydantic import BaseModel, ConfigDict, PositiveInt

from recsys.errors import ConfigError

Exclusions = Mapping[str, frozenset[str]]


class ProtocolConfig(BaseModel):
    """The exclusion and relevance rules of an evaluation run (section ``[protocol]``)."""

    model_config = ConfigDict(extra="forbid")

    exclude: Literal["auto", "any", "purchased", "none"] = "auto"
    """Training items left out of every list: any interaction, purchases only, or none;
    ``auto`` is ``purchased`` when purchases are the success (shoppers buy what they viewed) and
    ``any`` when ratings are (a rated film has been seen)."""
    relevant: Literal["auto", "purchase", "rating"] = "auto"
    """A test success: a purchase, or a rating >= ``min_rating``; ``auto`` takes purchases when
    the data has any, ratings otherwise (the resolved rule is written in the report)."""
    min_rating: float = 4.0
    bestseller_days: PositiveInt = 30
    """The bestseller baseline counts purchases in this many days before the training cut-off."""
    respect_stock: bool = False
    """Leave out items flagged out of stock. Off by default: the flag describes today, while the
    test period lies in the past, so it would hide items customers did buy then."""


EXCLUDE_TEXT = {
    "any": "items the customer interacted with in the training period (any event) are left out "
    "of every system's list",
    "purchased": "items the customer bought in the training period are left out of every "
    "system's list; items they only viewed or carted may be recommended",
    "none": "nothing the customer interacted with is left out (re-purchases can be recommended)",
}


@dataclass(frozen=True)
class Protocol:
    """The resolved rules (never ``auto``)."""

    exclude: str
    relevant: str
    min_rating: float
    respect_stock: bool
    bestseller_days: int

    @classmethod
    def resolve(cls, cfg: ProtocolConfig, interactions: pd.DataFrame) -> Protocol:
        events = set(interactions["event"].unique())
        relevant = cfg.relevant
        if relevant == "auto":
            relevant = "purchase" if "purchase" in events else "rating"
        needed = "purchase" if relevant == "purchase" else "rating"
        if needed not in events:
            raise ConfigError(
                f"protocol.relevant = {relevant!r} but the data has no {needed} events "
                f"(events present: {sorted(events)}); set [protocol] relevant to one that exists"
            )
        exclude = cfg.exclude
        if exclude == "auto":
            exclude = "purchased" if relevant == "purchase" else "any"
        return cls(exclude, relevant, cfg.min_rating, cfg.respect_stock, cfg.bestseller_days)

    def exclusions(
        self, train: pd.DataFrame, items: pd.DataFrame, users: Sequence[str]
    ) -> dict[str, frozenset[str]]:
        """Per user: the items no system may recommend them."""
        if self.exclude == "none":
            rows = train.iloc[0:0]
        elif self.exclude == "purchased":
            rows = train[train["event"] == "purchase"]
        else:
            rows = train
        per_user = rows.groupby("user_id")["item_id"].apply(frozenset).to_dict()
        gone: frozenset[str] = frozenset()
        if self.respect_stock and "in_stock" in items:
            gone = frozenset(items.loc[~items["in_stock"].astype(bool), "item_id"].astype(str))
        return {str(u): per_user.get(u, frozenset()) | gone for u in users}

    def truth(
        self, test: pd.DataFrame, exclusions: Exclusions | None = None
    ) -> dict[str, set[str]]:
        """Relevant test items per user, minus the items the rule keeps out of every list (no
        system could recommend them); users left with none are not scored."""
        if self.relevant == "purchase":
            hits = test[test["event"] == "purchase"]
        else:
            hits = test[(test["event"] == "rating") & (test["value"] >= self.min_rating)]
        out: dict[str, set[str]] = {}
        for u, g in hits.groupby("user_id")["item_id"]:
            rel = set(g) - set((exclusions or {}).get(str(u), ()))
            if rel:
                out[str(u)] = rel
        return out

    def describe(self) -> dict[str, str]:
        """The rules in words, as the report states them."""
        relevant = (
            "a purchase in the test period"
            if self.relevant == "purchase"
            else f"a rating of at least {self.min_rating:g} in the test period"
        )
        stock = (
            "items flagged out of stock are left out of every list"
            if self.respect_stock
            else "the stock flag is ignored (it describes today, not the test period)"
        )
        return {
            "exclude": self.exclude,
            "exclude_text": EXCLUDE_TEXT[self.exclude],
            "relevant": self.relevant,
            "relevant_text": relevant + "; a relevant item the exclusion rule hides is not counted",
            "stock_text": stock,
            "bestseller_days": str(self.bestseller_days),
        }


def apply_exclusions(
    recs: Mapping[str, Sequence[str]], exclusions: Exclusions, k: int
) -> tuple[dict[str, list[str]], int]:
    """Lists with excluded items removed (for lists made elsewhere, e.g. the shop's own file),
    cut to ``k``; also the number of entries removed."""
    out: dict[str, list[str]] = {}
    removed = 0
    for u, items in recs.items():
        ex = exclusions.get(u, frozenset())
        kept = [i for i in items if i not in ex]
        removed += sum(i in ex for i in list(items)[:k])
        out[u] = kept[:k]
    return out, removed
