"""Issue #17: every served list is recorded; erasure removes records and feedback; no record is
lost when two processes write at once."""

from __future__ import annotations

import multiprocessing as mp
from pathlib import Path
from types import SimpleNamespace
from typing import ClassVar

from recsys.audit import FeedbackStore, SQLiteAuditTrail, attach, not_interested, reason_wrong
from recsys.batch.exposure import BatchExposure
from recsys.types import Query, Recommendations


def _check_recorded(trail: SQLiteAuditTrail, rec, served: list[Recommendations]) -> None:
    by_request = {}
    for lst in trail.lists():
        by_request[lst["request_id"]] = lst
    for recs in served:
        got = by_request[recs.request_id]
        assert got["pseudonym"] == rec.key_of(recs.user_id)
        assert got["personalized"] == recs.personalized
        assert [i["item_id"] for i in got["items"]] == recs.item_ids
        assert [i["explanation"] for i in got["items"]] == [r.reason.to_dict() for r in recs]
        assert [i["reason"] for i in got["items"]] == [r.reason.text for r in recs]
        assert [i["stage"] for i in got["items"]] == [str(r.reason.stage) for r in recs]
        assert [i["score"] for i in got["items"]] == [float(r.score) for r in recs]


def test_every_served_list_has_a_matching_record(shop_rec, customers, tmp_path) -> None:
    rec, _ = shop_rec
    trail = SQLiteAuditTrail(tmp_path / "state.sqlite")
    attach(rec, sink=trail)
    try:
        served = [rec.recommend(customers[0], 5, request_id="page-0")]
        served += [rec.recommend(customers[1], 5, request_id="page-1", rerank=False)]
        qs = [rec.query(u, 4, request_id=f"many-{n}") for n, u in enumerate(customers)]
        served += rec.recommend_many(qs)
        served += [rec.recommend(customers[2], 3, request_id="anon", personalized=False)]
        batch = BatchExposure(rec).run(customers[:20], k=5)  # the batch path: its own re-ranker
        assert trail.count() == len(served) + len(batch)
        _check_recorded(trail, rec, served)
        assert any(not r.personalized for r in served) and any(r.personalized for r in served)
        for lst in trail.lists():
            assert lst["model_version"] and lst["policy_hash"] and lst["expires_at"] > lst["at"]
            assert lst["pseudonym"] not in customers, "the trail holds pseudonyms, not raw ids"
    finally:
        attach(rec)


def test_records_expire_with_the_retention_window(shop_rec, customers, tmp_path) -> None:
    rec, _ = shop_rec
    trail = SQLiteAuditTrail(tmp_path / "state.sqlite")
    attach(rec, sink=trail)
    try:
        rec.recommend(customers[0], 3)
    finally:
        attach(rec)
    (lst,) = trail.lists()
    days = rec.model_.policy.purposes[rec.model_.purpose].retention_days
    assert lst["expires_at"] - lst["at"] == days * 86_400
    assert trail.purge_expired(now=lst["at"] + days * 86_400 - 1) == 0
    assert trail.purge_expired(now=lst["at"] + days * 86_400 + 1) == 1
    assert trail.count() == 0


def test_the_trail_is_append_only(shop_rec, customers, tmp_path) -> None:
    import sqlite3

    import pytest

    rec, _ = shop_rec
    trail = SQLiteAuditTrail(tmp_path / "state.sqlite")
    attach(rec, sink=trail)
    try:
        rec.recommend(customers[0], 3)
    finally:
        attach(rec)
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        trail.conn().execute("UPDATE audit_items SET reason = 'something else'")


