"""Provider fairness on the synthetic shop: is the planted under-exposure of small sellers
corrected across an e-mail batch, and at what NDCG cost? All lists are built in the same run.

Protocol: per-user temporal split (newest 20% of each customer's events are the test set),
purchases and carts are relevant, the batch is every consenting customer with a relevant test
item. Exposure is position-discounted (1/log2(rank+1)) over top-10 lists.

    OPENBLAS_NUM_THREADS=1 .venv/bin/python benchmarks/fairness_synthetic.py
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

from _common import PSEUDONYM_KEY

from recsys.batch.exposure import BatchExposure, BatchExposureConfig
from recsys.data import Dataset
from recsys.data.splits import temporal_split
from recsys.data.synthetic import END, ShopSpec, make_shop
from recsys.evaluation.baselines import relevant
from recsys.evaluation.metrics import exposure_share, ndcg_values
from recsys.privacy.consent import SQLiteConsentStore
from recsys.privacy.pseudonym import Pseudonymizer
from recsys.recommender import Recommender

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--users", type=int, default=3000)
    ap.add_argument("--items", type=int, default=800)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    args = ap.parse_args()
    shop = make_shop(ShopSpec(n_users=args.users, n_items=args.items, seed=args.seed))
    train, test = temporal_split(shop.interactions, 0.2)
    rec = Recommender(
        # a fixed key, as every benchmark: the key orders the customers, so it moves ALS's start
        pseudonymizer=Pseudonymizer(PSEUDONYM_KEY),
        consent=SQLiteConsentStore.in_memory(),
    ).fit(Dataset(train, shop.items, shop.users), now=END)
    truth = relevant(test)
    consenting = set(shop.users.loc[shop.users["consent_personalization"], "user_id"])
    known = rec.model_.ctx.history.users
    users = sorted(u for u in truth if u in consenting and known.get(rec.key_of(u)) >= 0)
    small = rec.model_.groups["small_sellers"]
    ids = rec.model_.ctx.catalog.items.ids
    small_ids = set(ids[small])
    batch = BatchExposure(rec, BatchExposureConfig(group="small_sellers"))
    target = batch.target
    systems = {
        "ranker only": {
            u: r.item_ids
            for u, r in zip(users, rec.recommend_many(users, 10, rerank=False), strict=True)
        },
        "per-list re-ranking (MMR + FA*IR long tail)": {
            u: r.item_ids for u, r in zip(users, rec.recommend_many(users, 10), strict=True)
        },
        "batch exposure (small sellers)": {u: r.item_ids for u, r in batch.run(users, 10).items()},
    }
    rows = []
    base = None
    for name, recs in systems.items():
        ndcg = float(ndcg_values(recs, {u: truth[u] for u in users}, 10).mean())
        share = exposure_share(recs, small_ids, 10)
        base = base or ndcg
        rows.append(
            {
                "system": name,
                "ndcg@10": ndcg,
                "ndcg_cost": 1 - ndcg / base,
                "small_seller_exposure": share,
                "target": target,
                "relative_gap": abs(share - target) / target,
            }
        )
    lines = [
        "| system | NDCG@10 | NDCG cost | small-seller exposure | target | gap to target |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in rows:
        lines.append(
            f"| {r['system']} | {r['ndcg@10']:.4f} | {r['ndcg_cost']:.1%} | {r['small_seller_exposure']:.1%} "
            f"| {r['target']:.1%} | {r['relative_gap']:.1%} |"
        )
    table = "\n".join(lines)
    print(f"{len(users)} customers in the batch; small sellers list {target:.1%} of in-stock items")
    print(table)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "fairness_synthetic.md").write_text(table + "\n")
    (out / "fairness_synthetic.json").write_text(
        json.dumps({"users": len(users), "rows": rows}, indent=2) + "\n"
    )


if __name__ == "__main__":
    main()
