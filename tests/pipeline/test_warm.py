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
    objects |= {"users": m.ctx.history.users, "items": m.ctx.catalog.items}  # id look-ups
    if m.ctx.shop is not None:
        objects["shop users"] = m.ctx.shop.users
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


_KERNELS_AFTER_WARM = """
import sys
from pathlib import Path
import numba
from recsys.explain import kernels as k_explain
from recsys.features import kernels as k_features
from recsys.privacy import Pseudonymizer
from recsys.privacy.consent import SQLiteConsentStore
from recsys.ranking import kernels as k_ranking
from recsys.recommender import Recommender
from recsys.rerank import kernels as k_rerank

def compiled():
    return {
        (m.__name__, name, str(sig))
        for m in (k_explain, k_features, k_ranking, k_rerank)
        for name, fn in vars(m).items()
        if isinstance(fn, numba.core.registry.CPUDispatcher)
        for sig in fn.signatures
    }

model, db, key, users = sys.argv[1], sys.argv[2], sys.argv[3].encode(), sys.argv[4:]
rec = Recommender.load(Path(model), pseudonymizer=Pseudonymizer(key), consent=SQLiteConsentStore(db))
before = compiled()
lists = [rec.recommend(u, 5) for u in users]
assert sum(r.personalized for r in lists) >= 10, "too few known customers"
rec.recommend_many(users[:8], 5)
print(sorted(compiled() - before))
"""


def test_a_fresh_process_loads_no_kernel_after_the_warm_up(model_copy, small_shop) -> None:
    """Each compiled kernel's first call in a process loads (or compiles) it: several ms. The
    warm-up calls every kernel requests call, with the kinds of arrays requests pass (a list's
    items are read-only), so a new worker's first requests load none (a new process: one
    that has run other tests has them all already)."""
    import subprocess
    import sys

    from tests.conftest import KEY

    model, store = model_copy
    ids = small_shop.users["user_id"].astype(str).tolist()[:30]
    out = subprocess.run(
        [sys.executable, "-c", _KERNELS_AFTER_WARM, str(model), str(store.path), KEY.decode(), *ids],
        capture_output=True, text=True, check=True, timeout=300,
    )  # fmt: skip
    assert out.stdout.strip() == "[]", out.stdout
