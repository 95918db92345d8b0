"""The pipeline: minimized model state + a block of queries -> explained, re-ranked lists.

Every path runs through :meth:`Pipeline.run`: a page view is a block of one, an e-mail batch or
an evaluation run a stream of blocks. Per block: consent and history decide who is personalized;
one matrix product scores every item for every user; candidate sources propose items; the scorer
computes named features and exact attributions for every candidate at once; each list is
re-ranked; reasons are rendered last, for the items a customer sees. A block of users returns
exactly what one call per user returns.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from recsys.candidates.sources import block_candidates, trending_list
from recsys.errors import ConfigError
from recsys.explain.explainer import WHY, Explainer
from recsys.features.context import UserBlock, UserState
from recsys.features.fresh import FreshEvents
from recsys.features.history import EVENT_CODE
from recsys.features.lazy import build_cached
from recsys.model.fitted import FittedModel
from recsys.pipeline.heap import FREEZE_FROM, frozen_heap
from recsys.pipeline.threads import blas_threads
from recsys.privacy.consent import ConsentStore
from recsys.privacy.pseudonym import Pseudonymizer
from recsys.ranking.scorer import Scorer
from recsys.rerank.stages import RerankConfig, RerankInput, rerank_many
from recsys.rules import reasons as rule_reasons
from recsys.rules.apply import RuleEngine, popular
from recsys.types import Attributions, Event, ItemList, Query, Recommendation, Recommendations

if TYPE_CHECKING:  # accountability hooks (recsys.audit), never imported from here
    from recsys.audit.hooks import Accountability
    from recsys.audit.trail import AuditSink

log = logging.getLogger("recsys.pipeline")
WARM_VISITOR = "recsys-warm-up"
"""The anonymous visitor of :meth:`Pipeline.warm` (its lists are resolved as nobody's, whatever
customer may have this id)."""
WARM_EVENTS = 3

Reranker = Callable[[UserState, ItemList, Query], ItemList]
"""A per-call re-ranking override (e.g. a batch's exposure controller); one with a ``many``
method of the same arguments in lists gets the whole block, in order."""


@dataclass(frozen=True)
class Resolved:
    query: Query
    u: int
    why: str | None
    """Why the list is not personalized (``None``: it is)."""


class Pipeline:
    """Candidates -> features and scores -> re-ranking -> reasons, for blocks of queries.

    Bound to one :class:`FittedModel` for its whole life: swapping models means building a new
    pipeline, so a request never mixes two states.
    """

    def __init__(
        self,
        model: FittedModel,
        consent: ConsentStore | None,
        *,
        pseudonymizer: Pseudonymizer | None = None,
        block_size: int = 128,
        blas: int | None = 1,
        sink: AuditSink | None = None,
        hooks: Accountability | None = None,
    ) -> None:
        self.model = model
        self.consent = consent
        self.pseudonymizer = pseudonymizer
        self.block_size = block_size
        self.blas = blas
        self.sink = sink
        """Receives every served list, once per block (:mod:`recsys.audit.trail`)."""
        self.hooks = hooks
        """Feedback and overrides (:mod:`recsys.audit.hooks`)."""
        self.check_rerank(model.config.rerank)
        self.scorer = Scorer(model.features, model.ranker)
        self.explainer = Explainer(
            model.features, model.sensitivity, model.titles, model.policy,
            model.config.reasons.max_clauses, model.config.reasons.rules,
        )  # fmt: skip
        self.rerank_input = RerankInput(ctx=model.ctx, groups=model.groups)
        self.rules = RuleEngine(model.config.rules, model.ctx.catalog)
        """Filters, short lists and promotions (:mod:`recsys.rules`)."""

    def check_rerank(self, cfg: RerankConfig) -> None:
        """Unknown item groups are errors, never a silently disabled fairness stage."""
        RuleEngine.promotions(cfg)  # promotions before fairness, never after
        for name in cfg.group_names():
            if name not in self.model.policy.item_groups:
                raise ConfigError(
                    f"re-ranking names item group {name!r}, which the policy does not define; "
                    f"defined: {sorted(self.model.policy.item_groups)}"
                )

    def key_of(self, user_id: str) -> str:
        return self.pseudonymizer(str(user_id)) if self.pseudonymizer else str(user_id)

    def _rerank_config(self, q: Query) -> RerankConfig:
        base = self.model.config.rerank
        if q.rerank is None or q.rerank is True:
            return base
        if q.rerank is False:
            return base.model_copy(update={"enabled": False})
        self.check_rerank(q.rerank)
        return q.rerank

    # --- the one entry point ------------------------------------------------------------------
    def run(
        self, queries: Sequence[Query], *, reranker: Reranker | None = None
    ) -> list[Recommendations]:
        """Explained lists for ``queries``, in order; blocks of users are scored together. A run
        of many queries keeps the collector off the heap that existed before it (:mod:`.heap`)."""
        out: list[Recommendations] = []
        quiet = frozen_heap() if len(queries) >= FREEZE_FROM else contextlib.nullcontext()
        with blas_threads(self.blas), quiet:
            for start in range(0, len(queries), self.block_size):
                out.extend(self._block(queries[start : start + self.block_size], reranker))
        return out

    def warm(self) -> None:
        """Build everything requests read lazily (shop-wide tables, indexes, the default day's
        counts) before the first request is served, so a swapped-in model answers its first
        request as fast as the others. One list for an anonymous visitor whose recent events
        are the shop's most popular items runs the whole path: it is looked up as no customer
        (no consent record, no history), shown to no one and recorded nowhere. Never raises: a
        failed warm-up leaves the tables to be built on first use, and says so in the log."""
        ctx = self.model.ctx
        try:
            build_cached(self.model)
            ctx.warm()
            items = popular(ctx, ctx.catalog.in_stock)[:WARM_EVENTS]
            ts = self.model.cutoff
            ids = ctx.catalog.items.ids[items].tolist()
            events = tuple(Event(str(i), "view", ts) for i in ids)
            with blas_threads(self.blas):
                q = Query(WARM_VISITOR, events=events)
                self._block([q], None, warm_up=True)  # a request
                self._block([q, q], None, warm_up=True)  # a block (the batch's arrays)
                st = ctx.user_state(-1, self.as_of(q), fresh=self.fresh(q))
                self.explainer.warm(ctx, st, items)
                self._not_personalized(Query(WARM_VISITOR), "unknown", reader=False)
        except Exception:  # an optimisation only: never the reason a model is not swapped in
            log.warning("warming the model failed; requests build its tables", exc_info=True)

    def resolve(self, queries: Sequence[Query]) -> list[Resolved]:
        """Who gets a personalized list, and why the others do not."""
        keys = [self.key_of(q.user_id) for q in queries]
        consent = self.consent.get_many(keys) if self.consent is not None else {}
        users = self.model.ctx.history.users
        out = []
        for q, key in zip(queries, keys, strict=True):
            c = consent.get(key)
            u = users.get(key)
            # a visitor we do not know yet, with recent events: personalized from those alone
            # (a consent record that declines always wins)
            visitor = u < 0 and self.fresh(q) is not None
            if not q.personalized:
                why = "no_profiling"
            elif c is None and not visitor:
                why = "unknown"  # a visitor we do not know (yet, or any more: erased)
            elif c is not None and not c.personalization:
                why = "no_consent"
            elif u < 0 and not visitor:
                why = "no_history"
            else:
                why = None
            out.append(Resolved(q, u, why))
        return out

    def as_of(self, q: Query) -> int:
        """The request time: given, else the model's cut-off or the newest recent event."""
        if q.as_of is not None:
            return int(q.as_of)
        return max([self.model.cutoff, *(e.ts for e in q.events)])

    def fresh(self, q: Query) -> FreshEvents | None:
        """The query's recent events on items the model knows (others cannot be folded in)."""
        if not q.events:
            return None
        items = self.model.ctx.catalog.items.index([e.item_id for e in q.events])
        keep = items >= 0
        if not keep.any():
            return None
        ts = np.array([e.ts for e in q.events], dtype=np.int64)
        ev = np.array([EVENT_CODE[e.event] for e in q.events], dtype=np.int8)
        return items[keep].astype(np.int64), ts[keep], ev[keep]

    def _block(
        self, queries: Sequence[Query], reranker: Reranker | None, *, warm_up: bool = False
    ) -> list[Recommendations]:
        """``warm_up``: anonymous visitors (looked up as nobody), no feedback, overrides or
        audit (:meth:`warm`)."""
        ctx = self.model.ctx
        notes: list[dict[str, Any]] = [{} for _ in queries]
        if self.hooks is not None and not warm_up:  # feedback and overrides: more exclusions
            queries, notes = self.hooks.before(self.model, queries, self.key_of)
        for q in queries:
            self.rules.check(q)  # an unknown field is an error, not an empty list
        resolved = [Resolved(q, -1, None) for q in queries] if warm_up else self.resolve(queries)
        result: list[Recommendations | None] = [None] * len(queries)
        personal = [(p, r) for p, r in enumerate(resolved) if r.why is None]
        for p, r in enumerate(resolved):
            if r.why is not None:
                result[p] = self._not_personalized(r.query, r.why)
        if personal:
            states = [
                ctx.user_state(r.u, self.as_of(r.query), fresh=self.fresh(r.query))
                for _, r in personal
            ]
            block = UserBlock.build(ctx, states)
            exclude = [ctx.catalog.items.index(list(r.query.exclude)) for _, r in personal]
            queries_p = [r.query for _, r in personal]
            allowed = self.rules.allowed(ctx, states, queries_p, [st.as_of for st in states])
            cfgs = [self._rerank_config(q) for q in queries_p]
            promoted = [self.rules.promoted(c) for c in cfgs]
            cands = block_candidates(
                ctx, block, self.model.config.candidates, exclude, allowed, promoted
            )
            cands, filled = self.rules.fill(
                ctx, states, cands, allowed, exclude, [q.k for q in queries_p]
            )
            block.fill(ctx, cands)
            scored = [
                self.rules.within_depth(lst, pr, c.depth, q.k)
                for lst, pr, c, q in zip(
                    self.scorer(ctx, block, cands), promoted, cfgs, queries_p, strict=True
                )
            ]
            if reranker is not None:
                many = getattr(reranker, "many", None)  # the whole block at once, if it can
                finals = (
                    many(states, scored, queries_p)
                    if many is not None
                    else [
                        reranker(st, lst, q)
                        for st, lst, q in zip(states, scored, queries_p, strict=True)
                    ]
                )
            else:
                finals = self._rerank(queries_p, states, scored)
            explained = self.explainer.many(ctx, states, finals)
            for (p, r), st, lst, fill in zip(personal, states, explained, filled, strict=True):
                lst = rule_reasons.finish(self.explainer, ctx, st, lst, fill)
                result[p] = self._recommendations(r.query, lst, True)
        out = [r for r in result if r is not None]
        if warm_up or (self.hooks is None and self.sink is None):
            return out
        return self._accountable(queries, out, notes)

    def _accountable(
        self, queries: Sequence[Query], lists: list[Recommendations], notes: list[dict[str, Any]]
    ) -> list[Recommendations]:
        """Editorial pins in place, then one audit record per list, one write per block."""
        keys = [self.key_of(q.user_id) for q in queries]
        if self.hooks is not None:
            lists = self.hooks.after(self.model, keys, queries, lists, notes)
        if self.sink is not None:
            self.sink.record(self.model, keys, queries, lists, notes)
        return lists

    def _rerank(
        self, queries: Sequence[Query], states: Sequence[UserState], lists: Sequence[ItemList]
    ) -> list[ItemList]:
        """Re-rank a block: users asking for the same ``k`` and configuration run together."""
        groups: dict[tuple[int, str], list[int]] = {}
        configs: dict[tuple[int, str], RerankConfig] = {}
        for n, q in enumerate(queries):
            cfg = self._rerank_config(q)
            if self.hooks is not None:
                cfg = self.hooks.rerank_config(cfg)  # the overrides stage runs last
            # the model's own configuration (most queries) by identity: no serializing
            key = (q.k, "" if cfg is self.model.config.rerank else cfg.model_dump_json())
            groups.setdefault(key, []).append(n)
            configs[key] = cfg
        out: list[ItemList | None] = [None] * len(queries)
        for key, members in groups.items():
            done = rerank_many(
                self.rerank_input, [states[n] for n in members], [lists[n] for n in members],
                key[0], configs[key],
            )  # fmt: skip
            for n, lst in zip(members, done, strict=True):
                out[n] = lst
        return [lst for lst in out if lst is not None]

    def _not_personalized(self, q: Query, why: str, *, reader: bool = True) -> Recommendations:
        """``reader=False``: counts leave no reader out (the warm-up's list, for nobody)."""
        ctx = self.model.ctx
        ex = ctx.catalog.items.index(list(q.exclude))
        as_of = self.as_of(q)
        allowed = self.rules.allowed(ctx, [None], [q], [as_of])  # no history is read
        ok = ctx.catalog.in_stock.copy() if allowed is None else allowed[0] & ctx.catalog.in_stock
        ok[ex[ex >= 0]] = False
        items, counts, _ = trending_list(ctx, as_of, q.k, np.flatnonzero(~ok))
        filled: set[int] = set()
        if len(items) < q.k and self.model.config.rules.fill_short:
            more = [i for i in popular(ctx, ok).tolist() if i not in set(items)]
            filled = set(more[: q.k - len(items)])
            items = np.concatenate([items, np.asarray(more[: q.k - len(items)], dtype=np.int64)])
            counts = np.concatenate([counts, np.zeros(len(filled))])
        lst = ItemList.from_indices(items, ctx.catalog.items.ids, score=counts.astype(float))
        lst, promoted = self.rules.place_plain(self._rerank_config(q), lst, ok, q.k)
        key = self.key_of(q.user_id) if reader and why != "no_consent" else None
        reasons = self.explainer.not_personalized(ctx, lst, as_of, why, key)
        reasons = rule_reasons.finish_plain(
            self.explainer, ctx, reasons, promoted, filled, WHY[why], key
        )
        return self._recommendations(q, reasons, False)

    def _recommendations(self, q: Query, lst: ItemList, personalized: bool) -> Recommendations:
        names = self.model.feature_names
        scores = lst.column("score").tolist()
        reasons = lst.column("reason")
        phi = lst.column("attributions").tolist() if personalized else None
        titles = self.model.titles
        recs = tuple(
            Recommendation(
                item_id=item_id,
                score=scores[r],
                rank=r + 1,
                reason=reasons[r],
                attributions=Attributions(names, tuple(phi[r])) if phi is not None else (),
                title=titles.get(item_id, ""),
            )
            for r, item_id in enumerate(map(str, lst.ids.tolist()))
        )
        fresh = self.fresh(q)  # what it leaves out are the events on items the model does not know
        unknown = len(q.events) - (len(fresh[0]) if fresh is not None else 0)
        return Recommendations(
            q.user_id, recs, personalized=personalized, request_id=q.request_id,
            shortfall=max(0, q.k - len(recs)), ignored_events=unknown,
        )  # fmt: skip

    def counterfactual(self, q: Query, item_id: str, drop: Iterable[str]) -> tuple[float, float]:
        """The item's score with the user's vector re-solved from their full history, and with
        ``drop`` removed from it (ALS only): does that evidence matter?"""
        full = self.explain_item(q, item_id, drop=[]).score
        return full, self.explain_item(q, item_id, drop=list(drop)).score

    # --- one item, for explanations and audits ---------------------------------------------------
    def explain_item(self, q: Query, item_id: str, *, drop: Sequence[str] = ()) -> Recommendation:
        """Score, attributions and reason of any item for a user (recommended or not);
        ``drop`` removes items from the user's history first (counterfactual checks)."""
        ctx = self.model.ctx
        i = ctx.catalog.items.get(str(item_id))
        if i < 0:
            raise KeyError(f"unknown item {item_id!r}")
        u = ctx.history.users.get(self.key_of(q.user_id))
        d = ctx.catalog.items.index(list(drop)) if drop else None
        st = ctx.user_state(u, self.as_of(q), drop=d, fresh=self.fresh(q))
        with blas_threads(self.blas):
            block = UserBlock.build(ctx, [st])
            block.fill(ctx, [np.array([i])])
            lst = self.scorer(ctx, block, [np.array([i])])[0]
        lst = lst.with_column("stage", np.array(["ranker"], dtype=object))
        rec = self._recommendations(q, self.explainer(ctx, st, lst), True)[0]
        return rec
