"""Content-based candidates: new items, matched to the customer by category, brand and price.

A new item has no interactions, so the collaborative model has nothing to say about it (its
factors are zero: :meth:`~recsys.model.fitted.FittedModel.with_items`). This source proposes
items nobody has chosen yet, or listed within ``new_days`` of the request, that share a category
or brand with the customer's history or sit in their usual price band; the ranker's content
features (category and brand affinity, price fit, newness) then score them like any candidate.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, NonNegativeInt, PositiveInt

from recsys.features.context import FeatureContext, UserBlock
from recsys.features.history import DAY


class ContentSource(BaseModel):
    """``kind = "content"``: the best content matches among new items."""

    model_config = ConfigDict(extra="forbid")
    kind: Literal["content"] = "content"
    n: NonNegativeInt = 20
    new_days: PositiveInt = 90
    """Items listed within this many days before the request count as new (as do items no
    customer has chosen yet)."""
    price_band: float = Field(1.25, gt=1)
    """Within the customer's median price divided or multiplied by this: a price match."""

    def scores(self, ctx: FeatureContext, block: UserBlock) -> np.ndarray:
        """Users x items content match: category share + half the brand share + a quarter for
        a price in the customer's band (0: nothing in common)."""
        cat = ctx.catalog
        n_items = len(cat.items)
        states = block.states
        n = np.maximum(np.array([st.n_items for st in states], dtype=float), 1.0)
        share = np.stack([st.category_counts for st in states]) / n[:, None]
        out = np.asarray((cat.item_categories @ share.T).T, dtype=float).reshape(len(states), -1)
        codes, n_brands = ctx.brand_codes
        if n_brands:
            counts = np.zeros((len(states), n_brands))
            for p, st in enumerate(states):
                c = codes[st.items]
                counts[p] = np.bincount(c[c >= 0], minlength=n_brands)
            has = codes >= 0
            out[:, has] += 0.5 * counts[:, codes[has]] / n[:, None]
        if cat.price is not None:
            med = np.array([st.price_median for st in states], dtype=float)
            ok = np.isfinite(med) & (med > 0)
            with np.errstate(invalid="ignore", divide="ignore"):
                ratio = cat.price[None, :] / np.where(ok, med, np.nan)[:, None]
                band = (ratio >= 1 / self.price_band) & (ratio <= self.price_band)
            out += 0.25 * (band & (out > 0))
        return out if out.shape[1] == n_items else np.zeros((len(states), n_items))

    def __call__(
        self, ctx: FeatureContext, block: UserBlock, allowed: np.ndarray
    ) -> list[np.ndarray]:
        if not self.n or not len(block):
            return [np.empty(0, dtype=np.int64) for _ in range(len(block))]
        cold = ctx.customers == 0
        created = ctx.catalog.created
        score = self.scores(ctx, block)
        out = []
        for p, st in enumerate(block.states):
            new = cold.copy()
            if created is not None:
                with np.errstate(invalid="ignore"):
                    age = st.as_of - created
                    new |= (age >= 0) & (age <= self.new_days * DAY)
            ok = np.flatnonzero(allowed[p] & new & (score[p] > 0))
            if len(ok) > self.n:
                ids = ctx.catalog.items.ids[ok].astype(str)
                ok = ok[np.lexsort((ids, -score[p, ok]))[: self.n]]
            out.append(np.sort(ok).astype(np.int64))
        return out
