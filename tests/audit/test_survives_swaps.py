"""Issue #17: what :func:`recsys.audit.attach` switched on stays on when the recommender swaps its
model (``forget``, ``use`` of a reloaded model): lists are still recorded, feedback honoured."""

from __future__ import annotations

from recsys.audit import FeedbackStore, SQLiteAuditTrail, attach, not_interested
from recsys.data.synthetic import END, ShopSpec, make_shop
from recsys.privacy.consent import SQLiteConsentStore
from recsys.recommender import Recommender
from recsys.rerank.overrides import parse_overrides


def test_an_attached_trail_survives_forget_and_use(pseudonymizer, tmp_path) -> None:
    db = tmp_path / "state.sqlite"  # consent, audit trail and feedback: one state database
    shop = make_shop(ShopSpec(n_users=120, n_items=60, seed=8))
    rec = Recommender(pseudonymizer=pseudonymizer, consent=SQLiteConsentStore(db))
    rec.fit(shop, now=END)
    trail, fb = SQLiteAuditTrail(db), FeedbackStore(db)
    ids = shop.users["user_id"].astype(str).tolist()
    gone, user, other = [u for u in ids if rec.recommend(u, 4).personalized][:3]
    blocked = rec.recommend(other, 4).item_ids[0]
    attach(rec, sink=trail, feedback=fb,
           overrides=parse_overrides(f'[[block]]\nitem = "{blocked}"\n', rec.key_of))  # fmt: skip
    try:
        first = rec.pipeline
        rec.recommend_many([user, gone], 4)
        not_interested(fb, rec.pseudonymizer, user, item_id=rec.recommend(user, 4).item_ids[0])
        assert trail.count(rec.key_of(user)) == 2

        assert trail.count(rec.key_of(gone)) == 1
        assert rec.forget(gone)["audit_records"] == 1  # a new model and a new pipeline
        assert rec.pipeline is not first and trail.count(rec.key_of(gone)) == 0
        assert rec.pipeline.sink is trail and rec.pipeline.hooks is first.hooks
        _check_still_on(rec, trail, fb, user, other, blocked, recorded=3)

        rec.save(tmp_path / "model")  # a reload of the saved model, served by use()
        loaded = Recommender.load(tmp_path / "model", pseudonymizer=rec.pseudonymizer,
                                  consent=rec.consent_store_)  # fmt: skip
        before = rec.pipeline
        rec.use(loaded.model_)
        assert rec.pipeline is not before and rec.model_ is loaded.model_
        assert rec.pipeline.sink is trail and rec.pipeline.hooks is first.hooks
        _check_still_on(rec, trail, fb, user, other, blocked, recorded=4)
        assert trail.count(rec.key_of(gone)) == 0
    finally:
        attach(rec)
    assert rec.pipeline.sink is None and rec.pipeline.hooks is None


def _check_still_on(
    rec: Recommender,
    trail: SQLiteAuditTrail,
    fb: FeedbackStore,
    user: str,
    other: str,
    blocked: str,
    recorded: int,
) -> None:
    """The user's list is recorded and leaves out their "not interested" item; the override
    still blocks ``blocked`` for ``other``."""
    key = rec.key_of(user)
    (unwanted,) = fb.blocked([key])[key][0]
    got = rec.recommend(user, 4)
    assert unwanted not in got.item_ids and len(got) == 4
    assert trail.count(key) == recorded
    assert [i["item_id"] for i in trail.lists(key, limit=1)[0]["items"]] == got.item_ids
    assert blocked not in rec.recommend(other, 4).item_ids
