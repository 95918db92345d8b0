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

from recsys.config import RecommenderConfig
from recsys.explain.reasons import Sensitivity, sensitive_items
from recsys.features.context import FeatureContext
from recsys.features.history import History, Vocabulary
from recsys.features.registry import REGISTRY, Feature
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
            kept = dataclasses.replace(ctx, shop=ctx.shop.without(key), _trend_cache={})
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
