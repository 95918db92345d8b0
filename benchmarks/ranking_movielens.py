"""Ranking benchmark on MovieLens-100K: the recsys pipeline against implicit ALS and BPR (each
tuned on a validation split) and popularity, all measured in the same run.

Protocol: per-user temporal split (each user's newest 20% of ratings are the test set), ratings
>= 4 are relevant, each user's training items are excluded, top-10 over the whole catalogue.

    OPENBLAS_NUM_THREADS=1 .venv/bin/python benchmarks/ranking_movielens.py [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

from recsys.candidates.implicit_adapter import CollaborativeConfig
from recsys.config import RecommenderConfig
from recsys.data import load_movielens
from recsys.data.splits import temporal_split
from recsys.evaluation.baselines import (
    ImplicitSystem,
    MostPopular,
    long_tail_items,
    pipeline_factory,
    relevant,
    tune,
    tune_rerank,
)
from recsys.evaluation.metrics import (
    catalog_coverage,
    exposure_gini,
    exposure_share,
    intra_list_diversity,
    ndcg_values,
    recall_values,
)
from recsys.privacy.policy import Policy

ROOT = Path(__file__).resolve().parents[1]
ALS_GRID = {
    "factors": [32, 64, 128, 200],
    "regularization": [1.0, 5.0, 10.0, 20.0],
    "alpha": [0.5, 1.0, 2.0],
}
BPR_GRID = {
    "factors": [64, 128],
    "learning_rate": [0.01, 0.05],
    "regularization": [0.01, 0.1],
    "iterations": [100, 200],
}
QUICK_ALS = {"factors": [64, 128], "regularization": [5.0, 10.0], "alpha": [1.0]}
PIPELINE_GRID = {
    "ranker.max_leaf_nodes": [7, 15],
    "ranker.max_iter": [150, 300],
    "candidates.sources.0.n": [100, 200],
}
QUICK_PIPELINE = {
    "ranker.max_leaf_nodes": [7],
    "ranker.max_iter": [150],
    "candidates.sources.0.n": [100],
}
RERANK_GRID = {
    "stages.0.trade_off": [0.85, 0.95, 1.0],
    "stages.1.proportion": [0.35, 0.4, 0.5],
}
QUICK_BPR = {
    "factors": [128],
    "learning_rate": [0.01],
    "regularization": [0.01],
    "iterations": [100],
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "datasets" / "ml-100k"))
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    ap.add_argument("--quick", action="store_true", help="small grids (for a smoke run)")
    ap.add_argument("--k", type=int, default=10)
    args = ap.parse_args()
    k = args.k

    ds = load_movielens(args.data)
    train, test = temporal_split(ds.interactions, 0.2)
    truth = relevant(test)
    users = sorted(truth)
    print(
        f"train {len(train):,}  test {len(test):,}  users with relevant test items {len(users):,}"
    )

    t = time.perf_counter()
    als, als_val, _ = tune(ImplicitSystem, QUICK_ALS if args.quick else ALS_GRID, train, ds.items, ds.users,
                           fixed={"algorithm": "als"})  # fmt: skip
    print(f"ALS tuned in {time.perf_counter() - t:.0f}s: {als} (validation NDCG@{k} {als_val:.4f})")
    t = time.perf_counter()
    bpr, bpr_val, _ = tune(ImplicitSystem, QUICK_BPR if args.quick else BPR_GRID, train, ds.items, ds.users,
                           fixed={"algorithm": "bpr"})  # fmt: skip
    print(f"BPR tuned in {time.perf_counter() - t:.0f}s: {bpr} (validation NDCG@{k} {bpr_val:.4f})")

    als_cfg = {key: v for key, v in als.items() if key in CollaborativeConfig.model_fields}
    base_cfg = RecommenderConfig(purpose="evaluation", collaborative=CollaborativeConfig(**als_cfg))
    t = time.perf_counter()
    pipe, pipe_val, _ = tune(pipeline_factory(base_cfg), QUICK_PIPELINE if args.quick else PIPELINE_GRID,
                             train, ds.items, ds.users)  # fmt: skip
    print(
        f"pipeline tuned in {time.perf_counter() - t:.0f}s: {pipe} (validation NDCG@{k} {pipe_val:.4f})"
    )
    t = time.perf_counter()
    rr_cfg, rr_val, _ = tune_rerank(
        pipeline_factory(base_cfg, rerank=True)(**pipe), RERANK_GRID, train, ds.items, ds.users,
        min_long_tail=0.15,
    )  # fmt: skip
    print(
        f"re-ranking tuned in {time.perf_counter() - t:.0f}s: {rr_cfg.model_dump()} (validation {rr_val})"
    )
    systems = [
        MostPopular(),
        ImplicitSystem(**als),
        ImplicitSystem(**bpr),
        pipeline_factory(base_cfg)(**pipe),
        pipeline_factory(base_cfg, rerank=rr_cfg)(**pipe),
    ]
    # long tail: items outside the most popular set that makes 80% of training interactions
    long_tail = long_tail_items(
        train, ds.items, Policy.default().item_groups["long_tail"].head_share
    )
    genres = {
        i: set(c.split("|")) for i, c in zip(ds.items["item_id"], ds.items["category"], strict=True)
    }
    catalog = ds.items["item_id"].tolist()
    rows = []
    for s in systems:
        t0 = time.perf_counter()
        s.fit(train, ds.items, ds.users)
        t1 = time.perf_counter()
        recs = s.recommend_all(users, k)
        t2 = time.perf_counter()
        rows.append(
            {
                "system": s.name,
                f"ndcg@{k}": float(ndcg_values(recs, truth, k).mean()),
                f"recall@{k}": float(recall_values(recs, truth, k).mean()),
                "coverage": catalog_coverage(recs, len(ds.items), k),
                "long_tail_exposure": exposure_share(recs, long_tail, k),
                "genre_ild": intra_list_diversity(recs, genres, k),
                "exposure_gini": exposure_gini(recs, catalog, k),
                "fit_s": t1 - t0,
                "recommend_ms_per_user": (t2 - t1) / len(users) * 1000,
            }
        )
        print(f"{s.name:<24} NDCG@{k} {rows[-1][f'ndcg@{k}']:.4f}  fit {t1 - t0:.1f}s")

    best_mf = max((r for r in rows if r["system"] in ("als", "bpr")), key=lambda r: r[f"ndcg@{k}"])
    als_row = next(r for r in rows if r["system"] == "als")
    for r in rows:
        r["ndcg_vs_best_mf"] = r[f"ndcg@{k}"] / best_mf[f"ndcg@{k}"]
        r["fit_time_vs_als"] = r["fit_s"] / als_row["fit_s"]
        r["latency_vs_als"] = r["recommend_ms_per_user"] / als_row["recommend_ms_per_user"]

    header = (
        f"| system | NDCG@{k} | vs best of ALS/BPR | Recall@{k} | coverage | long-tail exposure "
        "| genre ILD | exposure Gini | fit time vs ALS | latency vs ALS |"
    )
    lines = [header, "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for r in rows:
        lines.append(
            f"| {r['system']} | {r[f'ndcg@{k}']:.4f} | {r['ndcg_vs_best_mf']:.3f} | {r[f'recall@{k}']:.4f} "
            f"| {r['coverage']:.3f} | {r['long_tail_exposure']:.1%} | {r['genre_ild']:.3f} "
            f"| {r['exposure_gini']:.3f} | {r['fit_time_vs_als']:.1f}x | {r['latency_vs_als']:.1f}x |"
        )
    table = "\n".join(lines)
    print()
    print(table)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    result = {
        "protocol": "ml-100k, per-user temporal split 80/20, ratings >= 4 relevant, training items excluded",
        "tuned": {
            "als": als,
            "als_validation_ndcg": als_val,
            "bpr": bpr,
            "bpr_validation_ndcg": bpr_val,
            "recsys": pipe,
            "recsys_validation_ndcg": pipe_val,
            "rerank": rr_cfg.model_dump(),
            "rerank_validation": rr_val,
        },
        "quick": args.quick,
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count()},
        "systems": rows,
    }
    name = "ranking_movielens_quick" if args.quick else "ranking_movielens"
    (out / f"{name}.json").write_text(json.dumps(result, indent=2) + "\n")
    (out / f"{name}.md").write_text(table + "\n")
    print(f"\nwritten to {out / name}.json and .md")


if __name__ == "__main__":
    main()
