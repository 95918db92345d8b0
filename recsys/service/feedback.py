"""``POST /v1/feedback``: a customer's "not interested" and "this reason is wrong" over HTTP.

Stored under the pseudonym in the state database (:mod:`recsys.audit.feedback`), shared by every
worker, and honoured from the next request on: the server attaches the feedback hook to every
recommender its :class:`~recsys.service.handle.ModelHandle` loads (:func:`feedback_hook`), so it
survives hot swaps, event updates and erasures. Logs carry the pseudonym, never the id.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal

from fastapi import APIRouter, HTTPException
from pydantic import BaseModel, ConfigDict, Field, model_validator

from recsys.audit import FeedbackStore, attach, not_interested, reason_wrong
from recsys.rerank.overrides import in_category

if TYPE_CHECKING:
    from recsys.recommender import Recommender
    from recsys.service.handle import ModelHandle

log = logging.getLogger("recsys.service")
Text = Annotated[str, Field(min_length=1, max_length=256)]


class NotInterested(BaseModel):
    """The customer does not want this item, or this category (and what lies under it)."""

    model_config = ConfigDict(extra="forbid")
    kind: Literal["not_interested"]
    user_id: Text
    item_id: Text | None = None
    category: Text | None = None

    @model_validator(mode="after")
    def _one_target(self) -> NotInterested:
        if (self.item_id is None) == (self.category is None):
            raise ValueError("give exactly one of item_id or category")
        return self


class ReasonWrong(BaseModel):
    """The reason shown for an item is wrong (a kind from a fixed list; no free text)."""

    model_config = ConfigDict(extra="forbid")
    kind: Literal["reason_wrong"]
    user_id: Text
    item_id: Text
    problem: Literal["not_true", "not_relevant", "too_personal", "other"] = "not_true"


FeedbackIn = Annotated[NotInterested | ReasonWrong, Field(discriminator="kind")]


class FeedbackOut(BaseModel):
    model_version: str
    user_id: str
    recorded: str
    """What was stored, e.g. ``not_interested_item``; it applies from the next request on."""


def feedback_hook(
    database: str | Path, *, overrides: str | Path | None = None, audit: bool = False
) -> Callable[[Recommender], Recommender]:
    """What a :class:`~recsys.service.handle.ModelHandle` runs on each recommender it loads
    (``prepare=``): the state database's feedback store, attached; with ``overrides``, that
    file (read again at each load, so a reload picks up its edits; a bad file refuses the
    load); with ``audit``, the database's audit trail."""
    from recsys.audit.trail import SQLiteAuditTrail
    from recsys.rerank.overrides import load_overrides

    store = FeedbackStore(database)
    sink = SQLiteAuditTrail(database) if audit else None

    def prepare(rec: Recommender) -> Recommender:
        ov = load_overrides(overrides, rec.key_of) if overrides else None
        return attach(rec, sink=sink, feedback=store, overrides=ov)

    return prepare


def _pseudonym(rec: Recommender, user_id: str) -> str:
    """How logs name the customer (as the app's other endpoints do)."""
    ps = rec.pseudonymizer
    return ps(user_id) if ps else hashlib.sha256(user_id.encode()).hexdigest()[:16]


def feedback_router(handle: ModelHandle) -> APIRouter:
    """The feedback endpoint over ``handle``'s served model (403 when the handle has no
    feedback store attached: nothing would honour it)."""
    router = APIRouter()

    @router.post("/v1/feedback", response_model=FeedbackOut, status_code=201)
    def feedback(body: FeedbackIn) -> FeedbackOut:
        """Record "not interested" (an item or a category) or "this reason is wrong"; the
        customer's next request honours it."""
        served = handle.current
        rec = served.recommender
        hooks = rec.pipeline.hooks
        store = hooks.feedback if hooks is not None else None
        if store is None:
            raise HTTPException(403, "feedback is off: the server has no feedback store")
        catalog = rec.model_.ctx.catalog
        if body.item_id is not None and catalog.items.get(body.item_id) < 0:
            raise HTTPException(404, f"unknown item {body.item_id!r}")
        user = body.user_id
        if isinstance(body, ReasonWrong):
            reason_wrong(store, rec.pseudonymizer, user, body.item_id, body.problem)
            recorded = "reason_wrong"
        else:
            cat = body.category
            if cat is not None and not in_category(catalog.categories, cat).any():
                raise HTTPException(404, f"unknown category {body.category!r}")
            not_interested(store, rec.pseudonymizer, user, item_id=body.item_id,
                           category=body.category)  # fmt: skip
            recorded = "not_interested_" + ("item" if body.item_id is not None else "category")
        log.info("feedback user=%s kind=%s version=%s", _pseudonym(rec, user), recorded,
                 served.info.version)  # fmt: skip
        return FeedbackOut(model_version=served.info.version, user_id=body.user_id,
                           recorded=recorded)  # fmt: skip

    return router
