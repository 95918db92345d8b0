from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from recsys.data.synthetic import END
from recsys.errors import ConfigError
from recsys.privacy import MinimizedData, Policy, ProtectedAttributeError, Pseudonymizer, minimize

DEFAULT = Policy.default()


def test_default_policy_round_trips_toml() -> None:
    assert Policy.from_toml(DEFAULT.to_toml()) == DEFAULT


@pytest.mark.parametrize(
    ("patch", "message"),
    [
        ("colour = 'red'\n", "colour"),
        ("[purposes.marketing]\nfields = {}\n", "marketing"),
        ("[purposes.recommendations]\nretention_days = -5\nfields = {}\n", "retention_days"),
    ],
)
def test_policy_errors_are_clear(patch: str, message: str) -> None:
    text = patch + "[purposes.evaluation]\nfields = {}\n" if "purposes" not in patch else patch
    with pytest.raises(ConfigError, match=message):
        Policy.from_toml(text, source="policy.toml")


def test_protected_attribute_cannot_be_listed_for_a_model_purpose() -> None:
    text = """
protected_attributes = ["gender"]
[purposes.recommendations.fields]
users = ["user_id", "gender"]
"""
    with pytest.raises(ConfigError, match="protected"):
        Policy.from_toml(text)


def test_protected_attribute_rejected_as_a_feature() -> None:
    # imported here so that work in progress on recsys.features (a circular import at the time
    # of writing) fails this test only, not the collection of the whole module
    from recsys.features.registry import FEATURES, Feature, check_features

    sneaky = Feature(
        "gender_match", "category", "tries to read gender",
        frozenset({"users.gender"}), lambda *a: np.zeros(1), lambda *a: (),
    )  # fmt: skip
    with pytest.raises(ProtectedAttributeError, match="gender"):
        check_features([*FEATURES, sneaky], DEFAULT, "recommendations")
    audit = Feature(
        "age", "category", "", frozenset({"audit.age_band"}), lambda *a: 0, lambda *a: ()
    )
    with pytest.raises(ProtectedAttributeError, match="protected"):
        check_features([audit], DEFAULT, "recommendations")


def test_minimized_data_refuses_protected_columns(small_shop) -> None:
    m = minimize(small_shop, DEFAULT, "recommendations", now=END)
    with pytest.raises(ProtectedAttributeError, match="gender"):
        MinimizedData(
            m.interactions,
            m.items,
            m.users.assign(gender="f"),
            "recommendations",
            m.as_of,
            m.protected,
        )


def test_minimize_applies_consent_retention_and_cap(small_shop) -> None:
    m = minimize(small_shop, DEFAULT, "recommendations", now=END)
    r = m.report
    inter = m.interactions
    # consent: no event of a user without consent
    no = set(small_shop.users.loc[~small_shop.users["consent_personalization"], "user_id"])
    assert not set(inter["user_id"]) & no and r.removed_by_consent > 0
    # retention: nothing older than the window
    assert inter["timestamp"].min() >= END - pd.Timedelta(days=365)
    # history cap: at most N newest events per user
    cap = DEFAULT.purpose("recommendations").history_cap
    assert inter.groupby("user_id").size().max() <= cap and r.removed_by_history_cap > 0
    assert (
        r.rows_received - r.removed_by_consent - r.removed_by_retention - r.removed_by_history_cap
        == r.rows_kept
    )
    assert r.cells_kept < r.cells_received
    assert "audit" in r.fields_dropped and "signup_at" in r.fields_dropped["users"]


def test_retention_window_removes_old_events(small_shop) -> None:
    later = END + pd.Timedelta(days=200)
    m = minimize(small_shop, DEFAULT, "recommendations", now=later)
    assert m.report.removed_by_retention > 0
    assert m.interactions["timestamp"].min() >= later - pd.Timedelta(days=365)


