"""Serving latency (issue #13): one request of top-10 with reasons and re-ranking, in-process,
against bare ``implicit`` single-user ``recommend`` on the same catalogue, in the same run.

Per catalogue size (synthetic shop, ``--items`` 100,000 and 20,000 by default):

- fit ``Recommender`` once with ``collaborative.ann = "hnsw"`` (the index) and serve the same
  model a second time with the index removed (exact scoring of every item);
- peer: ``implicit``'s ``AlternatingLeastSquares.recommend(uid, user_items[uid], N=10)`` with
  recsys's own factors loaded into it (so both sides rank the very same catalogue and factors;
  its cost depends only on their shapes), one thread;
- requests alternate recsys (index) / recsys (exact) / implicit per sampled consenting user,
  after a warm-up; p50/p99 of each and the median ratio recsys / implicit;
- ANN recall@n against exact top-n (all items allowed) over the sampled users' vectors, ``n`` the
  collaborative candidates the model asks for;
- a cProfile of the single-request path (top functions by cumulative time) to a text file.

``--movielens`` adds NDCG@10 on MovieLens-100K with the index on and off (same protocol as
``benchmarks/ranking_movielens.py``: per-user temporal split, ratings >= 4 relevant), at the
default search breadth and at a narrow one (MovieLens has 1,682 items: the default breadth
visits nearly all of them).

    OPENBLAS_NUM_THREADS=1 .venv/bin/python benchmarks/serving.py --items 100000 20000 --movielens
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse
import copy
import cProfile
import dataclasses
import io
import json
import platform
import pstats
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
KEY = b"bench-key-0123456789abcdef"


def fit(n_users: int, n_items: int, seed: int):
    from recsys.config import RecommenderConfig
    from recsys.data.synthetic import END, ShopSpec, make_shop
    from recsys.privacy import Pseudonymizer
    from recsys.privacy.consent import SQLiteConsentStore
    from recsys.recommender import Recommender

    ds = make_shop(ShopSpec(n_users=n_users, n_items=n_items, seed=seed))
    cfg = RecommenderConfig.model_validate({"collaborative": {"ann": "hnsw"}})
    store = SQLiteConsentStore(Path(os.environ["RECSYS_STATE_DIR"]) / f"bench-{n_items}.sqlite")
    t = time.perf_counter()
    rec = Recommender(cfg, pseudonymizer=Pseudonymizer(KEY), consent=store).fit(ds, now=END)
    return ds, rec, time.perf_counter() - t


def exact_twin(rec):
    """The same model served without its index (exact scoring of every item)."""
    from recsys.features.context import FeatureContext
    from recsys.recommender import Recommender

    m = rec.model_
    ctx = m.ctx
    collab = copy.copy(ctx.collab)
    collab.index_ = None
    twin_ctx = FeatureContext(ctx.history, ctx.catalog, collab, ctx.cooc, ctx.shop, ctx.seen)
    twin = dataclasses.replace(m, ctx=twin_ctx)
    return Recommender(
        m.config, policy=m.policy, pseudonymizer=rec.pseudonymizer, consent=rec.consent
    ).use(twin)


def implicit_peer(rec):
    from implicit.cpu.als import AlternatingLeastSquares

    collab = rec.model_.ctx.collab
    als = AlternatingLeastSquares(factors=collab.factors, num_threads=1, random_state=0)
    als.user_factors = np.ascontiguousarray(collab.user_factors_)
    als.item_factors = np.ascontiguousarray(collab.item_factors_)
    return als, rec.model_.ctx.confidence.tocsr()


def pct(a: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(a) * 1e3, q))


def measure(label: str, ds, rec, requests: int, out: Path) -> dict:
    from threadpoolctl import threadpool_limits

    from recsys.candidates.ann import recall_at

    exact = exact_twin(rec)
    als, ui = implicit_peer(rec)
    users = [u for u in ds.users["user_id"].astype(str).tolist()[:4000]]
    users = [u for u in users if rec.recommend(u, 1).personalized][:requests]
    keys = [rec.key_of(u) for u in users]
    uidx = [rec.model_.ctx.history.users.get(k) for k in keys]
    t_ann, t_exact, t_imp = [], [], []
    same_top10 = 0
    with threadpool_limits(1):
        for u, ui_ in zip(users[:20], uidx[:20], strict=True):  # warm-up
            rec.recommend(u, 10)
            exact.recommend(u, 10)
            als.recommend(ui_, ui[ui_], N=10)
        for u, ui_ in zip(users, uidx, strict=True):
            t = time.perf_counter()
            a = rec.recommend(u, 10)
            t_ann.append(time.perf_counter() - t)
            t = time.perf_counter()
            b = exact.recommend(u, 10)
            t_exact.append(time.perf_counter() - t)
            t = time.perf_counter()
            als.recommend(ui_, ui[ui_], N=10)
            t_imp.append(time.perf_counter() - t)
            same_top10 += a.item_ids == b.item_ids
        prof = cProfile.Profile()
        prof.enable()
        for u in users[:100]:
            rec.recommend(u, 10)
        prof.disable()
    s = io.StringIO()
    pstats.Stats(prof, stream=s).sort_stats("cumulative").print_stats(30)
    (out / f"serving_profile_{label}.txt").write_text(s.getvalue())
    collab = rec.model_.ctx.collab
    vectors = collab.user_factors_[np.asarray(uidx[:200])]
    n_cand = next(s.n for s in rec.model_.config.candidates.sources if s.kind == "collaborative")
    recall = recall_at(collab.index_, collab.item_factors_, vectors, n_cand)
    ratio = float(np.median(t_ann) / np.median(t_imp))
    return {
        "items": len(ds.items),
        "users": len(ds.users),
        "requests": len(users),
        "indexed_items": len(collab.index_),
        "ann_p50_ms": pct(t_ann, 50),
        "ann_p99_ms": pct(t_ann, 99),
        "exact_p50_ms": pct(t_exact, 50),
        "exact_p99_ms": pct(t_exact, 99),
        "implicit_p50_ms": pct(t_imp, 50),
        "implicit_p99_ms": pct(t_imp, 99),
        "ratio_ann_to_implicit": ratio,
        "ratio_exact_to_implicit": float(np.median(t_exact) / np.median(t_imp)),
        "collaborative_candidates": n_cand,
        "ann_recall_at_n": recall,
        "same_top10_share": same_top10 / len(users),
    }


def movielens(path: Path) -> list[dict]:
    from recsys.config import RecommenderConfig
    from recsys.data import load_movielens
    from recsys.data.splits import temporal_split
    from recsys.evaluation.baselines import pipeline_factory, relevant
    from recsys.evaluation.metrics import ndcg_values

    ds = load_movielens(path)
    train, test = temporal_split(ds.interactions, 0.2)
    truth = relevant(test)
    users = sorted(truth)
    rows = []
    default_ef = RecommenderConfig().collaborative.ann_ef
    for ann, ef in (("exact", default_ef), ("hnsw", default_ef), ("hnsw", 16)):
        cfg = RecommenderConfig.model_validate(
            {"purpose": "evaluation", "collaborative": {"ann": ann, "ann_ef": ef}}
        )
        system = pipeline_factory(cfg)()
        system.fit(train, ds.items, ds.users)
        recs = system.recommend_all(users, 10)
        rows.append({"ann": ann, "ef": ef, "ndcg@10": float(ndcg_values(recs, truth, 10).mean())})
        print(f"MovieLens ann={ann} ef={ef}: NDCG@10 {rows[-1]['ndcg@10']:.4f}", flush=True)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--items", type=int, nargs="+", default=[100_000, 20_000])
    ap.add_argument("--users", type=int, default=20_000)
    ap.add_argument("--requests", type=int, default=300)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--movielens", action="store_true")
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "datasets" / "ml-100k"))
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("RECSYS_STATE_DIR", tempfile.mkdtemp(prefix="recsys-serving-"))
    result = {
        "command": "OPENBLAS_NUM_THREADS=1 .venv/bin/python benchmarks/serving.py "
        + " ".join(os.sys.argv[1:]),
        "started_utc": datetime.now(UTC).isoformat(timespec="seconds"),
        "loadavg_at_start": os.getloadavg(),
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count()},
        "shops": [],
    }
    for n_items in args.items:
        ds, rec, fit_s = fit(args.users, n_items, args.seed)
        print(f"{n_items:,} items: fitted in {fit_s:.0f}s", flush=True)
        row = measure(f"{n_items}", ds, rec, args.requests, out)
        row["fit_seconds"] = fit_s
        row["loadavg"] = os.getloadavg()
        result["shops"].append(row)
        print(json.dumps(row), flush=True)
        del ds, rec
    if args.movielens:
        result["movielens"] = movielens(Path(args.data))
    result["loadavg_at_end"] = os.getloadavg()
    lines = [
        f"load average at start {result['loadavg_at_start'][0]:.1f}, at end "
        f"{result['loadavg_at_end'][0]:.1f} (2 cores, shared)",
        "",
        "| items | recsys p50 / p99 ms (index) | recsys p50 / p99 ms (exact) | implicit p50 / p99 ms "
        "| ratio (index / exact) | recall@n (n) | same top-10 |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in result["shops"]:
        lines.append(
            f"| {r['items']:,} | {r['ann_p50_ms']:.2f} / {r['ann_p99_ms']:.2f} "
            f"| {r['exact_p50_ms']:.2f} / {r['exact_p99_ms']:.2f} "
            f"| {r['implicit_p50_ms']:.2f} / {r['implicit_p99_ms']:.2f} "
            f"| {r['ratio_ann_to_implicit']:.1f}x / {r['ratio_exact_to_implicit']:.1f}x "
            f"| {r['ann_recall_at_n']:.3f} ({r['collaborative_candidates']}) "
            f"| {r['same_top10_share']:.2f} |"
        )
    if "movielens" in result:
        lines += ["", "| MovieLens-100K | NDCG@10 |", "| --- | ---: |"]
        for r in result["movielens"]:
            lines.append(f"| {r['ann']} (ef {r['ef']}) | {r['ndcg@10']:.4f} |")
    table = "\n".join(lines)
    print(table)
    (out / "serving.json").write_text(json.dumps(result, indent=1))
    (out / "serving.md").write_text(result["command"] + "\n\n" + table + "\n")


if __name__ == "__main__":
    main()
