"""The demo's business-rules part: one promoted and one new item, with their honest reasons."""

from __future__ import annotations

import dataclasses

import pandas as pd

from recsys.candidates.content import ContentSource
from recsys.recommender import Recommender
from recsys.rerank.stages import RerankConfig
from recsys.types import Stage


def show_rules(rec: Recommender, items: pd.DataFrame, user: str, k: int = 5) -> None:
    """Promote three long-tail items and list a new arrival, then print ``user``'s list."""
    model = rec.model_
    tail = items["item_id"].tolist()[-3:]
    src = items.iloc[[int(model.ctx.history.item[0])]] if len(model.ctx.history.item) else items
    st = model.ctx.user_state(model.ctx.history.users.get(rec.key_of(user)))
    top = st.items[:1]
    if len(top):
        src = items[items["item_id"] == str(model.ctx.catalog.items.ids[top[0]])]
    new = src.head(1).assign(
        item_id="NEW0001",
        title="New arrival: " + src["title"].iloc[0],
        created_at=pd.Timestamp(model.cutoff, unit="s", tz="UTC").floor("s") - pd.Timedelta(days=2),
        in_stock=True,
    )
    updated = model.with_items(new)
    cands = updated.config.candidates.model_copy(
        update={"sources": [*updated.config.candidates.sources, ContentSource()]}
    )
    updated = dataclasses.replace(
        updated, config=updated.config.model_copy(update={"candidates": cands})
    )
    shop = Recommender(updated.config, policy=updated.policy, pseudonymizer=rec.pseudonymizer,
                       consent=rec.consent_store_).use(updated)  # fmt: skip
    cfg = RerankConfig.model_validate(
        {
            "stages": [
                {"kind": "mmr"},
                {"kind": "new_items"},
                {"kind": "promotions", "items": tail, "max_share": 0.2},
                {"kind": "fair", "group": "long_tail"},
            ]
        }
    )
    recs = shop.recommend(user, k, rerank=cfg, filters="in_stock")
    print(f"\nbusiness rules for customer {user} (promoted {', '.join(tail)}; new item NEW0001)")
    for r in recs:
        mark = {Stage.PROMOTION: " [promoted]", Stage.NEW_ARRIVAL: " [new]"}.get(r.reason.stage, "")
        print(f"  {r.rank}. {r.title} ({r.item_id}){mark}\n     {r.reason.text}")
