"""A small shop with an extra item column the policy allows, fitted once for the rules tests."""

from __future__ import annotations

import numpy as np
import pytest

from recsys.config import RecommenderConfig
from recsys.data.synthetic import END, ShopSpec, make_shop
from recsys.privacy import Policy
from recsys.privacy.consent import SQLiteConsentStore
from recsys.recommender import Recommender
from tests.conftest import KEY

ORIGINS = np.array(["Kenya", "Peru", "Italy", "Japan"], dtype=object)

FAST = """
[collaborative]
factors = 16
iterations = 8
[ranker]
max_iter = 60
[[candidates.sources]]
kind = "collaborative"
n = 60
[[candidates.sources]]
kind = "trending"
n = 20
[[candidates.sources]]
kind = "rebuy"
[[candidates.sources]]
kind = "content"
n = 10
"""


def policy_with(column: str) -> Policy:
    """The default policy, letting the recommendations purpose read one more item column."""
    raw = Policy.default().model_dump()
    for purpose in ("recommendations", "email_offers", "evaluation"):
        raw["purposes"][purpose]["fields"]["items"].append(column)
    return Policy.model_validate(raw)


@pytest.fixture(scope="session")
def rules_shop():
    ds = make_shop(ShopSpec(n_users=240, n_items=90, seed=11))
    ds.items["origin"] = ORIGINS[np.arange(len(ds.items)) % len(ORIGINS)]
    return ds


@pytest.fixture(scope="session")
def rules_policy() -> Policy:
    return policy_with("origin")


@pytest.fixture(scope="session")
def rules_rec(rules_shop, rules_policy, tmp_path_factory):
    from recsys.privacy import Pseudonymizer

    store = SQLiteConsentStore(tmp_path_factory.mktemp("rules") / "state.sqlite")
    cfg = RecommenderConfig.from_toml(FAST)
    rec = Recommender(cfg, policy=rules_policy, pseudonymizer=Pseudonymizer(KEY), consent=store)
    return rec.fit(rules_shop, now=END)
