"""The fitted model: plain, immutable state that every path reads and no path changes.

No locks, no consent, no file handles: a :class:`FittedModel` pickles, ships to a worker process,
and is replaced as a whole (``forget``, ``update``, a hot swap) rather than modified, so a request
that took a reference never sees two states.
"""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from recsys.config import RecommenderConfig
from recsys.explain.reasons import Sensitivity, sensitive_items
from recsys.features.context import FeatureContext
from recsys.features.history import Catalog, History, Vocabulary
from recsys.features.registry import REGISTRY, Feature
from recsys.features.stats import Cooccurrence
from recsys.privacy.policy import Policy
from recsys.ranking.additive import AdditiveModel
from recsys.rerank.groups import item_group


@dataclass(frozen=True, eq=False)
class FittedModel:
    config: RecommenderConfig
    policy: Policy
    purpose: str
    ctx: FeatureContext
    """History, catalog, collaborative factors and precomputed item statistics."""
    feature_names: tuple[str, ...]
    ranker: AdditiveModel
    key_id: str | None = None
    """Fingerprint of the pseudonymization key the user ids were made with (None: raw ids)."""
    minimization: dict[str, Any] | None = None
    training: dict[str, Any] = field(default_factory=dict)
    """Examples, positives and seconds of the training run."""

    @cached_property
    def features(self) -> tuple[Feature, ...]:
        return tuple(REGISTRY[n] for n in self.feature_names)

    @cached_property
    def sensitivity(self) -> Sensitivity:
        return sensitive_items(self.ctx.catalog, self.policy)

    @cached_property
    def titles(self) -> dict[str, str]:
        cat = self.ctx.catalog
        return dict(zip(cat.items.ids.tolist(), cat.title.tolist(), strict=True))

    @cached_property
    def groups(self) -> dict[str, np.ndarray]:
        """Per policy item group: membership of every item (groups the data cannot tell are
        left out)."""
        out = {}
        for name, rule in self.policy.item_groups.items():
            g = item_group(self.ctx, rule)
            if g is not None:
                out[name] = g
        return out

    @property
    def cutoff(self) -> int:
        return self.ctx.cutoff

    def describe(self) -> dict[str, Any]:
        """The main parameters behind the recommendations (for transparency reports)."""
        return {
            "purpose": self.purpose,
            "features": {f.name: f.description for f in self.features},
            "collaborative": self.config.collaborative.model_dump(),
            "data_cutoff": str(np.datetime64(self.cutoff, "s")),
        }

    def with_items(self, items: pd.DataFrame) -> FittedModel:
        """A new model whose catalogue has ``items`` added (new ids, after the known ones) or
        updated (known ids: price, stock ...); only the columns the policy lets the purpose read
        are kept. New items get zero collaborative factors (the content source and the ranker's
        content features reach them) and no history. This model is left as it was."""
        allowed = [
            c for c in items.columns if self.policy.purposes[self.purpose].allows("items", c)
        ]
        items = items[allowed]
        ctx, old = self.ctx, self.ctx.catalog.to_frame().set_index("item_id")
        upd = items.set_index("item_id")
        known = upd.index.isin(old.index)
        merged = old.copy()
        for col in upd.columns:
            if col not in merged:
                merged[col] = pd.Series(np.nan, index=merged.index, dtype=upd[col].dtype)
            merged.loc[upd.index[known], col] = upd.loc[known, col]
        new = upd[~known].reindex(columns=merged.columns)
        frame = pd.concat([merged, new]).rename_axis("item_id").reset_index()
        catalog = Catalog.from_frame(frame)
        n_new = len(catalog.items) - len(old)
        h = ctx.history
        history = History(h.users, catalog.items, h.indptr, h.item, h.ts, h.event, h.value)
        collab = copy.deepcopy(ctx.collab)
        if n_new:
            zeros = np.zeros((n_new, collab.item_factors_.shape[1]), collab.item_factors_.dtype)
            collab.item_factors_ = np.vstack([collab.item_factors_, zeros])
            collab.set_norms()
            if collab.index_ is not None:
                collab.build_index(self.config.collaborative)
        seen = ctx.seen
        if seen is not None:
            seen = sp.csr_matrix(
                (seen.data, seen.indices, seen.indptr), shape=(seen.shape[0], len(catalog.items))
            )
        shop = None
        if ctx.shop is not None:
            shop = dataclasses.replace(
                ctx.shop, n_items=len(catalog.items), cooc_table=None, _cache={}
            )
        cooc = None
        if ctx.cooc is not None:  # new items have no neighbours yet
            c = ctx.cooc
            cooc = Cooccurrence(
                np.concatenate([c.indptr, np.full(n_new, c.indptr[-1])]), c.indices, c.counts
            )
        new_ctx = FeatureContext(history, catalog, collab, cooc=cooc, shop=shop, seen=seen)
        return dataclasses.replace(self, ctx=new_ctx)

    def without_user(self, key: str) -> tuple[FittedModel, dict[str, int]]:
        """A new model with user ``key`` erased: history and user factor removed, the factors
        of the items they touched re-solved (ALS), item statistics recomputed. This model is
        left as it was, so requests in flight finish on a consistent state."""
        ctx = self.ctx
        h = ctx.history
        u = h.users.get(key)
        removed = {"events": 0, "user_factors": 0, "items_resolved": 0}
        if u < 0:
            if ctx.shop is None or ctx.shop.users.get(key) < 0:
                return self, removed
            # known only to the shop-wide numbers (every event of theirs was minimized away)
            kept = dataclasses.replace(
                ctx, shop=ctx.shop.without(key), _trend_cache={}, _rank_cache={}
            )
            return dataclasses.replace(self, ctx=kept), removed
        span = h.span(u)
        touched = np.unique(h.item[span])
        keep_users = np.flatnonzero(np.arange(len(h.users)) != u)
        keep = np.ones(len(h.item), dtype=bool)
        keep[span] = False
        sizes = np.diff(h.indptr)[keep_users]
        indptr = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
        history = History(
            Vocabulary(h.users.ids[keep_users]), h.items, indptr,
            h.item[keep], h.ts[keep], h.event[keep], h.value[keep],
        )  # fmt: skip
        collab = copy.deepcopy(ctx.collab)
        collab.drop_users(keep_users)
        collab.resolve_items(touched, history.matrix().T.tocsr()[touched])
        seen = None
        if ctx.seen is not None:
            seen = ctx.seen[keep_users]
        shop = ctx.shop.without(key) if ctx.shop is not None else None
        new_ctx = FeatureContext(history, ctx.catalog, collab, shop=shop, seen=seen)
        removed.update(events=int((~keep).sum()), user_factors=1, items_resolved=len(touched))
        return dataclasses.replace(self, ctx=new_ctx), removed
