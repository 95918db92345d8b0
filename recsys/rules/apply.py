"""Rules on the request path: which items a block of users may get, short lists, promotions.

The pipeline asks :class:`RuleEngine` for a users x items mask before candidates are drawn (so
every source, re-ranker and batch controller only ever sees items that pass), for popular items
that pass the same rules when a list would come out short, and for the promoted items that must
be candidates (and within the re-ranking depth) for the promotions stage to place them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from recsys.features.context import FeatureContext, UserState
from recsys.features.history import Catalog
from recsys.rerank.promotions import PROMOTED, Promotions, check_order
from recsys.rules.config import RulesConfig
from recsys.rules.filters import BoundFilter, parse
from recsys.types import ItemList, Query


class RuleEngine:
    """The configured rules of one model's catalogue, plus each query's own filters."""

    def __init__(self, cfg: RulesConfig, catalog: Catalog) -> None:
        self.cfg = cfg
        self.catalog = catalog
        self._bound: dict[str, BoundFilter] = {}
        self.include = [self.bind(t) for t in cfg.include]
        self.exclude = [self.bind(t) for t in cfg.exclude]

    def bind(self, text: str) -> BoundFilter:
        """Parse and check ``text`` against the catalogue (a :class:`FilterError` otherwise)."""
        hit = self._bound.get(text)
        if hit is None:
            hit = self._bound[text] = parse(text).bind(self.catalog)
        return hit

    def check(self, q: Query) -> None:
        for t in (*q.filters, *q.exclude_filters):
            self.bind(t)

    def active(self, queries: Sequence[Query]) -> bool:
        return bool(self.include or self.exclude) or any(
            q.filters or q.exclude_filters for q in queries
        )

    def allowed(
        self,
        ctx: FeatureContext,
        states: Sequence[UserState | None],
        queries: Sequence[Query],
        as_of: Sequence[int],
    ) -> np.ndarray | None:
        """Users x items: True where every rule lets the item through (``None``: no rules).
        A ``None`` state reads no history (lists that are not personalized)."""
        if not self.active(queries):
            return None
        n = len(self.catalog.items)
        out = np.ones((len(queries), n), dtype=bool)
        for f in self.include:
            out &= f.mask(ctx, states, as_of)
        for f in self.exclude:
            out &= ~f.mask(ctx, states, as_of)
        for p, q in enumerate(queries):
            one = ([states[p]], [as_of[p]])
            for t in q.filters:
                out[p] &= self.bind(t).mask(ctx, *one)[0]
            for t in q.exclude_filters:
                out[p] &= ~self.bind(t).mask(ctx, *one)[0]
        return out

    # --- short lists ----------------------------------------------------------------------
    def fill(
        self,
        ctx: FeatureContext,
        states: Sequence[UserState],
        cands: list[np.ndarray],
        allowed: np.ndarray | None,
        exclude: Sequence[np.ndarray],
        ks: Sequence[int],
    ) -> tuple[list[np.ndarray], list[set[int]]]:
        """Candidates topped up to ``k`` with the shop's most chosen items that pass the same
        rules (in stock, not excluded, not seen); and, per user, the items added."""
        added: list[set[int]] = [set() for _ in cands]
        if not self.cfg.fill_short:
            return cands, added
        out = list(cands)
        for p, (st, c, k) in enumerate(zip(states, cands, ks, strict=True)):
            if len(c) >= k:
                continue
            ok = (
                ctx.catalog.in_stock.copy()
                if allowed is None
                else allowed[p] & ctx.catalog.in_stock
            )
            ex = exclude[p]
            ok[ex[ex >= 0]] = False
            ok[ctx.catalog.same_product(np.union1d(st.items, st.seen))] = False
            ok[c] = False
            more = popular(ctx, ok)[: k - len(c)]
            if len(more):
                out[p] = np.unique(np.concatenate([c, more]))
                added[p] = set(more.tolist())
        return out, added

    # --- promotions -----------------------------------------------------------------------
    @staticmethod
    def promotions(cfg: Any) -> list[Promotions]:
        """The promotions stages of a re-ranking configuration that is switched on."""
        if cfg is None or not getattr(cfg, "enabled", False):
            return []
        check_order(cfg.stages)
        return [s for s in cfg.stages if isinstance(s, Promotions)]

    def promoted(self, cfg: Any) -> np.ndarray:
        """Catalogue indices of every item the configuration promotes."""
        parts = [s.promoted(self.catalog.items) for s in self.promotions(cfg)]
        return np.unique(np.concatenate(parts)) if parts else np.empty(0, dtype=np.int64)

    @staticmethod
    def within_depth(lst: ItemList, promoted: np.ndarray, depth: int, k: int) -> ItemList:
        """Move promoted candidates ranked below ``depth`` up to just inside it (the ranker's
        top ``k`` stays as it is), so the promotions stage can see them."""
        if not len(promoted) or len(lst) <= depth:
            return lst
        far = np.flatnonzero(np.isin(lst.items, promoted) & (np.arange(len(lst)) >= depth))
        far = far[: max(0, depth - k)]
        if not len(far):
            return lst
        cut = depth - len(far)
        rest = np.setdiff1d(np.arange(cut, len(lst)), far)
        return lst.take(np.concatenate([np.arange(cut), far, rest]))

    def place_plain(
        self, cfg: Any, lst: ItemList, allowed: np.ndarray, k: int
    ) -> tuple[ItemList, set[int]]:
        """A list that is not personalized gets promoted items only where a promotions stage
        says ``non_personalized = true``; they must pass the rules like every item."""
        placed: set[int] = set()
        for s in self.promotions(cfg):
            if not s.non_personalized:
                continue
            promo = [int(i) for i in s.promoted(self.catalog.items) if allowed[i]]
            have = set(lst.items.tolist())
            cap = s.cap(k) - sum(1 for i in have if i in set(promo))
            new = [i for i in promo if i not in have][: max(0, cap)]
            if not new:
                continue
            n_keep = max(0, min(len(lst), k - len(new)))
            items = np.concatenate([lst.items[:n_keep], np.asarray(new, dtype=np.int64)])
            score = np.concatenate([lst.column("score")[:n_keep], np.zeros(len(new))])
            lst = ItemList.from_indices(items, self.catalog.items.ids, score=score)
            placed |= set(new)
        return lst, placed


def popular(ctx: FeatureContext, ok: np.ndarray) -> np.ndarray:
    """Items where ``ok``, most customers first (ties: by id)."""
    idx = np.flatnonzero(ok)
    if not len(idx):
        return idx.astype(np.int64)
    order = np.lexsort((ctx.catalog.items.ids[idx].astype(str), -ctx.customers[idx]))
    return idx[order].astype(np.int64)


__all__ = ["PROMOTED", "RuleEngine", "popular"]
