"""The public entry point: fit on shop data, recommend with reasons, explain, save and load."""

from __future__ import annotations

import copy
import dataclasses
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Self

import numpy as np
import pandas as pd

from recsys.candidates.generate import candidates
from recsys.candidates.implicit_adapter import ImplicitModel
from recsys.config import RecommenderConfig
from recsys.data.dataset import Dataset
from recsys.data.splits import temporal_split
from recsys.errors import ModelFitError, NotFittedError
from recsys.explain.reasons import build_reason, sensitive_items
from recsys.explain.templates import MESSAGES, render
from recsys.features.context import FeatureContext, UserState
from recsys.features.history import Catalog, History, Vocabulary
from recsys.features.registry import (
    REGISTRY,
    Feature,
    category_evidence,
    feature_matrix,
    select_features,
)
from recsys.privacy.minimize import MinimizationReport, MinimizedData, minimize
from recsys.privacy.policy import Policy
from recsys.privacy.pseudonym import Pseudonymizer
from recsys.ranking.ranker import AdditiveRanker
from recsys.ranking.training import positives, training_examples
from recsys.rerank.reranker import RerankConfig, Reranker
from recsys.types import Evidence, Reason, Recommendation, Recommendations

DAY = 86_400
CONTEXT_KEYS = frozenset({"time", "basket"})


def build_context(inter: pd.DataFrame, catalog: Catalog, model: ImplicitModel) -> FeatureContext:
    """History and collaborative factors for the users in ``inter``."""
    users = Vocabulary(np.sort(inter["user_id"].unique()).astype(object))
    history = History.from_frame(inter, users, catalog.items)
    return FeatureContext(history, catalog, model.fit(history.matrix()))


@dataclass(frozen=True, eq=False)
class ScoredCandidates:
    """One user's candidates in ranker order, with scores and attributions: what the ranker
    hands the re-ranker. The arrays are read-only, so no stage can change an earlier stage's
    output."""

    state: UserState
    items: np.ndarray
    scores: np.ndarray
    attributions: np.ndarray

    def __post_init__(self) -> None:
        n = len(self.items)
        if self.scores.shape != (n,) or len(self.attributions) != n:
            raise ValueError("items, scores and attributions must have one entry per candidate")
        for name in ("items", "scores", "attributions"):
            arr = np.array(getattr(self, name), copy=True)
            arr.setflags(write=False)
            object.__setattr__(self, name, arr)


