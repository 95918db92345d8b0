"""A re-ranked item's reason keeps every field of the ranker's reason but the ones it changes."""

from __future__ import annotations

import dataclasses

from recsys.explain.explainer import _restaged
from recsys.types import Evidence, Fact, Reason, Stage


def test_restaged_is_dataclasses_replace_for_every_field() -> None:
    ev = Evidence(fact=Fact.TASTE_PROFILE, count=3)
    reason = Reason(
        text="t", features=("f",), attributions=(0.5,), evidence=(ev,),
        stage=Stage.CALIBRATION, refused=("often",),
    )  # fmt: skip
    # every field is set to a non-default value: a field added to Reason and not carried over
    # by _restaged makes this fail
    defaults = Reason(text="")
    for f in dataclasses.fields(Reason):
        assert getattr(reason, f.name) != getattr(defaults, f.name), f.name
    extra = Evidence(fact=Fact.DIVERSITY, category="Tea")
    assert _restaged(reason, Stage.DIVERSITY) == dataclasses.replace(reason, stage=Stage.DIVERSITY)
    assert _restaged(
        reason, Stage.FAIRNESS, text="new", evidence=(ev, extra)
    ) == dataclasses.replace(reason, stage=Stage.FAIRNESS, text="new", evidence=(ev, extra))
