"""E-mail offers at scale: the `recsys offers` job against bare ``implicit`` batch ``recommend``
over the same customers, both measured in the same run (issue #14).

What is compared (the ratio is recsys / implicit, the peer measured in this run):

- recsys: the whole job of :class:`recsys.batch.offers.OffersJob` on the local engine over the
  synthetic shop's audience: plan and exposure calibration, eligibility (consent store, send
  log), candidates, features, exact attributions, reasons, per-list re-ranking (the model's MMR
  + FA*IR) and the batch exposure target for small sellers, each chunk written and checkpointed,
  the merge into one Parquet file, the preview. Counted: offers with a reason per second, and
  customers given offers per second.
- implicit: ``AlternatingLeastSquares.recommend`` over the same offered customers at once (``N``
  = offers per e-mail, already-liked items filtered), the model fitted with the settings of
  recsys's collaborative model (see ``_common.als_settings``) on the consenting users' weighted
  confidence matrix; the median of ``--implicit-repeats`` runs. No reasons, no re-ranking, no
  consent, no output file.
- peak memory: process-wide ``ru_maxrss`` after each phase (it only grows).

BLAS runs with one thread on both sides. Results: a Markdown table on stdout and
``benchmarks/results/offers_<label>.json`` / ``.md``.

    OPENBLAS_NUM_THREADS=1 .venv/bin/python benchmarks/offers.py                  # 1M x 100k
    OPENBLAS_NUM_THREADS=1 .venv/bin/python benchmarks/offers.py --users 100000 --items 20000
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse
import gc
import json
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (
    PSEUDONYM_KEY,
    ROOT,
    als_settings,
    confidence_matrix,
    git_facts,
    machine_facts,
    peak_rss_mib,
)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--users", type=int, default=1_000_000)
    ap.add_argument("--items", type=int, default=100_000)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--offers", type=int, default=5, help="offers per e-mail (implicit's N)")
    ap.add_argument("--chunk-size", type=int, default=2000)
    ap.add_argument("--no-exposure", action="store_true", help="no batch exposure target")
    ap.add_argument("--implicit-repeats", type=int, default=3)
    ap.add_argument("--label", default=None, help="default: USERSxITEMS")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    args = ap.parse_args()
    label = args.label or f"{args.users}x{args.items}"

    from implicit.cpu.als import AlternatingLeastSquares

    import recsys
    from recsys.batch.campaign import Campaign
    from recsys.batch.offers import OffersJob
    from recsys.batch.sendlog import SendLog
    from recsys.data.synthetic import END, ShopSpec, make_shop
    from recsys.privacy import Pseudonymizer
    from recsys.privacy.consent import SQLiteConsentStore
    from recsys.recommender import Recommender

    recsys_dir = Path(recsys.__file__).resolve().parent
    started = datetime.now(UTC)
    machine = machine_facts()
    rss: dict[str, float] = {"start": peak_rss_mib()}
    log = lambda msg: print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)  # noqa: E731

    t = time.perf_counter()
    ds = make_shop(ShopSpec(n_users=args.users, n_items=args.items, seed=args.seed))
    data_s = time.perf_counter() - t
    rss["after_data"] = peak_rss_mib()
    log(f"shop: {len(ds.users):,} users, {len(ds.items):,} items, "
        f"{len(ds.interactions):,} interactions in {data_s:.1f}s")  # fmt: skip
    work = Path(tempfile.mkdtemp(prefix="recsys-offers-bench-"))
    ps = Pseudonymizer(PSEUDONYM_KEY)
    store = SQLiteConsentStore(work / "state.sqlite")

    with threadpool_limits(1):
        t = time.perf_counter()
        rec = Recommender(pseudonymizer=ps, consent=store).fit(ds, now=END)
        fit_s = time.perf_counter() - t
        gc.collect()
        rss["after_recsys_fit"] = peak_rss_mib()
        log(f"recsys fit {fit_s:.1f}s")

        campaign = Campaign.model_validate(
            {"id": "bench", "offers": args.offers, "send_at": "2026-11-23T08:00:00Z",
             "exclude": {"bought_within_days": 30}, "frequency_cap": {"max_emails": 1, "days": 7},
             **({} if args.no_exposure else {"exposure": {"group": "small_sellers"}})}
        )  # fmt: skip
        out = work / "offers.parquet"
        job = OffersJob(
            rec.model_, campaign, out, store, SendLog(work / "state.sqlite"), pseudonymizer=ps,
            chunk_size=args.chunk_size, record=False, progress=True,
        )  # fmt: skip
        t = time.perf_counter()
        report = job.run()
        job_s = time.perf_counter() - t
        rss["after_offers_job"] = peak_rss_mib()
        log(f"offers job {job_s:.1f}s: {report.offers:,} offers to {report.offered:,} customers")

        import pyarrow.parquet as pq

        table = pq.read_table(out, columns=["pseudonym", "reason"])
        offered = list(dict.fromkeys(table.column("pseudonym").to_pylist()))
        with_reason = sum(1 for r in table.column("reason").to_pylist() if r)
        del table

        # the peer over the same customers
        user_items, meta = confidence_matrix(ds, "weighted")
        settings = als_settings()
        model = AlternatingLeastSquares(**settings)
        t = time.perf_counter()
        model.fit(user_items, show_progress=False)
        implicit_fit_s = time.perf_counter() - t
        rss["after_implicit_fit"] = peak_rss_mib()
        row_of = {ps(u): i for i, u in enumerate(meta["user_ids"])}
        rows = np.array([row_of[k] for k in offered], dtype=np.int64)
        runs = []
        for _ in range(max(args.implicit_repeats, 1)):
            t = time.perf_counter()
            model.recommend(rows, user_items[rows], N=args.offers, filter_already_liked_items=True)
            runs.append(time.perf_counter() - t)
        implicit_s = float(np.median(runs))
        rss["after_implicit_batch"] = peak_rss_mib()
        log(f"implicit batch {implicit_s:.2f}s over {len(rows):,} customers")

    offers_per_s = report.offers / job_s
    implicit_items_per_s = len(rows) * args.offers / implicit_s
    result = {
        "label": label,
        "started_utc": started.isoformat(timespec="seconds"),
        "finished_utc": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "recsys": {"package": str(recsys_dir), **git_facts(recsys_dir.parent)},
        "machine": machine,
        "args": vars(args),
        "data": {
            "users": len(ds.users),
            "items": len(ds.items),
            "interactions": len(ds.interactions),
            "generate_s": data_s,
        },
        "recsys_fit_s": fit_s,
        "job": {
            **report.to_dict(),
            "seconds_measured": job_s,
            "offers_with_reason": with_reason,
            "offers_per_s": offers_per_s,
            "customers_per_s": report.offered / job_s,
        },
        "peer": {
            "library": "implicit.cpu.als.AlternatingLeastSquares",
            "settings": settings,
            "fit_s": implicit_fit_s,
            "batch_s": implicit_s,
            "batch_s_runs": runs,
            "customers": len(rows),
            "items_per_s": implicit_items_per_s,
            "customers_per_s": len(rows) / implicit_s,
        },
        "ratio": offers_per_s / implicit_items_per_s,
        "peak_rss_mib": rss,
    }
    e = report.exposure
    lines = [
        f"Offers `{label}`: synthetic shop {len(ds.users):,} customers x {len(ds.items):,} items "
        f"({len(ds.interactions):,} interactions); {report.customers:,} in the audience, "
        f"{report.offered:,} offered; {args.offers} offers per e-mail; local engine, 1 process, "
        f"1 BLAS thread; recsys commit {str(result['recsys']['commit'])[:12]}.",
        "",
        "| measure | recsys offers job | bare implicit `recommend` | recsys / implicit |",
        "| --- | ---: | ---: | ---: |",
        f"| offers (items) per second | {offers_per_s:,.0f} | {implicit_items_per_s:,.0f} | "
        f"{result['ratio']:.4f}x |",
        f"| customers per second | {report.offered / job_s:,.0f} | {len(rows) / implicit_s:,.0f} | |",
        f"| wall time (s) | {job_s:.1f} | {implicit_s:.2f} | |",
        f"| offers with a reason | {with_reason:,} of {report.offers:,} | none | |",
        "",
        "| peak RSS after (MiB, process-wide) | " + " | ".join(rss) + " |",
        "| --- |" + " ---: |" * len(rss),
        "| | " + " | ".join(f"{v:,.0f}" for v in rss.values()) + " |",
    ]
    if e:
        lines += ["", f"Small sellers' exposure: {e['share']:.1%} (target {e['target']:.1%})."]
    table_md = "\n".join(lines)
    print(table_md)
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / f"offers_{label}.json").write_text(json.dumps(result, indent=2, default=str) + "\n")
    (out_dir / f"offers_{label}.md").write_text(table_md + "\n")
    log(f"wrote {out_dir / f'offers_{label}.json'}")


if __name__ == "__main__":
    main()
