"""The effect of an overrides file on an evaluation's lists: what people's rules changed."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from recsys.types import Recommendations


def override_effect(
    before: Sequence[Recommendations], after: Sequence[Recommendations], version: str = ""
) -> dict[str, Any]:
    """Lists and items that differ between the same users' lists without and with the overrides
    (same order of users), and how many shown items are staff picks."""
    changed = removed = added = picks = 0
    for b, a in zip(before, after, strict=True):
        bi, ai = b.item_ids, a.item_ids
        changed += bi != ai
        removed += len(set(bi) - set(ai))
        added += len(set(ai) - set(bi))
        picks += sum(str(r.reason.stage) == "editorial" for r in a)
    n = len(before)
    return {
        "version": version,
        "lists": n,
        "lists_changed": changed,
        "lists_changed_share": changed / n if n else 0.0,
        "items_removed": removed,
        "items_added": added,
        "staff_picks_shown": picks,
    }


def effect_markdown(effect: dict[str, Any]) -> str:
    """A short report section."""
    return (
        f"## Overrides (version {effect['version'] or '-'})\n\n"
        f"The overrides file changed {effect['lists_changed']:,} of {effect['lists']:,} lists "
        f"({effect['lists_changed_share']:.1%}): {effect['items_removed']:,} items left out, "
        f"{effect['items_added']:,} brought in, {effect['staff_picks_shown']:,} staff picks "
        "shown.\n"
    )