def test_erasure_removes_audit_records_and_feedback(
    small_shop, pseudonymizer, tmp_path, customers
) -> None:
    from recsys.data.synthetic import END
    from recsys.privacy.consent import SQLiteConsentStore
    from recsys.recommender import Recommender

    db = tmp_path / "state.sqlite"
    rec = Recommender(pseudonymizer=pseudonymizer, consent=SQLiteConsentStore(db))
    rec.fit(small_shop, now=END)
    trail, fb = SQLiteAuditTrail(db), FeedbackStore(db)
    attach(rec, sink=trail, feedback=fb)
    gone, kept = customers[0], customers[1]
    rec.recommend_many([gone, kept, gone], 4)
    first = rec.recommend(gone, 4).item_ids[0]
    not_interested(fb, pseudonymizer, gone, item_id=first)
    reason_wrong(fb, pseudonymizer, gone, first, "not_relevant")
    not_interested(fb, pseudonymizer, kept, category="Books")
    kg, kk = rec.key_of(gone), rec.key_of(kept)
    assert trail.count(kg) == 3 and len(fb.records(kg)) == 2
    removed = rec.forget(gone)
    assert removed["audit_records"] == 3 and removed["feedback_records"] == 2
    assert trail.count(kg) == 0 and fb.records(kg) == []
    assert trail.count(kk) == 1 and len(fb.records(kk)) == 1, "only the erased customer's"


def test_forget_command_erases_the_audit_trail(small_shop, tmp_path, monkeypatch) -> None:
    """The CLI erasure (model directory + state directory) reaches the trail and feedback too."""
    from recsys.cli.main import main
    from recsys.data.loaders import write_dataset
    from recsys.data.synthetic import ShopSpec, make_shop
    from recsys.privacy.consent import SQLiteConsentStore
    from recsys.privacy.erasure import forget
    from recsys.privacy.pseudonym import Pseudonymizer

    state = tmp_path / "state"
    monkeypatch.setenv("RECSYS_STATE_DIR", str(state))
    monkeypatch.delenv("RECSYS_PSEUDONYM_KEY", raising=False)
    ds = make_shop(ShopSpec(n_users=120, n_items=60, seed=5))
    write_dataset(ds, tmp_path / "shop")
    model = str(tmp_path / "model")
    assert main(["train", "--data", str(tmp_path / "shop"), "--out", model,
                 "--now", "2026-12-01"]) == 0  # fmt: skip
    ps = Pseudonymizer.from_file(state / "pseudonym.key")
    user = str(ds.users["user_id"].iloc[0])
    trail, fb = SQLiteAuditTrail(state / "state.sqlite"), FeedbackStore(state / "state.sqlite")
    fb.add(ps(user), "not_interested_item", item_id="I000001")
    trail.record(_Stub(), [ps(user)], [Query(user, 3)], [Recommendations(user)])  # type: ignore[arg-type]
    report = forget(user, ps, SQLiteConsentStore(state / "state.sqlite"), model_dir=model)
    assert report.state == {"audit_records": 1, "feedback_records": 1}
    assert "state database: audit records: 1" in report.to_text()
    assert trail.count(ps(user)) == 0 and fb.records(ps(user)) == []


class _Stub:
    """The fields of a FittedModel the trail reads (picklable, cheap)."""

    config = SimpleNamespace(model_dump_json=lambda: "{}")
    cutoff = 0
    key_id = "k"
    feature_names = ("a",)
    training: ClassVar[dict] = {}
    purpose = "recommendations"
    policy = SimpleNamespace(
        model_dump_json=lambda: "{}",
        purposes={"recommendations": SimpleNamespace(retention_days=30)},
    )


def _writer(path: str, worker: int, blocks: int, per_block: int) -> None:
    from recsys.types import Reason, Recommendation

    trail = SQLiteAuditTrail(path)
    stub = _Stub()
    for b in range(blocks):
        keys = [f"p{worker}-{b}-{n}" for n in range(per_block)]
        qs = [Query(k, 2, request_id=k) for k in keys]
        lists = [
            Recommendations(
                k,
                tuple(Recommendation(f"I{r}", 0.5, r + 1, Reason(f"r{r}")) for r in range(2)),
                request_id=k,
            )
            for k in keys
        ]
        trail.record(stub, keys, qs, lists)  # type: ignore[arg-type]


def test_two_processes_writing_at_once_lose_no_record(tmp_path: Path) -> None:
    path = str(tmp_path / "state.sqlite")
    SQLiteAuditTrail(path).count()  # the schema exists before the race
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_writer, args=(path, w, 40, 5)) for w in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=120)
        assert p.exitcode == 0
    trail = SQLiteAuditTrail(path)
    lists = trail.lists()
    assert len(lists) == 2 * 40 * 5
    assert len({lst["request_id"] for lst in lists}) == 400
    assert all(len(lst["items"]) == 2 for lst in lists)
