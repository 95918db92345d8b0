"""Contract checks every component must pass; our tests apply them to each one, and a shop that
writes its own system or config can apply them too."""

from __future__ import annotations

from typing import Any

import pandas as pd
from pydantic import BaseModel, ValidationError


def check_system(
    system_factory: Any, train: pd.DataFrame, items: pd.DataFrame, users: pd.DataFrame, k: int = 5
) -> None:
    """A recommender system for evaluation: ``fit`` returns itself; ``recommend_all`` gives
    every requested user at most ``k`` distinct, known items, none from their training history
    (a system with ``recommends_rebuys`` may bring back what the user bought; users in
    ``unprofiled_users`` get lists that read no history at all), and the same lists when asked
    twice or when fitted again."""
    system = system_factory()
    assert system.fit(train, items, users) is system, "fit must return self"
    assert isinstance(system.name, str) and system.name
    known = set(items["item_id"])
    asked = [*sorted(train["user_id"].unique())[:20], "a-user-never-seen"]
    first = system.recommend_all(asked, k)
    assert set(first) == set(asked), "every requested user gets an entry"
    seen = train.groupby("user_id")["item_id"].apply(set).to_dict()
    bought = train[train["event"] == "purchase"].groupby("user_id")["item_id"].apply(set).to_dict()
    rebuys = getattr(system, "recommends_rebuys", False)
    unprofiled = getattr(system, "unprofiled_users", set())  # e.g. no consent: history unread
    for u, lst in first.items():
        if u in unprofiled:
            continue
        assert len(lst) <= k and len(set(lst)) == len(lst), f"{u}: at most k distinct items"
        assert set(lst) <= known, f"{u}: unknown item recommended"
        repeated = set(lst) & seen.get(u, set())
        if rebuys:  # only things the user bought may come back (consumables)
            repeated -= bought.get(u, set())
        assert not repeated, f"{u}: a training item was recommended: {sorted(repeated)}"
    assert system.recommend_all(asked, k) == first, "recommend_all must be deterministic"
    again = system_factory().fit(train, items, users).recommend_all(asked, k)
    assert again == first, "fitting again on the same data must give the same lists"


def check_config(model: BaseModel) -> None:
    """A stage configuration: round-trips through TOML or a dict, and refuses unknown fields."""
    cls = type(model)
    if hasattr(model, "to_toml"):
        assert cls.from_toml(model.to_toml()) == model, "TOML round trip"
    assert cls.model_validate(model.model_dump()) == model, "dict round trip"
    try:
        cls.model_validate({**model.model_dump(), "no_such_setting": 1})
    except ValidationError:
        return
    raise AssertionError(f"{cls.__name__} accepted an unknown field: set extra='forbid'")
