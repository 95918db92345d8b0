"""Erasure leaves no trace; access lists what is stored."""

from __future__ import annotations

import json
import tempfile
import threading
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from recsys.cli.main import main
from recsys.data import write_dataset
from recsys.data.synthetic import END
from recsys.privacy.consent import SQLiteConsentStore
from recsys.privacy.erasure import export_user, forget
from recsys.recommender import Recommender
from tests.conftest import KEY


def heavy_user(shop) -> str:
    consenting = set(shop.users.loc[shop.users["consent_personalization"], "user_id"])
    counts = shop.interactions["user_id"].value_counts()
    return next(u for u in counts.index if u in consenting)


def encodings(s: str) -> list[bytes]:
    return [s.encode("utf-8"), s.encode("utf-32-le"), s.encode("utf-16-le")]


def files_mention(directory: Path, needles: list[bytes]) -> list[str]:
    return [
        str(p)
        for p in directory.rglob("*")
        if p.is_file() and any(n in p.read_bytes() for n in needles)
    ]


def test_forget_leaves_no_trace_in_any_artifact_file(
    small_shop, pseudonymizer, tmp_path: Path
) -> None:
    user = heavy_user(small_shop)
    pseudonym = pseudonymizer(user)
    needles = encodings(user) + encodings(pseudonym)
    store = SQLiteConsentStore(tmp_path / "state.sqlite")
    rec = Recommender(pseudonymizer=pseudonymizer, consent=store).fit(small_shop, now=END)
    model = rec.save(tmp_path / "model")
    data = tmp_path / "data"
    write_dataset(small_shop, data)
    assert files_mention(model, encodings(pseudonym))  # the check can fail: the id is there now
    others_before = rec.model_.ctx.collab.user_factors_.copy()

    report = forget(user, pseudonymizer, store, model_dir=model, data_dir=data)
    assert report.model["events"] > 0 and report.model["items_resolved"] > 0
    assert sum(report.data_rows.values()) > 0
    assert user not in report.to_text()
    assert files_mention(model, needles) == []
    assert files_mention(data, needles) == []
    assert store.erased() == {pseudonym}  # the tombstone holds the pseudonym only
    assert files_mention(tmp_path, encodings(user)) == []  # nor is the raw id anywhere else
    assert not store.get_many([pseudonym])  # the consent record is gone

    after = Recommender.load(model, pseudonymizer=pseudonymizer, consent=store)
    assert not after.recommend(user).personalized
    # other users keep their factors; only the erased row is gone
    u = rec.model_.ctx.history.users.get(pseudonym)
    assert np.array_equal(
        np.delete(others_before, u, axis=0), after.model_.ctx.collab.user_factors_
    )


def test_next_training_leaves_erased_users_out(small_shop, pseudonymizer) -> None:
    user = heavy_user(small_shop)
    rec = Recommender(pseudonymizer=pseudonymizer, consent=SQLiteConsentStore.in_memory()).fit(
        small_shop, now=END, erased={pseudonymizer(user)}
    )
    assert rec.model_.ctx.history.users.get(pseudonymizer(user)) == -1
    assert rec.model_.minimization["removed_by_erasure"] > 0


def test_erasure_recorded_in_the_store_is_honoured_by_the_next_training(
    small_shop, pseudonymizer, tmp_path: Path
) -> None:
    store = SQLiteConsentStore(tmp_path / "state.sqlite")
    rec = Recommender(pseudonymizer=pseudonymizer, consent=store).fit(small_shop, now=END)
    user = heavy_user(small_shop)
    rec.forget(user)
    assert not rec.recommend(user).personalized
    again = Recommender(pseudonymizer=pseudonymizer, consent=store).fit(small_shop, now=END)
    assert again.model_.ctx.history.users.get(pseudonymizer(user)) == -1


def test_resolved_items_come_close_to_retraining(small_shop, pseudonymizer) -> None:
    """Touched items' scores after forget are within the noise of retraining with another seed."""
    from recsys.config import RecommenderConfig

    user = heavy_user(small_shop)
    p = pseudonymizer(user)
    rec = Recommender(pseudonymizer=pseudonymizer, consent=SQLiteConsentStore.in_memory()).fit(
        small_shop, now=END
    )
    h = rec.model_.ctx.history
    touched = np.unique(h.item[h.span(h.users.get(p))])
    original = rec.model_.ctx.collab.item_factors_[touched].copy()
    rec.forget(user)
    retrained = [
        Recommender(
            RecommenderConfig.model_validate({"collaborative": {"random_state": seed}}),
            pseudonymizer=pseudonymizer,
            consent=SQLiteConsentStore.in_memory(),
        ).fit(small_shop, now=END, erased={p})
        for seed in (0, 1)
    ]

    def scores(r: Recommender) -> np.ndarray:
        c = r.model_.ctx.collab
        return c.user_factors_ @ c.item_factors_[touched].T

    def rel(a: np.ndarray, b: np.ndarray) -> float:
        return float(np.abs(a - b).mean() / np.abs(b).mean())

    users = rec.model_.ctx.collab.user_factors_
    before = rel(users @ original.T, scores(retrained[0]))
    after = rel(scores(rec), scores(retrained[0]))
    print(f"relative score error vs retrained: before {before:.4f}, after {after:.4f}")
    assert after < 0.5 * before  # the re-solve removes most of the user's imprint
    assert after < 0.02  # stated tolerance: 2% mean relative score difference