def test_model_purposes_only() -> None:
    with pytest.raises(ProtectedAttributeError, match="not a model purpose"):
        minimize(None, DEFAULT, "fairness_audit")  # type: ignore[arg-type]


def test_pseudonyms_are_keyed() -> None:
    a, b = Pseudonymizer(b"a" * 20), Pseudonymizer(b"b" * 20)
    assert a("user-1") == a("user-1")
    assert a("user-1") != b("user-1")
    assert "user-1" not in a("user-1")
    with pytest.raises(ConfigError):
        Pseudonymizer(b"short")
    assert "a" * 20 not in repr(a)


def test_key_from_environment(monkeypatch, tmp_path) -> None:
    from recsys.privacy.pseudonym import ENV_KEY, ENV_KEY_FILE, new_key_file

    monkeypatch.delenv(ENV_KEY, raising=False)
    monkeypatch.delenv(ENV_KEY_FILE, raising=False)
    monkeypatch.setenv("RECSYS_STATE_DIR", str(tmp_path / "state"))  # an empty state directory
    with pytest.raises(ConfigError, match=ENV_KEY):
        Pseudonymizer.from_env()
    key = new_key_file(tmp_path / "k")
    monkeypatch.setenv(ENV_KEY_FILE, str(key))
    assert Pseudonymizer.from_env()("x") == Pseudonymizer.from_file(key)("x")
    # without either variable, the state directory's key (the one `recsys train` created)
    monkeypatch.delenv(ENV_KEY_FILE)
    state_key = new_key_file(tmp_path / "state" / "pseudonym.key")
    assert Pseudonymizer.from_env()("x") == Pseudonymizer.from_file(state_key)("x")


def test_weak_ratings_are_dropped_by_policy() -> None:
    from recsys.data import Dataset

    t = pd.Timestamp("2026-10-01", tz="UTC")
    inter = pd.DataFrame(
        {"user_id": ["u"] * 3, "item_id": ["a", "b", "c"], "timestamp": [t] * 3,
         "event": ["rating", "rating", "purchase"], "value": [1.0, 4.0, 1.0]}
    )  # fmt: skip
    items = pd.DataFrame(
        {"item_id": ["a", "b", "c"], "title": ["A", "B", "C"], "category": ["x"] * 3}
    )
    users = pd.DataFrame(
        {"user_id": ["u"], "consent_personalization": [True], "consent_email": [True]}
    )
    m = minimize(Dataset(inter, items, users), DEFAULT, "recommendations", now=t)
    assert sorted(m.interactions["item_id"]) == ["b", "c"]  # a 1-star rating goes, a purchase stays
    assert m.report.removed_by_min_rating == 1


CONSENTLESS = """
[purposes.{purpose}]
retention_days = 30
[purposes.{purpose}.fields]
interactions = ["user_id", "item_id", "timestamp", "event"]
"""


@pytest.mark.parametrize("purpose", ["recommendations", "email_offers"])
def test_policy_check_refuses_a_purpose_without_consent(tmp_path, capsys, purpose: str) -> None:
    from recsys.cli.main import main

    f = tmp_path / "p.toml"
    f.write_text(CONSENTLESS.format(purpose=purpose))
    assert Policy.from_toml(f.read_text()).consent_problems()
    assert main(["policy", "check", str(f)]) == 2
    err = capsys.readouterr().err
    assert str(f) in err and purpose in err and "no consent requirement" in err


def test_policy_check_accepts_the_default_policy(tmp_path, capsys) -> None:
    from recsys.cli.main import main

    f = tmp_path / "p.toml"
    f.write_text(DEFAULT.to_toml())
    assert DEFAULT.consent_problems() == []
    assert main(["policy", "check", str(f)]) == 0
    assert "valid" in capsys.readouterr().out
    # evaluation and fairness_audit act on no customer: no consent needed to check them
    f.write_text(CONSENTLESS.format(purpose="evaluation"))
    assert main(["policy", "check", str(f)]) == 0
