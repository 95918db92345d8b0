"""ModelHandle: atomic swaps, manifest info, refused artifacts (index file included)."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from recsys.cli.main import main
from recsys.errors import ArtifactError, ArtifactFormatError, ArtifactIntegrityError
from recsys.model.artifacts import (
    ARRAYS,
    FORMAT_VERSION,
    INDEX,
    MANIFEST,
    POINTER,
    VERSIONS,
    sha256,
    sign_manifest,
)
from recsys.service.handle import ModelHandle
from tests.conftest import KEY
from tests.model.test_artifacts import flip_positions
from tests.service.conftest import consenting_users


def published(model_dir: Path) -> Path:
    return model_dir / VERSIONS / (model_dir / POINTER).read_text().split()[0]


def repoint(model_dir: Path) -> None:
    import hashlib

    vdir = published(model_dir)
    digest = hashlib.sha256((vdir / MANIFEST).read_bytes()).hexdigest()
    (model_dir / POINTER).write_text(f"{vdir.name} {digest}\n")


def test_the_manifest_is_exposed_with_every_file_digest(handle, model_copy) -> None:
    info = handle.current.info.to_dict()
    vdir = published(model_copy[0])
    assert info["version"] == vdir.name == "000001"
    assert info["format_version"] == FORMAT_VERSION
    assert info["files"] == {ARRAYS: sha256(vdir / ARRAYS), INDEX: sha256(vdir / INDEX)}
    assert len(info["data_fingerprint"]) == 64 and len(info["policy_hash"]) == 64
    assert info["package_versions"]["recsys"] and info["training"]["examples"] > 0
    assert info["index"]["kind"] == "hnsw" and info["index"]["items"] > 0


@pytest.mark.parametrize("damage", ["flip", "truncate"])
def test_a_damaged_index_file_is_refused(model_copy, pseudonymizer, damage: str) -> None:
    path, store = model_copy
    f = published(path) / INDEX
    original = f.read_bytes()
    positions = flip_positions(len(original), 20) if damage == "flip" else [0]
    for pos in positions:
        data = bytearray(original)
        if damage == "flip":
            data[pos] ^= 1 << (pos % 8)
        else:
            data = data[: len(data) // 2]
        f.write_bytes(bytes(data))
        with pytest.raises(ArtifactIntegrityError, match=INDEX) as err:
            ModelHandle(path, pseudonymizer=pseudonymizer, consent=store)
        assert "\n" not in str(err.value)
    f.write_bytes(original)
    ModelHandle(path, pseudonymizer=pseudonymizer, consent=store)  # the refusals were the damage


def test_an_index_file_missing_from_the_manifest_is_refused(model_copy, pseudonymizer) -> None:
    path, store = model_copy
    mf = published(path) / MANIFEST
    body = json.loads(mf.read_text())
    body.pop("hmac")
    body["files"].pop(INDEX)  # a key holder drops the index from the list: still refused
    mf.write_bytes(sign_manifest(body, pseudonymizer))
    repoint(path)
    with pytest.raises(ArtifactError, match="expected exactly"):
        ModelHandle(path, pseudonymizer=pseudonymizer, consent=store)


def test_a_newer_format_is_refused_clearly(model_copy, pseudonymizer) -> None:
    path, store = model_copy
    mf = published(path) / MANIFEST
    body = json.loads(mf.read_text())
    body.pop("hmac")
    body["format_version"] = FORMAT_VERSION + 1
    mf.write_bytes(sign_manifest(body, pseudonymizer))
    repoint(path)
    with pytest.raises(ArtifactFormatError, match="upgrade recsys"):
        ModelHandle(path, pseudonymizer=pseudonymizer, consent=store)


@pytest.mark.parametrize("damage", ["index", "arrays", "newer"])
def test_serve_refuses_to_start_with_one_line_and_exit_2(
    model_copy, pseudonymizer, damage, monkeypatch, capsys
) -> None:
    path, _ = model_copy
    vdir = published(path)
    if damage == "newer":
        body = json.loads((vdir / MANIFEST).read_text())
        body.pop("hmac")
        body["format_version"] = FORMAT_VERSION + 1
        (vdir / MANIFEST).write_bytes(sign_manifest(body, pseudonymizer))
        repoint(path)
    else:
        f = vdir / (INDEX if damage == "index" else ARRAYS)
        f.write_bytes(f.read_bytes()[:-100])  # truncated
    monkeypatch.setenv("RECSYS_PSEUDONYM_KEY", KEY.decode())
    assert main(["serve", "--model", str(path), "--port", "1"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("recsys: error: ") and err.count("\n") == 1


def test_several_workers_refuse_to_go_without_watching(model_copy, monkeypatch, capsys) -> None:
    """A reload request reaches one worker of several: the others need the watcher."""
    path, _ = model_copy
    monkeypatch.setenv("RECSYS_PSEUDONYM_KEY", KEY.decode())
    assert main(["serve", "--model", str(path), "--workers", "2", "--watch", "0"]) == 2
    err = capsys.readouterr().err
    assert "--watch 0 needs --workers 1" in err and err.count("\n") == 1


def test_reload_swaps_while_a_request_in_flight_keeps_the_old_model(handle, model_copy) -> None:
    path, _ = model_copy
    old = handle.current
    assert not handle.reload()  # nothing new published
    old.recommender.save(path)  # another process publishes version 2
    assert handle.reload()
    assert handle.version == "000002" and old.info.version == "000001"
    assert len(old.recommender.recommend("U0000001", 5)) == 5  # the old snapshot still serves


def test_a_failed_reload_keeps_serving(handle, model_copy) -> None:
    path, _ = model_copy
    handle.current.recommender.save(path)
    (published(path) / ARRAYS).write_bytes(b"broken")
    with pytest.raises(ArtifactError):
        handle.reload()
    assert handle.version == "000001"


def test_the_watcher_swaps_in_a_published_version(handle, model_copy) -> None:
    import time

    path, _ = model_copy
    handle.watch(0.05)
    handle.current.recommender.save(path)
    for _ in range(400):  # a bound on polls, not a timing assertion
        if handle.version == "000002":
            break
        time.sleep(0.05)
    assert handle.version == "000002"


def test_eight_threads_give_the_sequential_results(handle, small_shop) -> None:
    rec = handle.current.recommender
    users = [*small_shop.users["user_id"].astype(str).tolist()[:40], "NEW-1", "NEW-2"]
    item = str(small_shop.items["item_id"].iloc[5])
    calls = [(u, [{"item_id": item, "event": "view", "time": 1_790_000_000}] if n % 3 else [])
             for n, u in enumerate(users)]  # fmt: skip

    def one(call):
        u, ev = call
        return rec.recommend(u, 10, events=ev)

    sequential = [one(c) for c in calls]
    with ThreadPoolExecutor(8) as pool:
        parallel = list(pool.map(one, calls * 3))
    assert parallel == sequential * 3
    assert consenting_users(small_shop, 1, rec=rec)


def test_changes_never_roll_back_a_version_published_meanwhile(
    handle, model_copy, pseudonymizer, small_shop
) -> None:
    """Another worker erases a customer and publishes; this worker, still serving the version
    before, applies events and saves: the erasure stays (the events go to the newest version).
    A save racing a publish saves nothing and says so."""
    from recsys.data.synthetic import END
    from recsys.errors import StaleModelError
    from recsys.model.artifacts import pointer_of, save_model

    path, store = model_copy
    users = consenting_users(small_shop, n=3, rec=handle.current.recommender)
    gone, user = users[0], users[1]
    key = handle.current.recommender.key_of(gone)
    item = str(small_shop.items["item_id"].iloc[5])
    event = {"user_id": user, "item_id": item, "event": "view", "time": END.isoformat()}
    other = ModelHandle(path, pseudonymizer=pseudonymizer, consent=store)  # a second worker
    other.forget(gone)
    erased = other.save()
    assert handle.current.recommender.model_.ctx.history.users.get(key) >= 0  # not caught up
    assert handle.update([event]).applied == 1
    saved = handle.save()
    assert saved > erased
    fresh = ModelHandle(path, pseudonymizer=pseudonymizer, consent=store).current
    assert fresh.info.version == saved
    assert fresh.recommender.model_.ctx.history.users.get(key) < 0  # still erased

    handle.update([event])  # then another process publishes before this save
    rec = other.current.recommender
    save_model(rec.model_, path, signer=rec.pseudonymizer)
    published_now = pointer_of(path)
    with pytest.raises(StaleModelError, match="nothing saved"):
        handle.save()
    assert pointer_of(path) == published_now  # nothing replaced it
    assert handle.current.pointer == published_now  # the newest version is served instead
