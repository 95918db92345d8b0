"""Batch jobs: amortized exposure tracks its target; offers respect e-mail consent."""

from __future__ import annotations

from recsys.batch.exposure import BatchExposure, BatchExposureConfig
from recsys.evaluation.metrics import exposure_share


def test_batch_exposure_tracks_the_target(fitted, small_shop) -> None:
    users = small_shop.users["user_id"].tolist()
    small = fitted.model_.groups["small_sellers"]
    ids = set(fitted.model_.ctx.catalog.items.ids[small])
    plain = {u: fitted.recommend(u, 10, rerank=False).item_ids for u in users}
    batch = BatchExposure(fitted, BatchExposureConfig(group="small_sellers"))
    lists = batch.run(users, 10)
    fair = {u: r.item_ids for u, r in lists.items() if r.personalized}
    before = exposure_share({u: plain[u] for u in fair}, ids)
    after = exposure_share(fair, ids)
    assert abs(after - batch.target) < abs(before - batch.target)
    assert abs(after - batch.target) / batch.target < 0.1
    moved = [r for lst in lists.values() for r in lst if r.reason.stage == "fairness"]
    assert moved and all(r.reason.text.startswith("From an independent seller") for r in moved)
