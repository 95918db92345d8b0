"""What the pipeline asks before and after a block, when accountability is switched on.

Before scoring, each query's exclusions grow by the customer's "not interested" feedback and by
the overrides file's blocks (everyone's and their segments'), so the items stay out on every
path: page view, e-mail batch, evaluation, with or without re-ranking. Re-ranking runs the
overrides stage (blocks and brand caps) last. After the reasons are rendered, editorial pins
take their places with their own "Staff pick" reason. :func:`attach` switches this on for a
:class:`~recsys.recommender.Recommender`.
"""

from __future__ import annotations

import dataclasses
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from recsys.audit.feedback import FeedbackStore
from recsys.audit.trail import AuditSink
from recsys.rerank.overrides import Overrides, OverridesFile, category_items
from recsys.types import Query, Reason, Recommendation, Recommendations, Stage

if TYPE_CHECKING:
    from recsys.model.fitted import FittedModel
    from recsys.rerank.stages import RerankConfig


@dataclass
class Accountability:
    """Feedback and overrides for one pipeline (either may be None)."""

    feedback: FeedbackStore | None = None
    overrides: OverridesFile | None = None

    def __post_init__(self) -> None:
        self._blocked: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()

    def _always_blocked(self, model: FittedModel) -> np.ndarray:
        if self.overrides is None:
            return np.empty(0, dtype=np.int64)
        got = self._blocked.get(model)
        if got is None:
            got = self.overrides.stage.blocked(model.ctx)
            self._blocked[model] = got
        return got

    def before(
        self, model: FittedModel, queries: Sequence[Query], key_of: Callable[[str], str]
    ) -> tuple[list[Query], list[dict[str, Any]]]:
        """The queries with their extra exclusions, and per query what was applied."""
        ctx = model.ctx
        ids = ctx.catalog.items.ids
        keys = [key_of(q.user_id) for q in queries]
        fb = self.feedback.blocked(keys) if self.feedback is not None else {}
        always = self._always_blocked(model)
        ov = self.overrides
        out, notes = [], []
        for q, key in zip(queries, keys, strict=True):
            note: dict[str, Any] = {}
            extra: list[np.ndarray] = [always]
            if key in fb:
                items, cats = fb[key]
                known = ctx.catalog.items.index(sorted(items))
                extra.append(known[known >= 0])
                extra += [category_items(ctx, c) for c in sorted(cats)]
                note["feedback"] = {"items": sorted(items), "categories": sorted(cats)}
            if ov is not None:
                mine = [c for c, s in ov.segment_blocks if s in set(ov.segments_of(key))]
                extra += [category_items(ctx, c) for c in mine]
                note["overrides"] = {
                    "version": ov.version,
                    "segments": ov.segments_of(key),
                    "blocked_items": list(ov.stage.block_items),
                    "blocked_categories": [*ov.stage.block_categories, *mine],
                    "caps": {c.brand: c.max_share for c in ov.stage.caps},
                }
            more = np.unique(np.concatenate(extra)) if extra else np.empty(0, dtype=np.int64)
            if len(more):
                have = set(q.exclude)
                add = tuple(x for x in ids[more].tolist() if x not in have)
                q = dataclasses.replace(q, exclude=(*q.exclude, *add))
            out.append(q)
            notes.append(note)
        return out, notes

    def rerank_config(self, cfg: RerankConfig) -> RerankConfig:
        """``cfg`` with the overrides stage last (when re-ranking is on)."""
        if self.overrides is None or not cfg.enabled:
            return cfg
        if any(isinstance(s, Overrides) for s in cfg.stages):
            return cfg
        return cfg.model_copy(update={"stages": [*cfg.stages, self.overrides.stage]})

    def after(
        self,
        model: FittedModel,
        keys: Sequence[str],
        queries: Sequence[Query],
        lists: Sequence[Recommendations],
        notes: Sequence[dict[str, Any]],
    ) -> list[Recommendations]:
        """Editorial pins in their places (an excluded, seen or out-of-stock item is not
        pinned); the list keeps its length ``k``."""
        if self.overrides is None or not self.overrides.pins:
            return list(lists)
        ctx = model.ctx
        h = ctx.history
        out = []
        for key, q, recs, note in zip(keys, queries, lists, notes, strict=True):
            u = h.users.get(key)
            seen = set(h.items.ids[h.item[h.span(u)]].tolist()) if u >= 0 else set()
            banned = set(q.exclude) | seen
            items = list(recs.items)
            pinned = []
            for pin in self.overrides.pins:
                i = ctx.catalog.items.get(pin.item)
                if i < 0 or pin.item in banned or not ctx.catalog.in_stock[i]:
                    continue
                old = next((r for r in items if r.item_id == pin.item), None)
                if old is not None:
                    items.remove(old)
                pos = min(pin.position, len(items) + 1) - 1
                score = (
                    items[pos].score if pos < len(items) else (items[-1].score if items else 0.0)
                )
                reason = Reason(text=pin.text, stage=Stage.EDITORIAL)
                items.insert(pos, Recommendation(
                    pin.item, float(score), pos + 1, reason, (), model.titles.get(pin.item, ""),
                ))  # fmt: skip
                pinned.append(pin.item)
            items = [dataclasses.replace(r, rank=n + 1) for n, r in enumerate(items[: q.k])]
            if pinned:
                note.setdefault("overrides", {})["pinned"] = pinned
            out.append(dataclasses.replace(recs, items=tuple(items)))
        return out


def attach(
    rec: Any,
    *,
    sink: AuditSink | None = None,
    feedback: FeedbackStore | None = None,
    overrides: OverridesFile | None = None,
) -> Any:
    """Switch the audit trail, feedback and overrides on for ``rec``'s pipeline (a
    :class:`~recsys.recommender.Recommender`); they carry over to the new pipeline that
    ``Recommender.use`` builds (``forget``, a reload). ``attach(rec)`` switches all off. Returns
    ``rec``."""
    p = rec.pipeline
    p.sink = sink
    p.hooks = Accountability(feedback, overrides) if (feedback or overrides) else None
    return rec
