"""Reasons from attributions: name only what raised the item's score, state only checkable facts."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from recsys.explain.rules import ReasonRules
from recsys.explain.templates import MESSAGES, render
from recsys.features.context import FeatureContext, UserState
from recsys.features.history import Catalog
from recsys.features.registry import Feature
from recsys.privacy.policy import Policy
from recsys.types import Evidence, Reason, Stage


@dataclass(frozen=True)
class Sensitivity:
    """What a reason must never name: sensitive categories and the items in them."""

    policy: Policy
    items: np.ndarray
    """Per item index: is it in a sensitive category (or named like one)?"""
    _categories: dict[str, bool] = field(default_factory=dict, repr=False, compare=False)
    _item_ids: dict[str, bool] = field(default_factory=dict, repr=False, compare=False)
    """Memo of :attr:`items` by item id, as evidence cites items."""

    def category(self, name: str) -> bool:
        """Is ``name`` a sensitive category? (Memoized: reasons ask on every item.)"""
        hit = self._categories.get(name)
        if hit is None:
            hit = self._categories[name] = self.policy.is_sensitive_category(name)
        return hit

    def reveals(self, ev: Evidence, ctx: FeatureContext) -> bool:
        if ev.category and self.category(ev.category):
            return True
        if ev.item_id is not None:
            hit = self._item_ids.get(ev.item_id)
            if hit is None:
                i = ctx.catalog.items.get(ev.item_id)
                hit = self._item_ids[ev.item_id] = bool(i >= 0 and self.items[i])
            return hit
        return False


def sensitive_items(catalog: Catalog, policy: Policy) -> Sensitivity:
    flags = np.array(
        [
            any(
                policy.is_sensitive_category(w)
                for w in [*catalog.categories_of(i), str(catalog.title[i])]
            )
            for i in range(len(catalog.items))
        ],
        dtype=bool,
    )
    return Sensitivity(policy, flags)


class BlockEvidence:
    """The evidence of a block of users' lists, feature by feature at first use: a feature with
    ``evidence_block`` answers for every list of the block in one pass of array look-ups."""

    def __init__(
        self, ctx: FeatureContext, states: Sequence[UserState], lists: Sequence[np.ndarray]
    ) -> None:
        self.ctx, self.states, self.lists = ctx, states, lists
        self._cols: dict[object, list[Sequence[tuple[Evidence, ...]]]] = {}

    def column(self, feature: Feature, p: int) -> Sequence[tuple[Evidence, ...]]:
        """Evidence of ``feature`` (which has ``evidence_block``) per item of list ``p``.
        Features that share their evidence (one template's scores) share one computation."""
        fn = feature.evidence_block
        assert fn is not None
        col = self._cols.get(fn)
        if col is None:
            col = self._cols[fn] = fn(self.ctx, self.states, self.lists)
        return col[p]


class EvidenceTable:
    """The evidence of one user's list, asked for feature by feature as reasons are written.

    A feature with ``evidence_block`` answers from the ``block`` (list ``pos`` of it) when there
    is one; a feature with ``evidence_many`` answers for every item of the list at its first use
    (one solve serves them all); the others answer per item. Either way each answer is computed
    once.
    """

    def __init__(
        self,
        ctx: FeatureContext,
        st: UserState,
        items: np.ndarray,
        block: BlockEvidence | None = None,
        pos: int = 0,
    ) -> None:
        self.ctx, self.st, self.items = ctx, st, items
        self.block, self.pos = block, pos
        self._bulk: dict[str, Sequence[tuple[Evidence, ...]]] = {}
        self._one: dict[tuple[str, int], tuple[Evidence, ...]] = {}

    def at(self, r: int, feature: Feature) -> tuple[Evidence, ...]:
        """:meth:`get`, position first (one item's evidence getter is ``partial(at, r)``)."""
        return self.get(feature, r)

    def get(self, feature: Feature, r: int) -> tuple[Evidence, ...]:
        """Evidence of ``feature`` for the item at position ``r`` of the list."""
        col = self._bulk.get(feature.name)
        if col is not None:
            return col[r]
        if self.block is not None and feature.evidence_block is not None:
            col = self._bulk[feature.name] = self.block.column(feature, self.pos)
            return col[r]
        if feature.evidence_many is not None:
            col = self._bulk[feature.name] = feature.evidence_many(self.ctx, self.st, self.items)
            return col[r]
        key = (feature.name, r)
        hit = self._one.get(key)
        if hit is None:
            hit = self._one[key] = feature.evidence(self.ctx, self.st, int(self.items[r]))
        return hit


@dataclass(frozen=True)
class GroupOrder:
    """The order in which an item's reason templates may speak: largest total positive
    attribution first (ties: the template whose first such feature comes first), computed for
    the items of a whole block at once, with the same sums :func:`build_reason` would make."""

    members: tuple[tuple[int, ...], ...]
    """Per template (in order of first appearance among the features), its features' indices."""

    @classmethod
    def of(cls, features: Sequence[Feature]) -> GroupOrder:
        groups: dict[str, list[int]] = {}
        for j, f in enumerate(features):
            groups.setdefault(f.group, []).append(j)
        return cls(tuple(tuple(m) for m in groups.values()))

    @cached_property
    def _members(self) -> np.ndarray:
        """Templates x features: each template's feature indices in order, -1 pads."""
        width = max((len(m) for m in self.members), default=0)
        out = np.full((len(self.members), width), -1, dtype=np.int64)
        for g, m in enumerate(self.members):
            out[g, : len(m)] = m
        return out

    def rank(self, phi: np.ndarray) -> list[list[int]]:
        """Per row of ``phi`` (items x features): the templates with a positive attribution,
        in speaking order (compiled: :mod:`recsys.explain.kernels`)."""
        from recsys.explain import kernels  # numba loads where reasons are first written

        phi = np.ascontiguousarray(phi, dtype=np.float64)
        if phi.ndim != 2:
            phi = phi.reshape(len(phi), 0)
        order = np.empty((len(phi), len(self.members)), dtype=np.int64)
        counts = np.empty(len(phi), dtype=np.int64)
        kernels.speaking_order(phi, self._members, order, counts)
        return [row[:c] for row, c in zip(order.tolist(), counts.tolist(), strict=True)]


def build_reason(
    ctx: FeatureContext,
    st: UserState,
    item: int,
    features: Sequence[Feature],
    attributions: np.ndarray | Sequence[float],
    sensitivity: Sensitivity,
    titles: dict[str, str],
    *,
    max_clauses: int = 2,
    skip_facts: frozenset[str] = frozenset(),
    evidence_of: Callable[[Feature], tuple[Evidence, ...]] | None = None,
    rules: ReasonRules | None = None,
    title_keys: dict[str, str] | None = None,
    speaking: tuple[GroupOrder, list[int]] | None = None,
    texts: dict[Evidence, str | None] | None = None,
) -> Reason:
    """A sentence from the item's largest positive attributions, grouped by template.

    A group speaks only through its features with a positive attribution, and only when its
    evidence supports a sentence that reveals nothing sensitive; otherwise the next group speaks.
    ``title_keys`` memoizes :func:`_title_key` across calls (the explainer passes one per model);
    ``speaking``: the templates' order for this item, computed for a block (:class:`GroupOrder`);
    ``texts`` memoizes each fact's sentence across calls (many reasons state the same facts).
    """
    # plain floats: the same values and sums as numpy's float64 scalars, far cheaper to read
    phi = attributions.tolist() if _is_f64(attributions) else attributions
    if speaking is None:
        groups = GroupOrder.of(features)
        speaking = groups, groups.rank(np.array([phi]))[0]
    members = speaking[0].members
    rules = rules or ReasonRules()
    keys = {} if title_keys is None else title_keys
    own_id = str(ctx.catalog.items.ids[item])
    own_title = _title_key_memo(keys, titles, own_id)
    clauses: list[str] = []
    named: list[int] = []
    evidence: list[Evidence] = []
    refused: list[str] = []
    # one sentence per kind of fact; an item is cited once per reason, and never one that has
    # the recommended item's own title
    used = set(skip_facts)
    cited: set[str] = set()
    for g in speaking[1]:
        idx = [j for j in members[g] if phi[j] > 0]
        if len(idx) > 1:
            idx = sorted(idx, key=lambda j: -phi[j])
        f = features[idx[0]]
        facts = evidence_of(f) if evidence_of is not None else f.evidence(ctx, st, item)
        chosen: tuple[Evidence, str] | None = None
        for ev in facts:
            if ev.fact in used or sensitivity.reveals(ev, ctx):
                continue
            if ev.item_id is not None and (
                ev.item_id in cited
                or (ev.item_id != own_id and _title_key_memo(keys, titles, ev.item_id) == own_title)
            ):
                continue  # "bought before" speaks of the item itself; nothing else may
            if not rules.allows(ev, ctx, st):
                refused.append(str(ev.fact))
                continue
            if chosen is None:  # later facts are still checked: their refusals are recorded
                text = _render_memo(texts, ev, titles)
                if text:
                    chosen = (ev, text)
        if chosen is None:
            continue
        clauses.append(chosen[1])
        evidence.append(chosen[0])
        used.add(chosen[0].fact)
        if chosen[0].item_id is not None:
            cited.add(chosen[0].item_id)
        named.extend(idx)
        if len(clauses) == max_clauses:
            break
    if not clauses:
        return Reason(text=MESSAGES["fallback"], stage=Stage.RANKER, refused=tuple(refused))
    return Reason(
        text=". ".join(clauses),
        features=tuple([features[j].name for j in named]),
        attributions=tuple([float(phi[j]) for j in named]),
        evidence=tuple(evidence),
        stage=Stage.RANKER,
        refused=tuple(refused),
    )


TEXTS_MAX = 1 << 16
"""Sentences an explainer keeps (then it starts again): a few MB at most."""


def _render_memo(texts: dict[Evidence, str | None] | None, ev: Evidence, titles) -> str | None:
    """:func:`render` through the memo ``texts`` (a sentence depends only on the fact and the
    titles, which an explainer never changes)."""
    if texts is None:
        return render(ev, titles)
    hit = texts.get(ev, texts)  # a sentence may be None: the memo itself marks a miss
    if hit is texts:
        if len(texts) >= TEXTS_MAX:
            texts.clear()
        hit = texts[ev] = render(ev, titles)
    return hit  # type: ignore[return-value]


def _is_f64(a: object) -> bool:
    return isinstance(a, np.ndarray) and a.dtype == np.float64


def _title_key_memo(keys: dict[str, str], titles: dict[str, str], item_id: str) -> str:
    hit = keys.get(item_id)
    if hit is None:
        hit = keys[item_id] = _title_key(titles, item_id)
    return hit


def _title_key(titles: dict[str, str], item_id: str) -> str:
    return titles.get(item_id, item_id).strip().casefold()
