"""The public entry point: a thin facade over training, the pipeline and the stores."""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Iterable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, Self

import numpy as np
import pandas as pd

from recsys.config import RecommenderConfig
from recsys.data.dataset import Dataset
from recsys.errors import NotFittedError
from recsys.model.fitted import FittedModel
from recsys.model.train import minimized, train
from recsys.pipeline.pipeline import Pipeline
from recsys.pipeline.query import make_query
from recsys.privacy import consent as consent_store
from recsys.privacy.consent import ConsentStore, SQLiteConsentStore
from recsys.privacy.erasure import erase_in_model, tombstones_for
from recsys.privacy.minimize import MinimizedData
from recsys.privacy.policy import Policy
from recsys.privacy.pseudonym import Pseudonymizer
from recsys.state import StateDir
from recsys.types import Query, Recommendation, Recommendations


class Recommender:
    """Ranked, explained recommendations for the customers of one shop.

    Holds one :class:`~recsys.model.fitted.FittedModel` at a time and swaps it whole (``forget``,
    a reload), so concurrent requests each read one consistent state. Consent lives in a
    :class:`~recsys.privacy.consent.ConsentStore`, by default the SQLite database of the shop's
    state directory (:class:`~recsys.state.StateDir`), shared by every process that uses it.
    """

    _swap = threading.Lock()  # read-modify-swap of the model (forget) one at a time

    def __init__(
        self,
        config: RecommenderConfig | None = None,
        *,
        policy: Policy | None = None,
        pseudonymizer: Pseudonymizer | None = None,
        consent: ConsentStore | None = None,
    ) -> None:
        self.config = config
        self.policy = policy
        self.pseudonymizer = pseudonymizer
        self.consent = consent

    # --- training -----------------------------------------------------------------------------
    def fit(
        self,
        data: Dataset | MinimizedData,
        *,
        now: datetime | pd.Timestamp | None = None,
        erased: Iterable[str] = (),
    ) -> Self:
        """Minimize (unless given minimized data) and train; record the data's consent.

        ``now`` is the reference time of the retention window (default: the current time);
        ``erased`` holds tombstones (pseudonyms), added to those in the consent store.
        """
        cfg = self.config or RecommenderConfig()
        policy = self.policy or Policy.default()
        store = self.consent_store_
        tombstones = set(erased) | tombstones_for(store, self.pseudonymizer)
        md = minimized(
            data, cfg, policy, now=now, pseudonymizer=self.pseudonymizer, erased=tombstones
        )
        ps = self.pseudonymizer
        model = train(md, cfg, policy, key_id=ps.key_id if ps else None)
        users = md.users
        email = users["consent_email"] if "consent_email" in users else np.zeros(len(users), bool)
        store.seed(
            zip(users["user_id"].astype(str), users["consent_personalization"], email, strict=True),
            at=md.as_of.timestamp(),
        )
        return self.use(model)

    def use(self, model: FittedModel) -> Self:
        """Serve ``model`` from the next request on (requests in flight finish on the old one),
        warmed first (:meth:`Pipeline.warm`); an attached audit sink and hooks carry over."""
        pipeline = Pipeline(model, self.consent_store_, pseudonymizer=self.pseudonymizer)
        pipeline.warm()
        if (old := self.__dict__.get("pipeline_")) is not None:  # after it: attach() meanwhile
            pipeline.sink, pipeline.hooks = old.sink, old.hooks
        self.pipeline_ = pipeline
        return self

    @property
    def consent_store_(self) -> ConsentStore:
        if self.consent is None:
            self.consent = SQLiteConsentStore(StateDir.resolve().database)
        return self.consent

    @property
    def pipeline(self) -> Pipeline:
        """The pipeline serving the current model."""
        try:
            return self.pipeline_
        except AttributeError:
            raise NotFittedError("not fitted: call fit() or Recommender.load()") from None

    @property
    def model_(self) -> FittedModel:
        return self.pipeline.model

    # --- consent and erasure ------------------------------------------------------------------
    def key_of(self, user_id: str) -> str:
        """The id under which the model knows ``user_id`` (its pseudonym when keyed)."""
        return self.pseudonymizer(str(user_id)) if self.pseudonymizer else str(user_id)

    def set_consent(
        self, user_id: str, personalization: bool | None = None, email: bool | None = None
    ) -> None:
        """Record a consent change: durable, and applied from the next request on."""
        self.consent_store_.set(self.key_of(user_id), personalization, email)

    def has_consent(self, user_id: str, purpose: str = "personalization") -> bool:
        """Consent on record for ``personalization`` or ``email``; unknown users have none."""
        c = consent_store.get(self.consent_store_, self.key_of(user_id))
        return c.email if purpose == "email" else c.personalization

    def forget(self, user_id: str) -> dict[str, int]:
        """Erase a user: tombstone first, then consent record and place in the model (touched
        items re-solved); save afterwards to erase the artifact too. Returns counts only."""
        with self._swap:
            store, ps = self.consent_store_, self.pseudonymizer
            model, removed = erase_in_model(self.model_, store, user_id, ps)
            self.use(model)
        return removed

    # --- serving ------------------------------------------------------------------------------
    def query(self, user_id: str, k: int = 10, **kwargs: Any) -> Query:
        """A :class:`~recsys.types.Query` (keywords as :func:`~recsys.pipeline.query.make_query`:
        ``exclude``, ``as_of``, ``personalized``, ``rerank``, ``context``, ``request_id``)."""
        return make_query(user_id, k, **kwargs)

    def recommend(self, user_id: str, k: int = 10, **kwargs: Any) -> Recommendations:
        """The top ``k`` items for ``user_id``, each with a score, rank, reason and attributions.

        Keywords as :meth:`query`; ``rerank=False`` turns re-ranking off, a ``RerankConfig``
        overrides it. Users without consent or history, and ``personalized=False``, get the
        shop's trending items with a reason saying why."""
        return self.pipeline.run([self.query(user_id, k, **kwargs)])[0]

    def recommend_many(
        self,
        users: Sequence[str] | Sequence[Query],
        k: int = 10,
        *,
        reranker: Any = None,
        **kwargs: Any,
    ) -> list[Recommendations]:
        """Lists for many users at once (scored in blocks): the same as one call per user.
        ``users`` are ids (with ``k`` and keywords as :meth:`query`) or ready queries."""
        qs = [u if isinstance(u, Query) else self.query(u, k, **kwargs) for u in users]
        return self.pipeline.run(qs, reranker=reranker)

    def explain(self, user_id: str, item_id: str, *, as_of: Any = None) -> Recommendation:
        """Score, attributions and reason for any item, recommended or not."""
        rec = self.pipeline.explain_item(self.query(user_id, as_of=as_of), item_id)
        return dataclasses.replace(rec, rank=0)

    def counterfactual_score(
        self, user_id: str, item_id: str, drop: Iterable[str], *, as_of: Any = None
    ) -> tuple[float, float]:
        """The item's score from the user's full history, and with ``drop`` removed (ALS)."""
        return self.pipeline.counterfactual(self.query(user_id, as_of=as_of), item_id, drop)

    # --- persistence --------------------------------------------------------------------------
    def save(self, path: str | Path) -> Path:
        from recsys.model.artifacts import save_model

        return save_model(self.model_, Path(path), signer=self.pseudonymizer)

    @classmethod
    def load(
        cls,
        path: str | Path,
        *,
        pseudonymizer: Pseudonymizer | None = None,
        consent: ConsentStore | None = None,
    ) -> Recommender:
        """A checked model directory; ``consent``: the shop's store (default: the state dir's)."""
        from recsys.model.artifacts import open_model

        model, ps = open_model(Path(path), pseudonymizer)
        return cls(model.config, policy=model.policy, pseudonymizer=ps, consent=consent).use(model)

    def describe(self) -> dict[str, Any]:
        """The main parameters behind the recommendations (for transparency reports)."""
        return self.model_.describe()
