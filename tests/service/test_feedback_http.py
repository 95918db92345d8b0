"""Issue #17 over HTTP: ``POST /v1/feedback`` is stored under the pseudonym, honoured at the
next request, and still honoured after hot swaps; bad input gets a 4xx; logs carry pseudonyms."""

from __future__ import annotations

import logging

import pytest

pytest.importorskip("fastapi")
from fastapi.testclient import TestClient

from recsys.audit import FeedbackStore
from recsys.service.app import create_app
from recsys.service.feedback import feedback_hook
from recsys.service.handle import ModelHandle
from tests.service.conftest import NOW, consenting_users
from tests.service.test_http import server  # noqa: F401  (recsys serve with two workers)

TOKEN = "test-admin-token"


@pytest.fixture
def served(model_copy, pseudonymizer, tmp_path):
    """A client of a server whose handle attaches the state database's feedback store."""
    path, store = model_copy
    db = tmp_path / "state.sqlite"
    h = ModelHandle(path, pseudonymizer=pseudonymizer, consent=store, prepare=feedback_hook(db))
    with TestClient(create_app(h, token=TOKEN)) as c:
        yield c, h, FeedbackStore(db)
    h.stop()


def _items(client: TestClient, user: str, k: int = 5) -> list[str]:
    r = client.get(f"/v1/users/{user}/recommendations", params={"k": k})
    assert r.status_code == 200, r.text
    return [i["item_id"] for i in r.json()["items"]]


def test_feedback_is_honoured_at_the_next_request_and_after_swaps(
    served, small_shop, caplog
) -> None:
    client, handle, store = served
    rec = handle.current.recommender
    user, other = consenting_users(small_shop, 2, rec=rec)
    item = _items(client, user)[0]
    with caplog.at_level(logging.INFO, logger="recsys.service"):
        r = client.post("/v1/feedback",
                        json={"kind": "not_interested", "user_id": user, "item_id": item})  # fmt: skip
    assert r.status_code == 201, r.text
    assert r.json()["recorded"] == "not_interested_item"
    assert r.headers["x-model-version"] == r.json()["model_version"] == "000001"
    assert item not in _items(client, user), "honoured at the next request"
    logged = " ".join(m.getMessage() for m in caplog.records)
    assert rec.key_of(user) in logged and user not in logged, "pseudonyms only in logs"

    cat = rec.model_.ctx.catalog
    category = cat.categories_of(cat.items.get(_items(client, user)[0]))[0]
    r = client.post("/v1/feedback",
                    json={"kind": "not_interested", "user_id": user, "category": category})  # fmt: skip
    assert r.status_code == 201 and r.json()["recorded"] == "not_interested_category"
    r = client.post("/v1/feedback", json={"kind": "reason_wrong", "user_id": user,
                                          "item_id": item, "problem": "too_personal"})  # fmt: skip
    assert r.status_code == 201 and r.json()["recorded"] == "reason_wrong"
    stored = store.records(rec.key_of(user))
    assert [s["kind"] for s in stored] == [
        "not_interested_item", "not_interested_category", "reason_wrong"
    ]  # fmt: skip
    assert stored[2]["problem"] == "too_personal" and store.records(user) == []

    def honoured() -> bool:
        got = _items(client, user, 10)
        return item not in got and all(category not in cat.categories_of(cat.items.get(i))
                                       for i in got)  # fmt: skip

    assert honoured()
    event = {"user_id": other, "item_id": item, "event": "view", "time": NOW}
    ev = client.post("/v1/events", json={"events": [event]}, headers={"X-Admin-Token": TOKEN})
    assert ev.status_code == 200 and ev.json()["model_version"] == "000002"  # fork, then reload
    assert handle.current.recommender is not rec and honoured()
    assert handle.reload(force=True) and honoured()
    assert handle.current.recommender.pipeline.hooks.feedback is not None