def test_export_lists_everything_stored(small_shop, pseudonymizer, fitted) -> None:
    user = heavy_user(small_shop)
    out = export_user(user, pseudonymizer, model=fitted, data=small_shop)
    n_model = len(out["model"]["events"])
    cap = fitted.model_.policy.purpose("recommendations").history_cap
    assert n_model == min(cap, (small_shop.interactions["user_id"] == user).sum())  # history cap
    assert len(out["data"]["interactions"]) == (small_shop.interactions["user_id"] == user).sum()
    assert out["data"]["audit"][0]["user_id"] == user
    assert "collab_z" in out["model"]["how_recommendations_are_made"]["features"]
    json.dumps(out)


def test_cli_forget_export_and_policy(small_shop, tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("RECSYS_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("RECSYS_PSEUDONYM_KEY", KEY.decode())
    write_dataset(small_shop, "data")
    assert main(["train", "--data", "data", "--out", "model", "--now", "2026-11-01"]) == 0
    user = heavy_user(small_shop)
    capsys.readouterr()
    assert main(["export", user, "--model", "model", "--data", "data"]) == 0
    exported = json.loads(capsys.readouterr().out)
    assert exported["model"]["events"]
    assert main(["forget", user, "--model", "model", "--data", "data"]) == 0
    out = capsys.readouterr().out
    assert "tombstone recorded in the consent store" in out and user not in out
    assert user not in set(pd.read_parquet("data/interactions.parquet")["user_id"])
    assert main(["train", "--data", "data", "--out", "model2", "--now", "2026-11-01"]) == 0
    assert (
        main(
            [
                "policy",
                "check",
                str(Path(__file__).parents[2] / "recsys/privacy/default_policy.toml"),
            ]
        )
        == 0
    )
    Path("bad.toml").write_text("[purposes.recommendations]\nretention_days = -1\nfields = {}\n")
    capsys.readouterr()
    assert main(["policy", "check", "bad.toml"]) == 2
    assert (
        "bad.toml: invalid policy: purposes.recommendations.retention_days"
        in capsys.readouterr().err
    )


# --- issue #10: races, id normalization, exit codes, failures part-way, keys -------------------
class PausingStore:
    """A consent store whose first lookup from the thread named ``pause_in`` (at
    ``method``) waits until the test lets it go: a request paused in the middle of its life."""

    def __init__(self, inner: SQLiteConsentStore, method: str, pause_in: str) -> None:
        self.inner, self.method, self.pause_in = inner, method, pause_in
        self.reached, self.resume = threading.Event(), threading.Event()

    def __getattr__(self, name: str):
        real = getattr(self.inner, name)
        if name != self.method:
            return real

        def paused(*args, **kwargs):
            if threading.current_thread().name == self.pause_in and not self.reached.is_set():
                self.reached.set()
                assert self.resume.wait(60), "the test never resumed the paused call"
            return real(*args, **kwargs)

        return paused


def test_forget_during_a_request_never_serves_another_customers_list(
    small_shop, pseudonymizer
) -> None:
    """Replays the race of issue #10 step by step: a request has read the model (and the user's
    index in it), ``forget`` then swaps in a model without an earlier user, so every later index
    shifts by one, and only then does the request score and explain."""
    store = PausingStore(SQLiteConsentStore.in_memory(), "get_many", pause_in="request")
    rec = Recommender(pseudonymizer=pseudonymizer, consent=store).fit(small_shop, now=END)
    users = rec.model_.ctx.history.users
    by_key = {pseudonymizer(u): u for u in small_shop.users["user_id"]}
    order = [by_key[k] for k in users.ids]  # customers in the model's index order
    personal = [u for u in order if rec.recommend(u, 10).personalized]
    erased, requester = personal[0], personal[5]
    u = users.get(pseudonymizer(requester))
    shifted_into = order[u + 1]  # after the swap, the requester's old index is this customer's
    before = rec.recommend(requester, 10)

    result: list = []
    request = threading.Thread(
        target=lambda: result.append(rec.recommend(requester, 10)), name="request"
    )
    request.start()
    assert store.reached.wait(60)  # the request has its state and is paused mid-way
    rec.forget(erased)  # the swap happens while the request is in flight
    store.resume.set()
    request.join()

    after = rec.recommend(requester, 10)
    wrong = rec.recommend(shifted_into, 10)
    assert rec.model_.ctx.history.users.get(pseudonymizer(erased)) == -1  # forget took effect
    assert wrong.item_ids != before.item_ids  # a mixed state would be visible
    (served,) = result
    assert served in (before, after)  # one state for the whole request


def test_two_forgets_at_once_both_hold(small_shop, pseudonymizer) -> None:
    """The second forget must start from the first one's model, or it would put the first
    customer back."""
    store = PausingStore(SQLiteConsentStore.in_memory(), "mark_erased", pause_in="first")
    rec = Recommender(pseudonymizer=pseudonymizer, consent=store).fit(small_shop, now=END)
    consenting = small_shop.users.loc[small_shop.users["consent_personalization"], "user_id"]
    a, b = [u for u in consenting if rec.model_.ctx.history.users.get(pseudonymizer(u)) >= 0][:2]
    first = threading.Thread(target=rec.forget, args=(a,), name="first")
    first.start()
    assert store.reached.wait(60)  # the first forget is inside its read-modify-swap
    second = threading.Thread(target=rec.forget, args=(b,), name="second")
    second.start()
    second.join(0.5)  # with the lock it waits; without, it would swap first (and be undone)
    store.resume.set()
    first.join()
    second.join()
    users = rec.model_.ctx.history.users
    assert users.get(pseudonymizer(a)) == -1 and users.get(pseudonymizer(b)) == -1


def test_the_facade_erases_ids_as_the_loader_reads_them(fitted, small_shop, pseudonymizer):
    user = heavy_user(small_shop)
    rec = Recommender.load(
        fitted.save(Path(tempfile.mkdtemp()) / "m"), pseudonymizer=pseudonymizer,
        consent=SQLiteConsentStore.in_memory(),
    )  # fmt: skip
    assert rec.forget(f"  {user} ")["events"] > 0


@pytest.fixture
def cli_env(tmp_path: Path, monkeypatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("RECSYS_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("RECSYS_PSEUDONYM_KEY", KEY.decode())
    return tmp_path


def numeric_ids(shop):
    """The shop with user ids as Parquet floats (12.0), as exports with gaps in an id column
    produce them."""
    ids = {u: float(i + 10) for i, u in enumerate(shop.users["user_id"])}
    out = {}
    for name in ("interactions", "users", "audit"):
        df = getattr(shop, name).copy()
        df["user_id"] = df["user_id"].map(ids).astype("float64")
        out[name] = df
    return out, ids


def test_cli_forget_matches_float_ids_in_parquet(small_shop, cli_env: Path, capsys) -> None:
    tables, ids = numeric_ids(small_shop)
    Path("data").mkdir()
    for name, df in tables.items():
        df.to_parquet(f"data/{name}.parquet", index=False)
    small_shop.items.to_parquet("data/items.parquet", index=False)
    assert main(["train", "--data", "data", "--out", "model", "--now", "2026-11-01"]) == 0
    user = heavy_user(small_shop)
    typed = f" {int(ids[user])} "  # as a person types it: '12', spaces around
    capsys.readouterr()
    assert main(["forget", typed, "--model", "model", "--data", "data"]) == 0
    out = capsys.readouterr().out
    assert "data: data/interactions.parquet" in out and "model: events:" in out
    for name in ("interactions", "users", "audit"):
        assert ids[user] not in set(pd.read_parquet(f"data/{name}.parquet")["user_id"])
    from recsys.model.artifacts import load_model
    from recsys.privacy import Pseudonymizer
    from tests.conftest import KEY as key

    model = load_model(Path("model"), pseudonymizer=Pseudonymizer(key))
    assert model.ctx.history.users.get(Pseudonymizer(key)(str(int(ids[user])))) == -1


def test_cli_forget_matches_ids_with_spaces_in_csv(small_shop, cli_env: Path, capsys) -> None:
    write_dataset(small_shop, "data", fmt="csv")
    inter = pd.read_csv("data/interactions.csv", dtype=str, keep_default_na=False)
    inter["user_id"] = " " + inter["user_id"] + "  "
    inter.to_csv("data/interactions.csv", index=False)
    user = heavy_user(small_shop)
    assert main(["forget", user, "--data", "data"]) == 0
    left = pd.read_csv("data/interactions.csv", dtype=str, keep_default_na=False)
    assert len(left) < len(inter) and user not in set(left["user_id"].str.strip())


def test_cli_forget_an_unknown_id_exits_3(small_shop, cli_env: Path, capsys) -> None:
    write_dataset(small_shop, "data")
    assert main(["train", "--data", "data", "--out", "model", "--now", "2026-11-01"]) == 0
    capsys.readouterr()
    assert main(["forget", "U9999999", "--model", "model", "--data", "data"]) == 3
    captured = capsys.readouterr()
    assert captured.out.startswith("unknown user") and "erased" not in captured.out
    assert "unknown user 'U9999999' (exit code 3)" in captured.err


def test_a_failure_part_way_keeps_the_tombstone(small_shop, cli_env: Path, capsys) -> None:
    write_dataset(small_shop, "data")
    assert main(["train", "--data", "data", "--out", "model", "--now", "2026-11-01"]) == 0
    user = heavy_user(small_shop)
    interactions = Path("data/interactions.parquet").read_bytes()
    good_users = Path("data/users.parquet").read_bytes()
    Path("data/users.parquet").write_bytes(b"PAR1 this is not parquet")
    capsys.readouterr()
    assert main(["forget", user, "--model", "model", "--data", "data"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("recsys: error: erasure incomplete") and err.count("\n") == 1
    assert "users.parquet" in err and "tombstone is recorded" in err
    assert Path("data/interactions.parquet").read_bytes() == interactions  # nothing half-done
    store = SQLiteConsentStore(cli_env / "state" / "state.sqlite")
    from recsys.privacy import Pseudonymizer

    assert Pseudonymizer(KEY)(user) in store.erased()  # ... but the tombstone is there
    Path("data/users.parquet").write_bytes(good_users)
    assert main(["train", "--data", "data", "--out", "again", "--now", "2026-11-01"]) == 0
    from recsys.model.artifacts import load_model

    again = load_model(Path("again"), pseudonymizer=Pseudonymizer(KEY))
    assert again.ctx.history.users.get(Pseudonymizer(KEY)(user)) == -1


def test_training_with_a_new_key_refuses_to_relearn_erased_users(
    small_shop, cli_env: Path, monkeypatch, capsys
) -> None:
    write_dataset(small_shop, "data")
    user = heavy_user(small_shop)
    assert main(["forget", user, "--data", "data"]) == 0
    write_dataset(small_shop, "data")  # the shop re-exports its data, the customer included
    monkeypatch.setenv("RECSYS_PSEUDONYM_KEY", "a-brand-new-key-0123456789")
    capsys.readouterr()
    assert main(["train", "--data", "data", "--out", "model", "--now", "2026-11-01"]) == 2
    err = capsys.readouterr().err
    assert "refusing to train: 1 erased customer(s)" in err and err.count("\n") == 1
    assert not Path("model").exists()
    monkeypatch.setenv("RECSYS_PSEUDONYM_KEY", KEY.decode())  # the key they were made with
    assert main(["train", "--data", "data", "--out", "model", "--now", "2026-11-01"]) == 0
    from recsys.model.artifacts import load_model
    from recsys.privacy import Pseudonymizer

    model = load_model(Path("model"), pseudonymizer=Pseudonymizer(KEY))
    assert model.ctx.history.users.get(Pseudonymizer(KEY)(user)) == -1
    assert model.ctx.history.users.get(Pseudonymizer(KEY)(small_shop.users["user_id"][0])) >= 0


def test_training_from_another_directory_does_not_relearn_erased_users(
    small_shop, tmp_path: Path, monkeypatch
) -> None:
    monkeypatch.delenv("RECSYS_STATE_DIR", raising=False)
    monkeypatch.delenv("RECSYS_PSEUDONYM_KEY", raising=False)
    monkeypatch.delenv("RECSYS_PSEUDONYM_KEY_FILE", raising=False)
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "xdg"))
    write_dataset(small_shop, tmp_path / "data")
    data = str(tmp_path / "data")
    user = heavy_user(small_shop)
    (tmp_path / "one").mkdir()
    (tmp_path / "two").mkdir()
    monkeypatch.chdir(tmp_path / "one")
    assert main(["train", "--data", data, "--out", "model", "--now", "2026-11-01"]) == 0
    assert main(["forget", user, "--model", "model"]) == 0  # the data keeps the customer
    monkeypatch.chdir(tmp_path / "two")
    assert main(["train", "--data", data, "--out", "model", "--now", "2026-11-01"]) == 0
    assert not (tmp_path / "two" / ".recsys").exists()  # no second key by accident
    from recsys.model.artifacts import load_model
    from recsys.privacy import Pseudonymizer

    ps = Pseudonymizer.from_file(tmp_path / "xdg" / "recsys" / "pseudonym.key")
    model = load_model(tmp_path / "two" / "model", pseudonymizer=ps)
    assert model.ctx.history.users.get(ps(user)) == -1
    assert model.minimization["removed_by_erasure"] > 0
