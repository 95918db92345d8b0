"""The output types: columnar attributions read like the tuple of pairs they stand for."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pytest

from recsys.types import Attributions, Evidence, Fact, Reason, Recommendation


def test_attributions_read_compare_and_pickle_like_pairs() -> None:
    names, values = ("collab_z", "trending"), (0.25, -0.5)
    a = Attributions(names, values)
    pairs = (("collab_z", 0.25), ("trending", -0.5))
    assert tuple(a) == pairs and a == pairs and a == Attributions(list(names), list(values))
    assert a != (("collab_z", 0.25),) and a != Attributions(names, (0.25, 0.5))
    assert hash(a) == hash(pairs) and dict(a) == dict(pairs)
    assert len(a) == 2 and a[1] == ("trending", -0.5) and a[:1] == pairs[:1]
    assert pickle.loads(pickle.dumps(a)) == a
    r = Recommendation("I1", -0.25, 1, Reason("r"), a)
    assert r == Recommendation("I1", -0.25, 1, Reason("r"), pairs)
    assert r.to_dict()["attributions"] == {"collab_z": 0.25, "trending": -0.5}
    with pytest.raises(ValueError, match="2 feature names for 1"):
        Attributions(names, (1.0,))


@pytest.mark.parametrize(
    "fields",
    [
        {
            "fact": Fact.CHOSEN_TOGETHER,
            "item_id": "i-1",
            "date": "2026-11-02",
            "count": 3,
            "counted": "purchase",
            "event": "purchase",
        },
        {"fact": Fact.TASTE_PROFILE, "count": 0, "others": False},
        {
            "fact": Fact.CATEGORY_SHARE,
            "category": 'Caf\u00e9 "Bar" > T\u00e9\n',
            "total": 7,
            "others": True,
        },
        {"fact": Fact.USUAL_PRICE, "value": 12.5, "price": 1e-7},
        {"fact": Fact.AVERAGE_RATING, "value": np.float64(4.25), "window_days": 30},
        {"fact": Fact.LISTED, "value": float("nan"), "price": float("inf")},
        {"fact": "trending", "brand": "\u20ac\ud83d\ude00 \\ /"},
    ],
)
def test_evidence_json_is_json_dumps_of_its_dict(fields: dict) -> None:
    """The e-mail job writes ``to_json``: it must be exactly what ``json.dumps`` writes."""
    e = Evidence(**fields)
    assert e.to_json() == json.dumps(e.to_dict())
    assert json.loads(e.to_json(), parse_constant=str) == json.loads(
        json.dumps(e.to_dict()), parse_constant=str
    )
