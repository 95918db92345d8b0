from __future__ import annotations

import pytest


@pytest.fixture(scope="module")
def shop_rec(small_shop, pseudonymizer, tmp_path_factory):
    """A recommender of its own (tests attach hooks to it), with its own state database."""
    from recsys.data.synthetic import END
    from recsys.privacy.consent import SQLiteConsentStore
    from recsys.recommender import Recommender

    db = tmp_path_factory.mktemp("audit-state") / "state.sqlite"
    rec = Recommender(pseudonymizer=pseudonymizer, consent=SQLiteConsentStore(db))
    return rec.fit(small_shop, now=END), db


@pytest.fixture(scope="module")
def customers(small_shop) -> list[str]:
    """Customers with and without consent, with much and little history."""
    return small_shop.users["user_id"].astype(str).tolist()[:60]
