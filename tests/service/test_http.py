"""The HTTP service: every endpoint, 4xx for bad requests (schemathesis finds no 5xx), the model
version in every response, and a real server with two workers swapping models under load."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

pytest.importorskip("fastapi")
from fastapi.testclient import TestClient

from recsys.service.app import create_app
from tests.conftest import KEY
from tests.service.conftest import NOW, consenting_users

TOKEN = "test-admin-token"


@pytest.fixture
def client(handle):
    with TestClient(create_app(handle, token=TOKEN)) as c:
        yield c


def test_get_and_post_recommendations_carry_the_model_version(client, handle, small_shop):
    user = consenting_users(small_shop, 1, rec=handle.current.recommender)[0]
    r = client.get(f"/v1/users/{user}/recommendations", params={"k": 3})
    assert r.status_code == 200
    body = r.json()
    assert r.headers["x-model-version"] == body["model_version"] == "000001"
    assert body["personalized"] and len(body["items"]) == 3
    assert all(i["reason"] and i["explanation"]["evidence"] is not None for i in body["items"])
    item = str(small_shop.items["item_id"].iloc[21])
    post = client.post(
        "/v1/recommendations",
        json={
            "user_id": user, "k": 3, "exclude": [body["items"][0]["item_id"]],
            "context": {"time": NOW + 60, "basket": []},
            "events": [{"item_id": item, "event": "view", "time": NOW}],
        },
    )  # fmt: skip
    assert post.status_code == 200
    assert body["items"][0]["item_id"] not in [i["item_id"] for i in post.json()["items"]]
    same = handle.current.recommender.recommend(
        user, 3, exclude=[body["items"][0]["item_id"]], as_of=NOW + 60,
        events=[{"item_id": item, "event": "view", "time": NOW}],
    )  # fmt: skip
    assert [i["item_id"] for i in post.json()["items"]] == same.item_ids
    assert post.json()["ignored_events"] == 0 and post.json()["shortfall"] == 0
    unknown = {"item_id": "NO-SUCH-ITEM", "event": "view", "time": NOW}
    both = client.post(
        "/v1/recommendations",
        json={"user_id": user, "k": 3, "events": [unknown, unknown | {"item_id": item}]},
    )
    assert both.status_code == 200 and both.json()["ignored_events"] == 1  # counted, not lost


def test_explanation_consent_and_fallback(client, handle, small_shop):
    user = consenting_users(small_shop, 1, rec=handle.current.recommender)[0]
    item = str(small_shop.items["item_id"].iloc[0])
    r = client.get(f"/v1/users/{user}/items/{item}/explanation")
    assert r.status_code == 200 and r.json()["item"]["item_id"] == item
    assert client.get(f"/v1/users/{user}/items/NOPE/explanation").status_code == 404
    c = client.put(f"/v1/users/{user}/consent", json={"personalization": False})
    assert c.status_code == 200 and c.json()["personalization"] is False
    r = client.get(f"/v1/users/{user}/recommendations").json()
    assert not r["personalized"] and "you chose not" in r["items"][0]["reason"]
    r = client.get("/v1/users/SOMEONE-NEW/recommendations").json()
    assert not r["personalized"] and "we do not know you yet" in r["items"][0]["reason"]


@pytest.mark.parametrize(
    "body",
    [
        {"k": 0},
        {"k": "ten"},
        {"k": 100_000},
        {"surprise": 1},
        {"events": [{"item_id": "I000001", "event": "buy", "time": NOW}]},
        {"events": [{"item_id": "I000001", "event": "view"}]},
        {"context": {"time": "not a time"}},
        {"context": {"time": NOW}, "events": [{"item_id": "I1", "event": "view", "time": NOW + 1}]},
        {"context": {"weather": "rain"}},
        {"context": {"time": 10**30}},
    ],
)
def test_bad_requests_get_a_4xx_with_a_one_line_message(client, body):
    r = client.post("/v1/recommendations", json={"user_id": "U0000001", **body})
    assert 400 <= r.status_code < 500, r.text
    detail = r.json()["detail"]
    assert isinstance(detail, str) and detail and "\n" not in detail
    assert r.headers["x-model-version"] == "000001"


@pytest.mark.parametrize(("method", "path"), [("get", "/v1/nothing-here"), ("put", "/health")])
def test_unknown_routes_answer_with_the_model_version_too(client, method, path):
    r = getattr(client, method)(path)
    assert r.status_code in (404, 405)
    assert r.json()["model_version"] == r.headers["x-model-version"] == "000001"


def test_admin_endpoints_need_the_token(client, handle, small_shop):
    user = consenting_users(small_shop, 1, rec=handle.current.recommender)[0]
    assert client.delete(f"/v1/users/{user}").status_code == 401
    bad = {"X-Admin-Token": "wrong"}
    assert client.delete(f"/v1/users/{user}", headers=bad).status_code == 401
    ok = {"X-Admin-Token": TOKEN}
    item = str(small_shop.items["item_id"].iloc[3])
    ev = client.post(
        "/v1/events",
        json={"events": [{"user_id": user, "item_id": item, "event": "view", "time": NOW}]},
        headers=ok,
    )
    assert ev.status_code == 200 and ev.json()["applied"] == 1
    assert ev.json()["model_version"] == "000002"  # published: other workers load it
    r = client.delete(f"/v1/users/{user}", headers=ok)
    assert r.status_code == 200 and r.json()["erased"]["events"] > 0 and r.json()["known"]
    assert r.json()["model_version"] == "000003"
    r = client.get(f"/v1/users/{user}/recommendations").json()
    assert not r["personalized"] and "chose not" not in r["items"][0]["reason"]
    with TestClient(create_app(handle, token=None)) as off:
        off_r = off.delete(f"/v1/users/{user}", headers=ok)
        assert off_r.status_code == 403 and "admin.token" in off_r.json()["detail"]


def test_erasing_someone_the_model_never_held_publishes_nothing(client, handle):
    """A tombstone is recorded, but no new version is written (a copy of the whole model that
    every worker would reload) when the model held nothing of theirs; the answer says so."""
    ok = {"X-Admin-Token": TOKEN}
    versions = sorted(p.name for p in (handle.path / "versions").iterdir())
    r = client.delete("/v1/users/never-seen-here", headers=ok)
    assert r.status_code == 200
    body = r.json()
    assert body["known"] is False and not any(body["erased"].values())
    assert body["model_version"] == handle.version == "000001"
    assert sorted(p.name for p in (handle.path / "versions").iterdir()) == versions
    store = handle.current.recommender.consent_store_
    key = handle.current.recommender.pseudonymizer("never-seen-here")
    assert key in store.erased()  # the tombstone: their data is never used again


def test_health_ready_model_and_openapi(client):
    assert client.get("/health").json()["status"] == "ok"
    assert client.get("/ready").json()["status"] == "ready"
    info = client.get("/v1/model").json()["model"]
    assert set(info["files"]) == {"arrays.npz", "ann.hnsw"} and info["data_fingerprint"]
    spec = client.get("/openapi.json").json()
    assert "/v1/recommendations" in spec["paths"] and "/v1/users/{user_id}" in spec["paths"]


def test_schemathesis_finds_no_server_error(handle):
    schemathesis = pytest.importorskip("schemathesis")
    from hypothesis import HealthCheck, Phase, given, settings
    from hypothesis.errors import Unsatisfiable

    schema = schemathesis.openapi.from_asgi("/openapi.json", create_app(handle, token=TOKEN))
    errors = []
    operations = [r.ok() for r in schema.get_all_operations()]
    assert len(operations) >= 10
    for op in operations:
        for mode in (schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE):

            @settings(
                max_examples=15, deadline=None, derandomize=True, database=None,
                suppress_health_check=list(HealthCheck), phases=[Phase.explicit, Phase.generate],
            )  # fmt: skip
            @given(case=op.as_strategy(generation_mode=mode))
            def run(case):
                r = case.call()
                if r.status_code >= 500:
                    errors.append(f"{case.method} {case.path}: {r.status_code} {r.text[:200]}")

            try:
                run()
            except Unsatisfiable:  # nothing to make invalid (an operation without inputs)
                assert mode == schemathesis.GenerationMode.NEGATIVE
    assert errors == []


# --- a real server ------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def server(model_copy, tmp_path):
    """``recsys serve`` with two workers on loopback; stopped (and killed if need be) after."""
    path, store = model_copy
    port = free_port()
    env = {
        **os.environ, "RECSYS_PSEUDONYM_KEY": KEY.decode(), "RECSYS_ADMIN_TOKEN": TOKEN,
        "RECSYS_STATE_DIR": str(tmp_path), "OPENBLAS_NUM_THREADS": "1",
    }  # fmt: skip
    cmd = [sys.executable, "-m", "recsys.cli.main", "serve", "--model", str(path),
           "--port", str(port), "--workers", "2", "--watch", "0.2", "--log-level", "warning"]  # fmt: skip
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):  # bounded: about 60 s at most
            if proc.poll() is not None:
                pytest.fail(f"server exited: {proc.stdout.read().decode()[-500:]}")
            try:
                if httpx.get(f"{base}/ready", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        else:
            pytest.fail("server did not become ready")
        yield base, path, store
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def test_a_hot_swap_under_load_loses_no_request_and_workers_share_consent(
    server, pseudonymizer, small_shop
):
    from recsys.recommender import Recommender

    base, path, store = server
    users = small_shop.users["user_id"].astype(str).tolist()[:30]
    versions: list[str] = []

    def hit(n: int) -> int:
        with httpx.Client(base_url=base, timeout=30) as c:
            ok = 0
            for k in range(25):
                r = c.get(f"/v1/users/{users[(n + k) % len(users)]}/recommendations?k=5")
                ok += r.status_code == 200
                versions.append(r.headers["x-model-version"])
            return ok

    rec = Recommender.load(path, pseudonymizer=pseudonymizer, consent=store)
    with ThreadPoolExecutor(4) as pool:
        futures = [pool.submit(hit, n) for n in range(8)]
        time.sleep(0.5)
        rec.save(path)  # publish version 2 while requests run
        done = [f.result(timeout=120) for f in futures]
    assert done == [25] * 8  # no request lost or failed
    assert "000001" in versions
    with httpx.Client(base_url=base, timeout=30) as c:
        for _ in range(100):  # bounded: both workers poll every 0.2 s
            seen = {c.get("/health").headers["x-model-version"] for _ in range(6)}
            if seen == {"000002"}:
                break
            time.sleep(0.2)
        assert seen == {"000002"}
        user = users[0]
        assert (
            c.put(f"/v1/users/{user}/consent", json={"personalization": False}).status_code == 200
        )
        answers = [c.get(f"/v1/users/{user}/recommendations").json() for _ in range(12)]
    assert not any(a["personalized"] for a in answers)  # whichever worker answered
    assert store.get_many([pseudonymizer(user)])[pseudonymizer(user)].personalization is False


def test_the_server_refuses_to_start_on_a_tampered_model(model_copy, tmp_path):
    path, _ = model_copy
    vdir = next((path / "versions").iterdir())
    f = vdir / "ann.hnsw"
    f.write_bytes(f.read_bytes()[:-1] + bytes([f.read_bytes()[-1] ^ 1]))
    env = {**os.environ, "RECSYS_PSEUDONYM_KEY": KEY.decode(), "RECSYS_STATE_DIR": str(tmp_path)}
    out = subprocess.run(
        [sys.executable, "-m", "recsys.cli.main", "serve", "--model", str(path)],
        env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert out.returncode == 2
    assert out.stderr.startswith("recsys: error: ") and out.stderr.count("\n") == 1
    assert "ann.hnsw" in out.stderr
