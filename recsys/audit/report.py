"""Reading the audit trail back: "why did I see this?" in plain language, and run metrics."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any

from recsys.audit.feedback import KINDS, FeedbackStore
from recsys.audit.trail import SQLiteAuditTrail

if TYPE_CHECKING:
    from recsys.model.fitted import FittedModel

PLACED_BY = {
    "ranker": "chosen by the ranking model from your own activity",
    "popularity": "not personalized: what is popular in the shop right now",
    "diversity": "added for variety",
    "calibration": "added to match the mix of categories you usually shop",
    "fairness": "added so that items of independent sellers or less-known items are seen too",
    "editorial": "pinned by the shop's staff",
}


def _when(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%d %b %Y %H:%M UTC")


def why_text(lists: list[dict[str, Any]], titles: dict[str, str] | None = None) -> str:
    """What a customer was shown and why, list by list (newest first)."""
    titles = titles or {}
    if not lists:
        return "No recommendations to you are on record (or their retention window has passed)."
    out = []
    for lst in lists:
        kind = "picked for you" if lst["personalized"] else "not personalized"
        out.append(
            f"On {_when(lst['at'])} you were shown {len(lst['items'])} item(s), {kind} "
            f"(model {lst['model_version']}, policy {lst['policy_hash']}):"
        )
        for it in lst["items"]:
            name = titles.get(it["item_id"])
            label = f"{name} ({it['item_id']})" if name else it["item_id"]
            out.append(f"  {it['rank']}. {label}: {it['reason']}")
            out.append(f"     {PLACED_BY.get(it['stage'], it['stage'])}")
        applied = lst["applied"]
        fb = applied.get("feedback")
        if fb:
            left = ", ".join([*fb["items"], *fb["categories"]])
            out.append(f"  Left out because you said you are not interested: {left}.")
        ov = applied.get("overrides")
        if ov:
            bits = []
            if ov.get("blocked_items") or ov.get("blocked_categories"):
                n = len(ov.get("blocked_items", [])) + len(ov.get("blocked_categories", []))
                bits.append(f"{n} block(s)")
            if ov.get("caps"):
                bits.append(
                    "brand caps " + ", ".join(f"{b} {s:.0%}" for b, s in ov["caps"].items())
                )
            if ov.get("pinned"):
                bits.append("staff picks " + ", ".join(ov["pinned"]))
            if bits:
                out.append(
                    f"  The shop's staff rules applied (overrides version {ov['version']}): "
                    + "; ".join(bits)
                    + "."
                )
        out.append("")
    return "\n".join(out).rstrip() + "\n"


def trail_metrics(
    trail: SQLiteAuditTrail,
    feedback: FeedbackStore | None = None,
    model: FittedModel | None = None,
    since: float = 0.0,
) -> dict[str, Any]:
    """Metrics of what was actually served (since a time), for the drift monitor: reason
    coverage (items whose reason cites evidence or is a staff pick), staff-pick share, feedback
    per 1,000 items shown, and with the model the exposure share per item group and coverage."""
    rows = [r for r in trail.item_rows() if r["at"] >= since]
    n = len(rows)
    import json

    cited = 0
    for r in rows:
        e = json.loads(r["explanation"])
        cited += bool(e["evidence"]) or r["stage"] == "editorial"
    out: dict[str, Any] = {
        "lists": len({r["list_id"] for r in rows}),
        "items_shown": n,
        "reason_coverage": cited / n if n else 0.0,
        "editorial_share": sum(r["stage"] == "editorial" for r in rows) / n if n else 0.0,
    }
    if feedback is not None:
        counts = feedback.counts(since)
        out["feedback"] = {f"{k}_per_1000": 1000 * counts[k] / n if n else 0.0 for k in KINDS}
    if model is not None and n:
        index = model.ctx.catalog.items
        items = index.index([r["item_id"] for r in rows])
        items = items[items >= 0]
        out["exposure_share"] = {
            g: float(members[items].mean()) if len(items) else 0.0
            for g, members in model.groups.items()
        }
        out["coverage"] = len(set(items.tolist())) / len(index.ids)
    return out