class Recommender:
    """Ranked, explained recommendations for the customers of one shop.

    ``fit`` takes a :class:`~recsys.data.Dataset` (minimized here under ``policy``) or data
    minimized already. Thread-safe for concurrent ``recommend`` calls after ``fit``/``load``;
    consent changes take effect at the next request.
    """

    def __init__(
        self,
        config: RecommenderConfig | None = None,
        *,
        policy: Policy | None = None,
        pseudonymizer: Pseudonymizer | None = None,
    ) -> None:
        self.config = config
        self.policy = policy
        self.pseudonymizer = pseudonymizer

    # --- training ---------------------------------------------------------------------------
    @property
    def config_(self) -> RecommenderConfig:
        return self.config or RecommenderConfig()

    @property
    def policy_(self) -> Policy:
        return self.policy or Policy.default()  # cached: parsed once per process

    def fit(
        self,
        data: Dataset | MinimizedData,
        *,
        now: datetime | pd.Timestamp | None = None,
        erased: Iterable[str] = (),
    ) -> Self:
        """Minimize (unless given minimized data), train the candidate model and the ranker.

        ``now`` is the reference time of the retention window (default: the current time);
        ``erased`` holds the tombstones of users who asked to be forgotten.
        """
        t0 = time.perf_counter()
        cfg = self.config_
        if isinstance(data, MinimizedData):
            md = data
        else:
            md = minimize(
                data,
                self.policy_,
                cfg.purpose,
                now=now,
                pseudonymizer=self.pseudonymizer,
                erased=erased,
            )
        if md.interactions.empty:
            raise ModelFitError(
                "no interactions left after minimization (consent, retention window "
                f"{self.policy_.purpose(cfg.purpose).retention_days} days before {md.as_of:%Y-%m-%d}); "
                "pass an earlier `now` to evaluate historical data"
            )
        catalog = Catalog.from_frame(md.items)
        collab = lambda: ImplicitModel.from_config(cfg.collaborative)  # noqa: E731
        ctx = build_context(md.interactions, catalog, collab())
        features = select_features(ctx, cfg.features, self.policy_, cfg.purpose)
        inner, late = temporal_split(md.interactions, cfg.training.holdout_fraction)
        inner_ctx = build_context(inner, catalog, collab())
        X, y = training_examples(
            inner_ctx,
            positives(late, cfg.training.relevant_rating),
            features,
            cfg.candidates,
            cfg.training,
        )
        if len(y) == 0 or y.all() or not y.any():
            raise ModelFitError(
                f"the temporal hold-out gave {int(y.sum())} positive and {int((~y).sum())} negative "
                "examples; the ranker needs both (too little data?)"
            )
        ranker = AdditiveRanker.from_config(cfg.ranker).fit(
            pd.DataFrame(X, columns=[f.name for f in features]), y
        )
        self._install(ctx, features, ranker, md.users, md.report, md.purpose)
        self.training_examples_ = (len(y), int(y.sum()))
        self.fit_seconds_ = time.perf_counter() - t0
        return self

    def _install(
        self,
        ctx: FeatureContext,
        features: Sequence[Feature],
        ranker: AdditiveRanker,
        users: pd.DataFrame,
        report: MinimizationReport | dict | None,
        purpose: str,
    ) -> None:
        self.context_ = ctx
        self.features_ = tuple(features)
        self.ranker_ = ranker
        self.minimization_ = report
        self.purpose_ = purpose
        self._sensitive = sensitive_items(ctx.catalog, self.policy_)
        self._titles = dict(
            zip(ctx.catalog.items.ids.tolist(), ctx.catalog.title.tolist(), strict=True)
        )
        email = users["consent_email"] if "consent_email" in users else np.zeros(len(users), bool)
        self._consent: dict[str, tuple[bool, bool]] = {
            str(u): (bool(p), bool(e))
            for u, p, e in zip(
                users["user_id"], users["consent_personalization"], email, strict=True
            )
        }
        self._lock = threading.Lock()

    def _check(self) -> None:
        if not hasattr(self, "ranker_"):
            raise NotFittedError("this Recommender is not fitted: call fit() or Recommender.load()")

    # --- consent ----------------------------------------------------------------------------
    def key_of(self, user_id: str) -> str:
        """The id under which the model knows ``user_id`` (its pseudonym when keyed)."""
        return self.pseudonymizer(str(user_id)) if self.pseudonymizer else str(user_id)

    def set_consent(
        self, user_id: str, personalization: bool | None = None, email: bool | None = None
    ) -> None:
        """Record a consent change; it applies from the next request, without retraining."""
        self._check()
        key = self.key_of(user_id)
        with self._lock:
            p, e = self._consent.get(key, (False, False))
            self._consent[key] = (
                p if personalization is None else bool(personalization),
                e if email is None else bool(email),
            )

    def has_consent(self, user_id: str, purpose: str = "personalization") -> bool:
        """Consent on record for ``personalization`` or ``email``; unknown users have none."""
        self._check()
        p, e = self._consent.get(self.key_of(user_id), (False, False))
        return e if purpose == "email" else p

    def forget(self, user_id: str) -> dict[str, int]:
        """Erase a user from this model: history, user factor and consent record.

        The factors of the items the user touched are re-solved from the remaining users (ALS),
        and shop-wide counts are recomputed without them. Returns what was removed (counts only).
        Save the model afterwards to erase the user from the artifact on disk too.
        """
        self._check()
        key = self.key_of(user_id)
        ctx = self.context_
        h = ctx.history
        u = h.users.get(key)
        removed = {"events": 0, "user_factors": 0, "items_resolved": 0, "consent_records": 0}
        with self._lock:
            if self._consent.pop(key, None) is not None:
                removed["consent_records"] = 1
            if u >= 0:
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
                item_users = history.matrix().T.tocsr()[touched]
                collab.resolve_items(touched, item_users)
                self.context_ = FeatureContext(history, ctx.catalog, collab)
                removed.update(
                    events=int((~keep).sum()), user_factors=1, items_resolved=len(touched)
                )
        return removed

    # --- serving ----------------------------------------------------------------------------
    def _as_of(self, as_of: datetime | pd.Timestamp | int | None, u: int) -> int:
        if as_of is None:
            return self.context_.cutoff
        if isinstance(as_of, (int, np.integer)):
            return int(as_of)
        ts = pd.Timestamp(as_of)
        return int((ts.tz_localize("UTC") if ts.tzinfo is None else ts).timestamp())

    def _item_indices(self, ids: Iterable[str]) -> np.ndarray:
        return self.context_.catalog.items.index(list(map(str, ids)))

    def recommend(
        self,
        user_id: str,
        k: int = 10,
        *,
        exclude: Iterable[str] = (),
        as_of: datetime | pd.Timestamp | int | None = None,
        personalized: bool = True,
        rerank: bool | RerankConfig | None = None,
        context: Mapping[str, Any] | None = None,
    ) -> Recommendations:
        """The top ``k`` items for ``user_id``, each with a score, rank, reason and attributions.

        ``context`` describes the request: ``time`` (as ``as_of``: what "now" is for trending
        and re-buy cycles) and ``basket`` (item ids already in the basket, left out).

        Users without consent, unknown users and ``personalized=False`` get the shop's
        trending items, with a reason that says they are not personalized. ``rerank``: ``None``
        uses the configured re-ranking, ``False`` turns it off, a ``RerankConfig`` overrides it
        for this call. ``score`` stays the ranker's; ``reason.stage`` says which stage placed
        the item (``ranker``, ``diversity`` or ``fairness``).
        """
        self._check()
        if context:
            unknown = sorted(set(context) - CONTEXT_KEYS)
            if unknown:
                raise ValueError(f"unknown context key(s) {unknown}; known: {sorted(CONTEXT_KEYS)}")
            if "time" in context:
                if as_of is not None:
                    raise ValueError("give the request time once: as_of= or context['time']")
                as_of = context["time"]
            exclude = [*exclude, *context.get("basket", ())]
        key = self.key_of(user_id)
        ctx = self.context_
        u = ctx.history.users.get(key)
        if not personalized:
            return self._non_personalized(user_id, k, exclude, as_of, MESSAGES["why_no_profiling"])
        if not self._consent.get(key, (False, False))[0]:
            return self._non_personalized(user_id, k, exclude, as_of, MESSAGES["why_no_consent"])
        if u < 0:
            return self._non_personalized(user_id, k, exclude, as_of, MESSAGES["why_no_history"])
        scored = self.score_candidates(u, exclude=exclude, as_of=as_of)
        rcfg = self.config_.rerank if rerank is None or rerank is True else rerank
        if rcfg is False:
            rcfg = self.config_.rerank.model_copy(update={"enabled": False})
        placed = self.reranker_.rerank(
            scored.items, scored.scores, k, rcfg, category_mix=scored.state.category_counts
        )
        return self.assemble(user_id, scored, placed.order, placed.stage, rcfg)

    def score_candidates(
        self, u: int, *, exclude: Iterable[str] = (), as_of=None
    ) -> ScoredCandidates:
        """The ranker's scores and attributions for user index ``u``'s candidates, best first."""
        ctx = self.context_
        st = ctx.user_state(u, self._as_of(as_of, u))
        cand = candidates(ctx, st, self.config_.candidates, self._item_indices(exclude))
        phi = self.ranker_.shap_values(feature_matrix(ctx, st, cand, self.features_))
        score = self.ranker_.expected_value + phi.sum(axis=1)
        ranked = np.lexsort((ctx.catalog.items.ids[cand].astype(str), -score))
        return ScoredCandidates(st, cand[ranked], score[ranked], phi[ranked])

    def assemble(
        self,
        user_id: str,
        scored: ScoredCandidates,
        order: np.ndarray,
        stages: Sequence[str],
        rerank: RerankConfig,
    ) -> Recommendations:
        """Explained recommendations for the chosen positions of ``scored``."""
        recs = [
            self._recommendation(
                scored.state, int(scored.items[j]), float(scored.scores[j]), r + 1,
                scored.attributions[j], stages[r], rerank,
            )
            for r, j in enumerate(order)
        ]  # fmt: skip
        return Recommendations(str(user_id), tuple(recs), personalized=True)

    def _recommendation(
        self,
        st: UserState,
        item: int,
        score: float,
        rank: int,
        phi: np.ndarray,
        stage: str = "ranker",
        rerank: RerankConfig | None = None,
    ) -> Recommendation:
        ctx = self.context_
        reason = build_reason(
            ctx, st, item, self.features_, phi, self._sensitive, self._titles,
            max_clauses=self.config_.reasons.max_clauses,
            skip_facts=frozenset({"category_share"}) if stage == "calibration" else frozenset(),
        )  # fmt: skip
        if stage != "ranker":
            reason = self._moved_reason(st, item, reason, stage, rerank or self.config_.rerank)
        item_id = str(ctx.catalog.items.ids[item])
        return Recommendation(
            item_id=item_id,
            score=score,
            rank=rank,
            reason=reason,
            attributions=tuple(
                (f.name, float(a)) for f, a in zip(self.features_, phi, strict=True)
            ),
            title=self._titles.get(item_id, ""),
        )

    def _moved_reason(
        self, st: UserState, item: int, reason: Reason, stage: str, rcfg: RerankConfig
    ) -> Reason:
        """Say plainly that a re-ranking stage brought the item in; keep its own evidence."""
        ctx = self.context_
        own = "" if reason.text == MESSAGES["fallback"] else ". " + reason.text
        if stage == "calibration":
            ev = next(
                (
                    e
                    for e in category_evidence(ctx, st, item)
                    if not self._sensitive.reveals(e, ctx)
                ),
                None,
            )
            if ev is None:
                return dataclasses.replace(reason, stage=stage)
            head = MESSAGES["calibration"].format(
                category=ev.category, count=ev.count, total=ev.total
            )
            return dataclasses.replace(
                reason, text=head + own, evidence=(*reason.evidence, ev), stage=stage
            )
        if stage == "diversity":
            cats = [
                c
                for c in ctx.catalog.categories_of(item)
                if not self.policy_.is_sensitive_category(c)
            ]
            head = (
                MESSAGES["diversity"].format(category=cats[0])
                if cats
                else MESSAGES["diversity_plain"]
            )
            extra = Evidence(
                fact="diversity",
                category=cats[0] if cats else None,
            )
        else:
            head = self.reranker_.group_label(rcfg)
            extra = Evidence(
                fact="item_group",
                category=rcfg.fairness.group,
            )
        return dataclasses.replace(
            reason, text=head + own, evidence=(*reason.evidence, extra), stage=stage
        )

    @property
    def reranker_(self) -> Reranker:
        """The re-ranker for the current context (rebuilt after ``forget`` swaps the context)."""
        ctx = self.context_
        cached = self.__dict__.get("_reranker")
        if cached is None or cached.ctx is not ctx:
            cached = Reranker(ctx, self.config_.rerank, self.policy_.item_groups)
            self.__dict__["_reranker"] = cached
        return cached

    def _non_personalized(
        self, user_id: str, k: int, exclude: Iterable[str], as_of, why: str
    ) -> Recommendations:
        """Trending, in-stock items: the same list for everyone at the same time."""
        ctx = self.context_
        when = self._as_of(as_of, -1)
        counts, day = ctx.trending(when)
        allowed = ctx.catalog.in_stock & (counts > 0)
        ex = self._item_indices(exclude)
        allowed[ex[ex >= 0]] = False
        idx = np.flatnonzero(allowed)
        idx = idx[np.lexsort((ctx.catalog.items.ids[idx].astype(str), -counts[idx]))][:k]
        recs = []
        for r, i in enumerate(idx):
            ev = Evidence(
                fact="trending", count=int(counts[i]), window_days=30, event=ctx.signal_event,
                date=str(np.datetime64(day, "s").astype("datetime64[D]")),
            )  # fmt: skip
            text = MESSAGES["not_personalized"].format(text=render(ev, self._titles), why=why)
            item_id = str(ctx.catalog.items.ids[i])
            reason = Reason(text=text, evidence=(ev,), stage="popularity")
            recs.append(
                Recommendation(
                    item_id, float(counts[i]), r + 1, reason, title=self._titles.get(item_id, "")
                )
            )
        return Recommendations(str(user_id), tuple(recs), personalized=False)

    def explain(self, user_id: str, item_id: str, *, as_of=None) -> Recommendation:
        """Score, attributions and reason for any item, recommended or not."""
        self._check()
        ctx = self.context_
        u = ctx.history.users.get(self.key_of(user_id))
        i = ctx.catalog.items.get(str(item_id))
        if i < 0:
            raise KeyError(f"unknown item {item_id!r}")
        st = ctx.user_state(u, self._as_of(as_of, u))
        X = feature_matrix(ctx, st, np.array([i]), self.features_)
        phi = self.ranker_.shap_values(X)[0]
        return self._recommendation(st, i, float(self.ranker_.expected_value + phi.sum()), 0, phi)

    def counterfactual_score(
        self, user_id: str, item_id: str, drop: Iterable[str], *, as_of=None
    ) -> tuple[float, float]:
        """The item's score with the user's collaborative vector re-solved from their full
        history, and with ``drop`` removed from it (ALS only): does that evidence matter?"""
        self._check()
        ctx = self.context_
        u = ctx.history.users.get(self.key_of(user_id))
        i = np.array([ctx.catalog.items.get(str(item_id))])
        when = self._as_of(as_of, u)
        out = []
        for d in (np.empty(0, dtype=np.int64), self._item_indices(drop)):
            st = ctx.user_state(u, when, drop=d)
            X = feature_matrix(ctx, st, i, self.features_)
            out.append(float(self.ranker_.decision_function(X)[0]))
        return out[0], out[1]

    def user_state(self, user_id: str, *, as_of=None) -> UserState:
        self._check()
        u = self.context_.history.users.get(self.key_of(user_id))
        return self.context_.user_state(u, self._as_of(as_of, u))

    # --- persistence ------------------------------------------------------------------------
    def save(self, path: str | Path) -> Path:
        from recsys.artifacts import save_model

        self._check()
        return save_model(self, Path(path))

    @classmethod
    def load(cls, path: str | Path, *, pseudonymizer: Pseudonymizer | None = None) -> Recommender:
        from recsys.artifacts import load_model

        return load_model(Path(path), pseudonymizer=pseudonymizer)

    def feature_names(self) -> list[str]:
        self._check()
        return [f.name for f in self.features_]

    def describe(self) -> dict[str, Any]:
        """The main parameters behind the recommendations (for transparency reports)."""
        self._check()
        return {
            "purpose": self.purpose_,
            "features": {f.name: REGISTRY[f.name].description for f in self.features_},
            "collaborative": self.config_.collaborative.model_dump(),
            "data_cutoff": str(np.datetime64(self.context_.cutoff, "s")),
        }