@pytest.mark.parametrize(
    "body, status",
    [
        ({"kind": "not_interested", "user_id": "U1"}, 422),
        (
            {"kind": "not_interested", "user_id": "U1", "item_id": "I000001", "category": "Books"},
            422,
        ),
        ({"kind": "not_interested", "user_id": "", "item_id": "I000001"}, 422),
        ({"kind": "not_interested", "user_id": "U1", "item_id": "no-such-item"}, 404),
        ({"kind": "not_interested", "user_id": "U1", "category": "No such category"}, 404),
        ({"kind": "reason_wrong", "user_id": "U1"}, 422),
        ({"kind": "reason_wrong", "user_id": "U1", "item_id": "I000001", "problem": "rude"}, 422),
        ({"kind": "reason_wrong", "user_id": "U1", "item_id": "I000001", "text": "free"}, 422),
        ({"kind": "love_it", "user_id": "U1", "item_id": "I000001"}, 422),
        ({"user_id": "U1", "item_id": "I000001"}, 422),
    ],
)
def test_bad_feedback_gets_a_4xx_with_a_one_line_message(served, body, status) -> None:
    client, _, store = served
    r = client.post("/v1/feedback", json=body)
    assert r.status_code == status, r.text
    detail = r.json()["detail"]
    assert isinstance(detail, str) and detail and "\n" not in detail
    assert store.counts() == {"not_interested_item": 0, "not_interested_category": 0,
                              "reason_wrong": 0}  # fmt: skip


def test_feedback_is_off_without_a_store(handle) -> None:
    with TestClient(create_app(handle, token=TOKEN)) as client:
        r = client.post("/v1/feedback",
                        json={"kind": "not_interested", "user_id": "U1", "item_id": "I000001"})  # fmt: skip
    assert r.status_code == 403 and "feedback is off" in r.json()["detail"]


def test_schemathesis_finds_no_server_error_with_feedback_on(served) -> None:
    schemathesis = pytest.importorskip("schemathesis")
    from hypothesis import HealthCheck, Phase, given, settings

    client, _, _ = served
    schema = schemathesis.openapi.from_asgi("/openapi.json", client.app)
    ops = [r.ok() for r in schema.get_all_operations()]
    ops = [o for o in ops if o.path == "/v1/feedback"]
    errors = []
    for mode in (schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE):

        @settings(
            max_examples=30, deadline=None, derandomize=True, database=None,
            suppress_health_check=list(HealthCheck), phases=[Phase.explicit, Phase.generate],
        )  # fmt: skip
        @given(case=ops[0].as_strategy(generation_mode=mode))
        def run(case) -> None:
            r = case.call()
            if r.status_code >= 500:
                errors.append(f"{case.body!r}: {r.status_code} {r.text[:200]}")

        run()
    assert len(ops) == 1 and errors == []


def test_two_workers_honour_feedback_at_the_next_request(server, small_shop) -> None:  # noqa: F811
    """``recsys serve --workers 2``: each worker's handle attaches the shared feedback store."""
    import httpx

    base, _, _ = server
    users = small_shop.users["user_id"].astype(str).tolist()[:60]
    with httpx.Client(base_url=base, timeout=30) as c:
        lists = {u: c.get(f"/v1/users/{u}/recommendations?k=5").json() for u in users[:20]}
        user = next(u for u, r in lists.items() if r["personalized"])
        item = lists[user]["items"][0]["item_id"]
        body = {"kind": "not_interested", "user_id": user, "item_id": item}
        assert c.post("/v1/feedback", json=body).status_code == 201
        answers = [c.get(f"/v1/users/{user}/recommendations?k=5").json() for _ in range(12)]
    assert all(item not in [i["item_id"] for i in a["items"]] for a in answers)


def test_a_served_model_applies_the_overrides_file_and_records_every_list(
    model_copy, pseudonymizer, tmp_path, small_shop
) -> None:
    """``recsys serve --overrides FILE --audit``: the hook a handle runs on each model it loads."""
    from recsys.audit.trail import SQLiteAuditTrail

    path, store = model_copy
    db = tmp_path / "state.sqlite"
    plain = ModelHandle(path, pseudonymizer=pseudonymizer, consent=store)
    user = consenting_users(small_shop, 1, rec=plain.current.recommender)[0]
    with TestClient(create_app(plain, token=TOKEN)) as c:
        blocked = _items(c, user)[0]
    plain.stop()
    ov = tmp_path / "overrides.toml"
    ov.write_text(f'[[block]]\nitem = "{blocked}"\nnote = "recalled"\n')
    hook = feedback_hook(db, overrides=ov, audit=True)
    h = ModelHandle(path, pseudonymizer=pseudonymizer, consent=store, prepare=hook)
    with TestClient(create_app(h, token=TOKEN)) as c:
        served = _items(c, user)
        assert blocked not in served
        assert h.reload(force=True)
        assert blocked not in _items(c, user)  # still applied after a swap
    h.stop()
    records = SQLiteAuditTrail(db).lists(pseudonymizer(user), limit=10)  # newest first
    assert len(records) == 2
    assert [i["item_id"] for i in records[1]["items"]] == served
