"""The effect of an overrides file on an evaluation's lists: what people's rules changed."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from recsys.types import Recommendations

if TYPE_CHECKING:
    from recsys.evaluation.baselines import PipelineSystem
    from recsys.evaluation.protocol import Exclusions


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


def system_effect(
    system: PipelineSystem,
    users: Sequence[str],
    k: int,
    exclusions: Exclusions | None,
    path: str | Path,
) -> dict[str, Any]:
    """:func:`override_effect` of the overrides file at ``path`` on a fitted pipeline system's
    lists for ``users`` (the same queries without and with it); the system is left as it was."""
    from recsys.audit import attach
    from recsys.rerank.overrides import load_overrides

    rec = system.model_
    overrides = load_overrides(path, rec.key_of)
    before = system.recommend_lists(users, k, exclusions)
    pipeline = rec.pipeline
    kept = pipeline.sink, pipeline.hooks
    attach(rec, overrides=overrides)
    try:
        after = system.recommend_lists(users, k, exclusions)
    finally:
        pipeline.sink, pipeline.hooks = kept
    return override_effect(before, after, overrides.version)
