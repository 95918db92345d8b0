"""The explanation stage: a reason per item of a final list, after re-ranking.

Reasons are rendered last, for the ``k`` items a customer sees, from the attributions the scorer
computed and the evidence the features give; an item a re-ranking stage brought in says so.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import cached_property, partial

import numpy as np

from recsys.explain.reasons import (
    BlockEvidence,
    EvidenceTable,
    GroupOrder,
    Sensitivity,
    build_reason,
)
from recsys.explain.rules import ReasonRules
from recsys.explain.templates import MESSAGES, render
from recsys.features.context import FeatureContext, UserState
from recsys.features.registry import (
    Feature,
    category_evidence,
    customers_fact,
    shared_evidence,
    trending_fact,
)
from recsys.privacy.policy import Policy
from recsys.types import Evidence, Fact, ItemList, Reason, Stage

WHY = {
    "no_consent": MESSAGES["why_no_consent"],
    "no_history": MESSAGES["why_no_history"],
    "unknown": MESSAGES["why_unknown"],
    "no_profiling": MESSAGES["why_no_profiling"],
}


_STAGES: dict[str, Stage] = {str(s): s for s in Stage}
"""Stage names (as the re-ranker's ``stage`` column holds them) to stages, without an enum call."""
_NO_SHARE: frozenset[str] = frozenset({Fact.CATEGORY_SHARE})
_NOTHING: frozenset[str] = frozenset()


def _restaged(
    reason: Reason,
    stage: Stage,
    text: str | None = None,
    evidence: tuple[Evidence, ...] | None = None,
) -> Reason:
    """``dataclasses.replace(reason, stage=..., ...)`` without its field-by-field introspection
    (a re-ranked item's reason is rebuilt this way in every list)."""
    return Reason(
        text=reason.text if text is None else text,
        features=reason.features,
        attributions=reason.attributions,
        evidence=reason.evidence if evidence is None else evidence,
        stage=stage,
        refused=reason.refused,
    )


@dataclass(frozen=True)
class Explainer:
    features: tuple[Feature, ...]
    sensitivity: Sensitivity
    titles: dict[str, str]
    policy: Policy
    max_clauses: int = 2
    rules: ReasonRules = field(default_factory=ReasonRules)
    _title_keys: dict[str, str] = field(default_factory=dict, repr=False, compare=False)
    """Memo of each cited item's title as reasons compare them (see :func:`build_reason`)."""
    _texts: dict[Evidence, str | None] = field(default_factory=dict, repr=False, compare=False)
    """Memo of each fact's sentence (see :func:`build_reason`)."""

    @cached_property
    def _groups(self) -> GroupOrder:
        return GroupOrder.of(self.features)

    def __call__(self, ctx: FeatureContext, st: UserState, items: ItemList) -> ItemList:
        """Adds a ``reason`` column; reads ``attributions`` and ``stage``."""
        order = self._groups.rank(items.column("attributions"))
        return self._explain(ctx, st, items, EvidenceTable(ctx, st, items.items), order)

    def many(
        self, ctx: FeatureContext, states: Sequence[UserState], lists: Sequence[ItemList]
    ) -> list[ItemList]:
        """:meth:`__call__` for a block of users' lists: evidence that array look-ups give, and
        the order the templates speak in, are computed for the whole block at once (the same
        facts as list by list)."""
        block = BlockEvidence(ctx, states, [lst.items for lst in lists])
        phi = [lst.column("attributions") for lst in lists if len(lst)]
        order = self._groups.rank(np.concatenate(phi)) if phi else []
        out, at = [], 0
        for p, (st, lst) in enumerate(zip(states, lists, strict=True)):
            table = EvidenceTable(ctx, st, lst.items, block, p)
            out.append(self._explain(ctx, st, lst, table, order[at : at + len(lst)]))
            at += len(lst)
        return out

    def warm(self, ctx: FeatureContext, st: UserState, items: np.ndarray) -> None:
        """Compute every feature's evidence for ``items``, as one list and as a block of two:
        what only a reason that names a feature computes (the compiled kernels load on their
        first call, several ms each) is then ready before the first request and the first
        batch (:meth:`Pipeline.warm`). A kernel has a compiled version per kind of array it is
        given: one list's items are read-only, a block's laid end to end are not."""
        items = np.array(items, dtype=np.int64)
        items.setflags(write=False)
        for lists in ([items], [items, items]):
            block = BlockEvidence(ctx, [st] * len(lists), lists)
            for f in self.features:
                if f.evidence_block is not None:
                    block.column(f, 0)
                elif f.evidence_many is not None:
                    f.evidence_many(ctx, st, items)

    def _explain(
        self,
        ctx: FeatureContext,
        st: UserState,
        items: ItemList,
        table: EvidenceTable,
        order: list[list[int]],
    ) -> ItemList:
        phi = items.column("attributions")
        # rows as plain floats, read once for the list (the values build_reason reads)
        rows = phi.tolist() if phi.dtype == np.float64 and phi.ndim == 2 else list(phi)
        n = len(items)
        stages = items.column("stage").tolist() if "stage" in items else [Stage.RANKER] * n
        groups = items.column("group").tolist() if "group" in items else [None] * n
        reasons = np.empty(n, dtype=object)
        speak = self._groups
        for r, (i, stage) in enumerate(zip(items.items.tolist(), stages, strict=True)):
            reasons[r] = self.reason(
                ctx, st, i, rows[r], _STAGES.get(stage) or Stage(stage), groups[r],
                partial(table.at, r), (speak, order[r]),
            )  # fmt: skip
        return items.with_column("reason", reasons)

    def reason(
        self,
        ctx: FeatureContext,
        st: UserState,
        item: int,
        phi: np.ndarray | Sequence[float],
        stage: Stage = Stage.RANKER,
        group: str | None = None,
        evidence_of: Callable[[Feature], tuple[Evidence, ...]] | None = None,
        speaking: tuple[GroupOrder, list[int]] | None = None,
    ) -> Reason:
        if speaking is None:  # one item alone (a rule's filler): this explainer's templates
            speaking = self._groups, self._groups.rank(np.asarray(phi)[None, :])[0]
        reason = build_reason(
            ctx, st, item, self.features, phi, self.sensitivity, self.titles,
            max_clauses=self.max_clauses,
            skip_facts=_NO_SHARE if stage == Stage.CALIBRATION else _NOTHING,
            evidence_of=evidence_of, rules=self.rules, title_keys=self._title_keys,
            speaking=speaking, texts=self._texts,
        )  # fmt: skip
        if stage == Stage.RANKER:
            return reason
        return self._moved(ctx, st, item, reason, stage, group)

    def _moved(
        self,
        ctx: FeatureContext,
        st: UserState,
        item: int,
        reason: Reason,
        stage: Stage,
        group: str | None,
    ) -> Reason:
        """Say plainly that a re-ranking stage brought the item in; keep its own evidence."""
        own = "" if reason.text == MESSAGES["fallback"] else ". " + reason.text
        if stage == Stage.CALIBRATION:
            ev = next(
                (
                    e
                    for e in category_evidence(ctx, st, item)
                    if not self.sensitivity.reveals(e, ctx)
                ),
                None,
            )
            if ev is None:
                return _restaged(reason, stage)
            head = MESSAGES["calibration"].format(
                category=ev.category, count=ev.count, total=ev.total
            )
        elif stage == Stage.DIVERSITY:
            # "different" only in a category outside the customer's largest ones
            sensitive = (  # the memoized check when it asks the same policy
                self.sensitivity.category
                if self.sensitivity.policy is self.policy
                else self.policy.is_sensitive_category
            )
            cats = [
                c
                for c in ctx.catalog.categories_of(item)
                if not sensitive(c) and not self.rules.in_top_categories(ctx, st, c)
            ]
            ev = shared_evidence(Fact.DIVERSITY, category=cats[0] if cats else None)
            head = render(ev, self.titles) or MESSAGES["diversity_plain"]
        else:
            rule = self.policy.item_groups.get(group or "")
            ev = shared_evidence(Fact.ITEM_GROUP, category=group)
            head = rule.label if rule and rule.label else MESSAGES["item_group"]
        return _restaged(reason, stage, text=head + own, evidence=(*reason.evidence, ev))

    def not_personalized(
        self, ctx: FeatureContext, items: ItemList, as_of: int, why: str, key: str | None = None
    ) -> ItemList:
        """Reasons for the shop's trending list: what was counted, and why it is not personal.

        Counts leave the reader out (``key``: their id in the model, when known); an item chosen
        by fewer customers than "popular right now" needs is described by its all-time count."""
        reasons = np.empty(len(items), dtype=object)
        for r, i in enumerate(items.items.tolist()):
            facts = [
                e for e in trending_fact(ctx, key, as_of, i) if self.rules.allows(e, ctx, None)
            ]
            facts = facts or list(customers_fact(ctx, key, i))
            text = render(facts[0], self.titles) if facts else None
            text = MESSAGES["not_personalized"].format(
                text=text or MESSAGES["shop_pick"], why=WHY[why]
            )
            reasons[r] = Reason(text=text, evidence=tuple(facts[:1]), stage=Stage.POPULARITY)
        return items.with_column("reason", reasons)
