"""How many new items reach customers within a simulated week on the synthetic shop (issue #15).

Trains on the synthetic shop, then adds ``--new`` items after training (``FittedModel.with_items``:
copies of random items' category, brand and price, listed at the data cut-off, no interactions).
Each simulated day a random ``--share`` of the customers opens a page (k = 10, the request time
moving one day on); an item has exposure once it appears in any list. Three set-ups over the same
customers and days: the default pipeline, plus the content source, plus a reserved new-item slot.

    OPENBLAS_NUM_THREADS=1 .venv/bin/python benchmarks/new_items.py
"""

from __future__ import annotations

import argparse

import numpy as np
import pandas as pd

from recsys.config import RecommenderConfig
from recsys.data.synthetic import END, ShopSpec, make_shop
from recsys.privacy.consent import SQLiteConsentStore
from recsys.recommender import Recommender
from recsys.rerank.stages import RerankConfig

DAY = 86_400


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--users", type=int, default=1000)
    ap.add_argument("--items", type=int, default=300)
    ap.add_argument("--new", type=int, default=20)
    ap.add_argument("--share", type=float, default=0.3)
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args()
    ds = make_shop(ShopSpec(n_users=args.users, n_items=args.items, seed=args.seed))
    base = RecommenderConfig()
    content = base.model_copy(deep=True)
    content.candidates.sources.append(
        RecommenderConfig.model_validate(
            {"candidates": {"sources": [{"kind": "content"}]}}
        ).candidates.sources[0]
    )
    rec = Recommender(content, consent=SQLiteConsentStore.in_memory()).fit(ds, now=END)
    rng = np.random.default_rng(args.seed)
    model = rec.model_
    src = ds.items.sample(args.new, random_state=args.seed).reset_index(drop=True)
    new = src.assign(
        item_id=[f"N{n:05d}" for n in range(args.new)],
        title=[f"New arrival {n}" for n in range(args.new)],
        created_at=pd.Timestamp(model.cutoff, unit="s", tz="UTC").floor("s"),
        in_stock=True,
    )
    updated = model.with_items(new)
    no_content = updated.config.model_copy(update={"candidates": base.candidates})
    import dataclasses

    plain = dataclasses.replace(updated, config=no_content)
    slot = model.config.rerank.model_copy(
        update={
            "stages": [
                *model.config.rerank.stages[:1],
                RerankConfig.model_validate({"stages": [{"kind": "new_items"}]}).stages[0],
                *model.config.rerank.stages[1:],
            ]
        }
    )
    users = ds.users.loc[ds.users["consent_personalization"], "user_id"].tolist()
    days = [rng.choice(users, int(len(users) * args.share), replace=False) for _ in range(7)]
    new_ids = set(new["item_id"])
    rows = []
    for name, m, rr in (
        ("default pipeline", plain, None),
        ("+ content source", updated, None),
        ("+ content source + new-item slot", updated, slot),
    ):
        r = Recommender(m.config, policy=m.policy, consent=rec.consent_store_).use(m)
        shown: set[str] = set()
        views = 0
        for d, who in enumerate(days):
            qs = [r.query(u, 10, as_of=model.cutoff + (d + 1) * DAY, rerank=rr) for u in who]
            for recs in r.recommend_many(qs):
                hit = new_ids & set(recs.item_ids)
                shown |= hit
                views += len(hit)
        rows.append((name, len(shown), views, sum(len(w) for w in days)))
    print(f"{args.new} new items, {args.users:,} customers x {args.items} items, 7 days, "
          f"{args.share:.0%} of consenting customers a day, k = 10")  # fmt: skip
    print("| set-up | new items with exposure | impressions of new items | lists |")
    print("| --- | ---: | ---: | ---: |")
    for name, n, v, lists in rows:
        print(f"| {name} | {n} of {args.new} | {v:,} | {lists:,} |")


if __name__ == "__main__":
    main()
