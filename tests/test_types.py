"""The output types: columnar attributions read like the tuple of pairs they stand for."""

from __future__ import annotations

import pickle

import pytest

from recsys.types import Attributions, Reason, Recommendation


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
