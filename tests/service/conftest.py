"""A small shop's model with the approximate index on, saved as a model directory."""

from __future__ import annotations

import pytest

from recsys.data.synthetic import END
from recsys.recommender import Recommender

NOW = int(END.timestamp())


@pytest.fixture
def handle(model_copy, pseudonymizer):
    from recsys.service.handle import ModelHandle

    path, store = model_copy
    h = ModelHandle(path, pseudonymizer=pseudonymizer, consent=store)
    yield h
    h.stop()


def consenting_users(small_shop, n: int = 5, rec=None) -> list[str]:
    """The first ``n`` customers who get a personalized list (consent and a history)."""

    if rec is None:
        raise ValueError("pass the recommender to check")
    assert isinstance(rec, Recommender)
    ids = small_shop.users["user_id"].astype(str).tolist()
    return [u for u in ids[:60] if rec.recommend(u, 1).personalized][:n]
