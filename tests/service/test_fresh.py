"""Fresh events fold in at once; fallbacks say truthfully why a list is not personalized."""

from __future__ import annotations

import numpy as np

from recsys.features.history import DAY
from tests.service.conftest import NOW, consenting_users

TODAY = str(np.datetime64(NOW // DAY, "D"))


def events_on(item: str) -> list[dict]:
    return [
        {"item_id": item, "event": "cart", "time": NOW - 60},
        {"item_id": item, "event": "view", "time": NOW},
    ]


def test_a_fresh_event_changes_the_next_list_and_is_cited(handle, small_shop) -> None:
    rec = handle.current.recommender
    user = consenting_users(small_shop, rec=handle.current.recommender)[1]
    before = rec.recommend(user, 10)
    assert before.personalized
    cited, changed = [], 0
    for item in small_shop.items["item_id"].astype(str).iloc[20:30]:
        after = rec.recommend(user, 10, events=events_on(item))
        changed += after.item_ids != before.item_ids
        assert item not in after.item_ids  # just seen: not offered again
        cited += [(r.item_id, e) for r in after for e in r.reason.evidence if e.item_id == item]
    assert changed == 10
    assert cited, "no reason cited a fresh event"
    for _, e in cited:  # the evidence is the fresh event itself: today's view
        assert e.date == TODAY and e.event == "view"
    assert rec.recommend(user, 10).item_ids == before.item_ids  # nothing was stored


def test_a_brand_new_visitor_with_events_is_personalized_from_them(handle, small_shop) -> None:
    rec = handle.current.recommender
    item = str(small_shop.items["item_id"].iloc[21])
    plain = rec.recommend("NEW-VISITOR", 5)
    assert not plain.personalized
    recs = rec.recommend("NEW-VISITOR", 5, events=events_on(item))
    assert recs.personalized
    evidence = [e for r in recs for e in r.reason.evidence if e.item_id == item]
    assert evidence and all(e.date == TODAY for e in evidence)


def test_events_never_override_a_declined_consent(handle, small_shop) -> None:
    rec = handle.current.recommender
    user = consenting_users(small_shop, rec=handle.current.recommender)[2]
    rec.set_consent(user, personalization=False)
    item = str(small_shop.items["item_id"].iloc[21])
    recs = rec.recommend(user, 5, events=events_on(item))
    assert not recs.personalized
    assert all("you chose not to receive personalized" in r.reason.text for r in recs)


def test_an_unknown_visitor_is_told_we_do_not_know_them_not_that_they_declined(handle) -> None:
    recs = handle.current.recommender.recommend("NEVER-SEEN", 5)
    assert not recs.personalized and len(recs)
    for r in recs:
        assert "we do not know you yet" in r.reason.text
        assert "chose not" not in r.reason.text


def test_an_erased_user_is_not_told_they_declined(handle, small_shop) -> None:
    user = consenting_users(small_shop, rec=handle.current.recommender)[3]
    assert handle.current.recommender.recommend(user, 5).personalized
    handle.forget(user)
    recs = handle.current.recommender.recommend(user, 5)
    assert not recs.personalized
    for r in recs:
        assert "we do not know you yet" in r.reason.text
        assert "chose not" not in r.reason.text


def test_update_applies_events_without_retraining(handle, small_shop) -> None:
    user = consenting_users(small_shop, rec=handle.current.recommender)[4]
    old = handle.current
    before = old.recommender.recommend(user, 10)
    item = str(small_shop.items["item_id"].iloc[22])
    report = handle.update(
        [{"user_id": user, **e} for e in events_on(item)]
        + [{"user_id": "NOBODY", "item_id": item, "event": "view", "time": NOW}]
        + [{"user_id": user, "item_id": "NO-SUCH-ITEM", "event": "view", "time": NOW}]
    )
    assert report.applied == 2 and report.users == 1
    assert report.skipped == {"unknown_item": 1, "unknown_event": 0, "no_consent": 1}
    new = handle.current
    assert new.info.version == old.info.version + "+1"
    after = new.recommender.recommend(user, 10)
    assert after.item_ids != before.item_ids and item not in after.item_ids
    assert any(e.item_id == item and e.date == TODAY for r in after for e in r.reason.evidence)
    # the old snapshot (a request in flight) still answers from the old model
    assert old.recommender.recommend(user, 10).item_ids == before.item_ids
    # the stored events fold in exactly as the same events carried by a request do
    key = old.recommender.key_of(user)
    pipe = old.recommender.pipeline
    fresh = pipe.fresh(old.recommender.query(user, events=events_on(item)))
    st = pipe.model.ctx.user_state(pipe.model.ctx.history.users.get(key), fresh=fresh)
    ctx = new.recommender.model_.ctx
    stored = ctx.collab.user_factors_[ctx.history.users.get(key)]
    np.testing.assert_allclose(stored, st.vector, rtol=1e-5, atol=1e-6)
