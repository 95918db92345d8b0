"""Issue #15: the demo shows one promoted and one new item, each with its honest reason."""

from __future__ import annotations

from recsys.cli.demo_rules import show_rules


def test_the_demo_shows_a_promoted_and_a_new_item(fitted, small_shop, capsys) -> None:
    counts = small_shop.interactions["user_id"].value_counts()
    consenting = set(small_shop.users.loc[small_shop.users["consent_personalization"], "user_id"])
    user = next(u for u in counts.index if u in consenting)
    show_rules(fitted, small_shop.items, user)
    out = capsys.readouterr().out
    lines = out.splitlines()
    promoted = [i for i, line in enumerate(lines) if line.endswith("[promoted]")]
    new = [i for i, line in enumerate(lines) if line.endswith("[new]")]
    assert promoted and new, out
    assert lines[promoted[0] + 1].strip().startswith("Promoted by the shop")
    assert lines[new[0] + 1].strip().startswith("New"), out
