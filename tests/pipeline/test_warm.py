"""A model is warmed before it is served (issue #13): its first requests build no table that
requests read lazily, and the warm-up itself is recorded nowhere."""

from __future__ import annotations

from recsys.audit import SQLiteAuditTrail, attach
from recsys.pipeline.pipeline import WARM_VISITOR
from recsys.recommender import Recommender
from recsys.types import Event, Query


def _built(rec: Recommender) -> set[tuple[str, str, int | None]]:
    """What the model's objects hold: every attribute, and the size of those that are dicts
    (per-day counts, memos). A table built on first use shows up as a new entry."""
    m = rec.model_
    objects = {"model": m, "ctx": m.ctx, "shop": m.ctx.shop, "catalog": m.ctx.catalog}
    objects |= {"history": m.ctx.history, "collab": m.ctx.collab}
    return {
        (name, key, len(value) if isinstance(value, dict) else None)
        for name, obj in objects.items()
        if obj is not None
        for key, value in vars(obj).items()
    }


def test_requests_after_a_load_build_nothing_lazily(model_copy, small_shop, pseudonymizer) -> None:
    model, store = model_copy
    rec = Recommender.load(model, pseudonymizer=pseudonymizer, consent=store)
    before = _built(rec)
    ids = small_shop.users["user_id"].astype(str).tolist()[:30]
    lists = [rec.recommend(u, 5) for u in ids]
    assert sum(r.personalized for r in lists) >= 10  # known customers' lists were made
    item = str(small_shop.items["item_id"].iloc[0])
    ts = rec.model_.cutoff
    visitor = rec.pipeline.run([Query("a-new-visitor", 5, events=(Event(item, "cart", ts),))])[0]
    assert visitor.personalized
    rec.recommend(ids[0], 5, personalized=False)
    rec.recommend_many(ids[:8], 5)
    assert _built(rec) == before


def test_the_warm_up_is_recorded_nowhere(model_copy, pseudonymizer) -> None:
    model, store = model_copy
    rec = Recommender.load(model, pseudonymizer=pseudonymizer, consent=store)
    trail = SQLiteAuditTrail(model.parent / "state.sqlite")
    attach(rec, sink=trail)
    try:
        rec.use(rec.model_)  # a swap warms the new pipeline, which carries the trail
        assert rec.pipeline.sink is trail
        assert trail.count(rec.key_of(WARM_VISITOR)) == 0
        rec.recommend("someone", 3)  # the trail itself records
        assert trail.count(rec.key_of("someone")) == 1
    finally:
        attach(rec)


def test_the_warm_up_is_nobodys_and_a_failed_one_still_swaps(
    model_copy, pseudonymizer, monkeypatch, caplog
) -> None:
    """The warm-up's visitor is looked up as no customer (a customer could have its id); a
    warm-up that fails is logged and the model is served all the same."""
    import logging

    from recsys.pipeline import pipeline as pipeline_module
    from recsys.pipeline.pipeline import Pipeline

    model, store = model_copy
    rec = Recommender.load(model, pseudonymizer=pseudonymizer, consent=store)

    def no(*args, **kwargs):
        raise AssertionError("the warm-up looked a customer up")

    with monkeypatch.context() as m, caplog.at_level(logging.WARNING, "recsys.pipeline"):
        m.setattr(Pipeline, "resolve", no)
        m.setattr(Pipeline, "key_of", no)
        rec.pipeline.warm()
    assert not caplog.records

    def broken(obj):
        raise RuntimeError("disk on fire")

    old = rec.pipeline
    with monkeypatch.context() as m, caplog.at_level(logging.WARNING, "recsys.pipeline"):
        m.setattr(pipeline_module, "build_cached", broken)
        rec.use(rec.model_)
    assert rec.pipeline is not old and "warming the model failed" in caplog.text
    assert rec.recommend("someone", 3).item_ids  # served, tables built on first use
