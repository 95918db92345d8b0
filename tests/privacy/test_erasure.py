"""Erasure leaves no trace; access lists what is stored."""

from __future__ import annotations

import json
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


@pytest.mark.parametrize("purpose", ["email"])
def test_no_offer_without_email_consent(fitted, small_shop, purpose: str) -> None:
    from recsys.batch.offers import email_offers

    rows, report = email_offers(fitted, small_shop.users["user_id"], k=3)
    no_email = set(small_shop.users.loc[~small_shop.users["consent_email"], "user_id"])
    assert no_email and not set(rows["user_id"]) & no_email
    assert report["skipped_no_email_consent"] == len(no_email)
