"""Scale: fit time, batch throughput, request latency and peak memory of recsys against bare
``implicit`` ALS on the synthetic shop, both measured in the same run (issue #9).

What is compared (every ratio is recsys / implicit, the peer measured in this run):

- fit: ``Recommender(...).fit(ds, now=END)`` (minimization, candidate model, features, ranker)
  against one ``implicit`` ALS fit with the settings of recsys's collaborative model
  (``CollaborativeConfig()`` defaults, one thread) on the consenting users' user x item
  confidence matrix (``--matrix weighted``: view 1, cart 2, purchase 4, rating 1, summed;
  ``--matrix binary``: 1 where the user has any event on the item);
- batch: users/s of recsys producing top-10 with reasons and re-ranking for a sample of
  consenting users (``recommend_many`` when the Recommender has it, else a loop of
  ``recommend``) against ``implicit``'s batch ``recommend`` over the same users, each side
  timed ``--batch-repeats`` times, alternating, the medians compared (both warm: a shop's
  batch job pays its first-use costs once for millions of customers; recsys's first run is
  reported too);
- latency: p50/p99 of single-user ``rec.recommend(u, 10)`` against single-user
  ``model.recommend(uid, user_items[uid], N=10)``, the two timed alternately per request;
- peak memory: process-wide ``ru_maxrss`` after each phase (it only grows).

BLAS runs with one thread on both sides (``threadpool_limits(1)``; set OPENBLAS_NUM_THREADS=1
too). Results: a Markdown table on stdout and ``benchmarks/results/scale_<label>.json`` / ``.md``.

    OPENBLAS_NUM_THREADS=1 .venv/bin/python benchmarks/scale.py                 # 100k x 20k
    OPENBLAS_NUM_THREADS=1 .venv/bin/python benchmarks/scale.py --users 1000000 --items 100000
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse
import contextlib
import gc
import json
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from threadpoolctl import threadpool_limits

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (
    PSEUDONYM_KEY,
    ROOT,
    confidence_matrix,
    fit_peer,
    git_facts,
    machine_facts,
    peak_rss_mib,
    percentile_ms,
)

K = 10


# --- the run -----------------------------------------------------------------------------------
def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--users", type=int, default=100_000)
    ap.add_argument("--items", type=int, default=20_000)
    ap.add_argument("--seed", type=int, default=42, help="seed of the shop and of the samples")
    ap.add_argument("--batch-users", type=int, default=2000)
    ap.add_argument("--requests", type=int, default=500)
    ap.add_argument(
        "--warmup", type=int, default=5, help="untimed calls per side before each phase"
    )
    ap.add_argument(
        "--batch-repeats",
        type=int,
        default=3,
        help="each side's batch is timed this many times, the two sides alternating; the "
        "medians count (the first, cold run of each is reported too)",
    )
    ap.add_argument("--matrix", choices=("weighted", "binary"), default="weighted")
    ap.add_argument("--label", default="after")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    args = ap.parse_args()

    import recsys
    from recsys.data.synthetic import END, ShopSpec, make_shop
    from recsys.privacy import Pseudonymizer
    from recsys.recommender import Recommender

    recsys_dir = Path(recsys.__file__).resolve().parent
    started = datetime.now(UTC)
    machine = machine_facts()
    rss: dict[str, float] = {"start": peak_rss_mib()}
    log = lambda msg: print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)  # noqa: E731
    log(f"recsys from {recsys_dir}")

    # data
    t = time.perf_counter()
    ds = make_shop(ShopSpec(n_users=args.users, n_items=args.items, seed=args.seed))
    data_s = time.perf_counter() - t
    rss["after_data"] = peak_rss_mib()
    log(f"shop: {len(ds.users):,} users, {len(ds.items):,} items, "
        f"{len(ds.interactions):,} interactions in {data_s:.1f}s")  # fmt: skip

    t = time.perf_counter()
    user_items, meta = confidence_matrix(ds, args.matrix)
    matrix_s = time.perf_counter() - t
    row_of = {u: i for i, u in enumerate(meta["user_ids"])}
    rss["after_matrix"] = peak_rss_mib()
    log(f"matrix {user_items.shape}, nnz {user_items.nnz:,} in {matrix_s:.1f}s")

    with threadpool_limits(1):
        # fit: the peer first, then recsys
        model, settings, implicit_fit_s = fit_peer(user_items)
        rss["after_implicit_fit"] = peak_rss_mib()
        log(f"implicit fit {implicit_fit_s:.1f}s")

        rec = Recommender(pseudonymizer=Pseudonymizer(PSEUDONYM_KEY))
        t = time.perf_counter()
        rec.fit(ds, now=END)
        recsys_fit_s = time.perf_counter() - t
        gc.collect()
        rss["after_recsys_fit"] = peak_rss_mib()
        log(f"recsys fit {recsys_fit_s:.1f}s")
        recsys_nnz = None
        # the matrix recsys's collaborative model saw (after its own minimization); internals
        # change, so this is informational only
        with contextlib.suppress(Exception):
            recsys_nnz = int(rec.context_.history.matrix().nnz)

        # samples: consenting users with at least one event (rows of the peer's matrix)
        rng = np.random.default_rng(args.seed)
        pool = meta["user_ids"]
        batch_ids = rng.choice(pool, size=min(args.batch_users, len(pool)), replace=False)
        request_ids = rng.choice(pool, size=args.requests, replace=args.requests > len(pool))
        batch_rows = np.array([row_of[u] for u in batch_ids], dtype=np.int64)
        request_rows = np.array([row_of[u] for u in request_ids], dtype=np.int64)
        warm = rng.choice(pool, size=max(args.warmup, 0), replace=True)
        for u in warm:
            rec.recommend(str(u), K)
            model.recommend(row_of[u], user_items[row_of[u]], N=K)

        # batch throughput: both sides timed alike, alternating, each run over the same users
        batch_ids_list = [str(u) for u in batch_ids]
        many = getattr(rec, "recommend_many", None)
        method = "recommend_many" if callable(many) else "recommend loop"
        log(f"recsys batch of {len(batch_ids_list):,} users via {method}")
        implicit_batch: list[float] = []
        recsys_batch: list[float] = []
        for _ in range(max(args.batch_repeats, 1)):
            t = time.perf_counter()
            model.recommend(
                batch_rows, user_items[batch_rows], N=K, filter_already_liked_items=True
            )
            implicit_batch.append(time.perf_counter() - t)
            t = time.perf_counter()
            if callable(many):
                out = many(batch_ids_list, k=K)
            else:
                out = [rec.recommend(u, K) for u in batch_ids_list]
            recsys_batch.append(time.perf_counter() - t)
        implicit_batch_s = float(np.median(implicit_batch))
        recsys_batch_s = float(np.median(recsys_batch))
        lists = list(out.values()) if isinstance(out, dict) else list(out)
        n_items_out = sum(len(r) for r in lists)
        n_reasons = sum(
            1 for r in lists for x in r if getattr(getattr(x, "reason", None), "text", "")
        )
        n_personalized = sum(1 for r in lists if getattr(r, "personalized", False))
        del out, lists
        rss["after_batch"] = peak_rss_mib()
        log(f"recsys batch {recsys_batch_s:.1f}s, implicit {implicit_batch_s * 1000:.1f}ms")

        # single-request latency, the two sides alternating (order flips each request)
        lat_recsys: list[float] = []
        lat_implicit: list[float] = []
        for i, (u, row) in enumerate(zip(request_ids, request_rows, strict=True)):
            uid = str(u)
            for side in (0, 1) if i % 2 == 0 else (1, 0):
                if side == 0:
                    t = time.perf_counter()
                    rec.recommend(uid, K)
                    lat_recsys.append(time.perf_counter() - t)
                else:
                    t = time.perf_counter()
                    model.recommend(int(row), user_items[int(row)], N=K)
                    lat_implicit.append(time.perf_counter() - t)
        rss["after_latency"] = peak_rss_mib()
        log("latency done")

    per_request_ratio = np.asarray(lat_recsys) / np.maximum(np.asarray(lat_implicit), 1e-12)
    lat = {
        side: {
            "p50_ms": percentile_ms(v, 50),
            "p90_ms": percentile_ms(v, 90),
            "p99_ms": percentile_ms(v, 99),
            "mean_ms": float(np.mean(v) * 1000),
            "max_ms": float(np.max(v) * 1000),
        }
        for side, v in (("recsys", lat_recsys), ("implicit", lat_implicit))
    }
    result: dict[str, Any] = {
        "label": args.label,
        "started_utc": started.isoformat(timespec="seconds"),
        "finished_utc": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "recsys": {"package": str(recsys_dir), **git_facts(recsys_dir.parent)},
        "machine": {
            **machine,
            "loadavg_at_end": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        },
        "args": vars(args),
        "data": {
            "users": len(ds.users),
            "items": len(ds.items),
            "interactions": len(ds.interactions),
            "consenting_users_with_events": int(user_items.shape[0]),
            "consenting_interactions": meta["interactions"],
            "generate_s": data_s,
        },
        "peer": {
            "library": "implicit.cpu.als.AlternatingLeastSquares",
            "settings": settings,
            "matrix": (
                "weighted: consenting users' raw interactions, view 1 + cart 2 + purchase 4 "
                "+ rating 1 summed per (user, item)"
                if args.matrix == "weighted"
                else "binary: 1 where a consenting user has any event on the item"
            ),
            "matrix_shape": list(user_items.shape),
            "matrix_nnz": int(user_items.nnz),
            "matrix_build_s": matrix_s,
            "recsys_collaborative_matrix_nnz": recsys_nnz,
        },
        "fit": {
            "recsys_s": recsys_fit_s,
            "implicit_s": implicit_fit_s,
            "ratio": recsys_fit_s / implicit_fit_s,
        },
        "batch": {
            "users": len(batch_ids_list),
            "recsys_method": method,
            "repeats": max(args.batch_repeats, 1),
            "recsys_s": recsys_batch_s,
            "recsys_s_runs": recsys_batch,
            "recsys_users_per_s": len(batch_ids_list) / recsys_batch_s,
            "recsys_users_per_s_first_run": len(batch_ids_list) / recsys_batch[0],
            "implicit_s": implicit_batch_s,
            "implicit_s_runs": implicit_batch,
            "implicit_users_per_s": len(batch_ids_list) / implicit_batch_s,
            "ratio": implicit_batch_s / recsys_batch_s,
            "ratio_note": "recsys users/s divided by implicit users/s",
            "recsys_items_returned": n_items_out,
            "recsys_items_with_reason": n_reasons,
            "recsys_personalized_lists": n_personalized,
        },
        "latency": {
            "requests": len(lat_recsys),
            "warmup_calls_per_side": int(args.warmup),
            **lat,
            "p50_ratio": lat["recsys"]["p50_ms"] / lat["implicit"]["p50_ms"],
            "p99_ratio": lat["recsys"]["p99_ms"] / lat["implicit"]["p99_ms"],
            "median_per_request_ratio": float(np.median(per_request_ratio)),
        },
        "peak_rss_mib": rss,
    }

    f, b, lr, li = result["fit"], result["batch"], lat["recsys"], lat["implicit"]
    d = result["data"]
    lines = [
        f"Scale `{args.label}`: synthetic shop {d['users']:,} users x {d['items']:,} items, "
        f"{d['interactions']:,} interactions; peer: implicit {result['machine']['implicit']} ALS "
        f"(factors {settings['factors']}, reg {settings['regularization']:g}, alpha "
        f"{settings['alpha']:g}, {settings['iterations']} iterations, 1 thread) on the "
        f"{args.matrix} matrix of {user_items.shape[0]:,} consenting users "
        f"({user_items.nnz:,} nonzeros); recsys commit {str(result['recsys']['commit'])[:12]}.",
        "",
        "| measure | recsys | implicit | recsys / implicit |",
        "| --- | ---: | ---: | ---: |",
        f"| fit (s) | {f['recsys_s']:.1f} | {f['implicit_s']:.1f} | {f['ratio']:.1f}x |",
        f"| batch top-{K}, {b['users']:,} users (users/s) | {b['recsys_users_per_s']:,.1f} | "
        f"{b['implicit_users_per_s']:,.0f} | {b['ratio']:.5f}x |",
        f"| request p50 (ms) | {lr['p50_ms']:.2f} | {li['p50_ms']:.3f} | "
        f"{result['latency']['p50_ratio']:.0f}x |",
        f"| request p99 (ms) | {lr['p99_ms']:.2f} | {li['p99_ms']:.3f} | "
        f"{result['latency']['p99_ratio']:.0f}x |",
        "",
        f"Median per-request ratio {result['latency']['median_per_request_ratio']:.0f}x over "
        f"{len(lat_recsys)} requests. Batch: the median of {b['repeats']} runs per side, "
        f"alternating (recsys's first run: {b['recsys_users_per_s_first_run']:,.1f} users/s). "
        f"recsys batch via `{method}` "
        f"({b['recsys_items_with_reason']:,}/{b['recsys_items_returned']:,} items with a reason, "
        f"{b['recsys_personalized_lists']:,} personalized lists).",
        "",
        "| peak RSS after (MiB, process-wide) | " + " | ".join(rss) + " |",
        "| --- |" + " ---: |" * len(rss),
        "| | " + " | ".join(f"{v:,.0f}" for v in rss.values()) + " |",
    ]
    table = "\n".join(lines)
    print(table)
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / f"scale_{args.label}.json").write_text(
        json.dumps(result, indent=2, default=str) + "\n"
    )
    (out_dir / f"scale_{args.label}.md").write_text(table + "\n")
    log(f"wrote {out_dir / f'scale_{args.label}.json'}")


if __name__ == "__main__":
    main()
