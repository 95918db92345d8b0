"""E-mail offers at scale: the `recsys offers` job against bare ``implicit`` batch ``recommend``
over the same customers, both measured in the same run (issue #14).

Each phase is a process of its own, as a shop has them: ``prepare`` generates the synthetic
shop, trains recsys (model directory + consent database, as ``recsys train`` leaves them) and
fits the peer; ``customers`` writes the peer's customers (below); ``peer-before`` and
``peer-after`` load the peer's factors and time its batch ``recommend``; ``job`` loads the saved
model and runs the e-mail job. Each reports its own peak memory, so the job's is what sending a
campaign takes, not what generating a million customers took, and the peer's holds nothing of
recsys.

What is compared (the ratio is recsys / implicit, the peer measured in this run):

- recsys: the whole job of :class:`recsys.batch.offers.OffersJob` on the local engine over the
  synthetic shop's audience: plan and exposure calibration, eligibility (consent store, send
  log), candidates, features, exact attributions, reasons, per-list re-ranking (the model's MMR
  + FA*IR) and the batch exposure target for small sellers, each chunk written and checkpointed,
  the merge into one Parquet file, the preview. Counted: offers with a reason per second, and
  customers given offers per second.
- implicit: ``AlternatingLeastSquares.recommend`` over the same customers at once (``N`` =
  offers per e-mail, already-liked items filtered): the job's eligible audience (e-mail and
  personalization consent, not capped; read from the same consent store and send log) that
  has history, which should be the set the job gives offers to (the report counts and warns
  about any difference). The model is fitted with the settings of recsys's collaborative model
  (see ``_common.als_settings``) on the consenting users' weighted confidence matrix; the
  median of ``--implicit-repeats`` runs. No reasons, no re-ranking, no consent, no output file.
- drift: the peer is timed twice, right before the job and right after it (``peer-before``,
  ``job``, ``peer-after``); the ratio is taken against the mean of the two, the time a drift
  that is steady over the run gives at its middle, and the two ratios it lies between are
  reported too. With ``--implicit-repeats 1`` each side of the bracket is one timing.
- peak memory: each process's ``ru_maxrss`` after each of its phases (it only grows).

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
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from threadpoolctl import threadpool_limits

if TYPE_CHECKING:
    from recsys.batch.campaign import Campaign

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (
    PSEUDONYM_KEY,
    ROOT,
    als_settings,
    confidence_matrix,
    fit_peer,
    git_facts,
    machine_facts,
    peak_rss_mib,
)

SEND_AT = "2026-11-23T08:00:00Z"
PHASES = ("prepare", "customers", "peer-before", "job", "peer-after")


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
    ap.add_argument("--work", default=None, help="work directory (default: a new temporary one)")
    ap.add_argument("--phase", choices=["all", *PHASES, "report"],
                    default="all", help="run one phase in this process (the default runs each "
                    "in its own); report: the table from the phases' results in --work")  # fmt: skip
    args = ap.parse_args()
    work = Path(args.work or tempfile.mkdtemp(prefix="recsys-offers-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    if args.phase == "report":
        started = datetime.fromtimestamp((work / "prepare.json").stat().st_mtime, UTC)
        missing = [p for p in PHASES if not (work / f"{p}.json").exists()]
        if missing:
            raise SystemExit(
                f"{work}: no results of phase(s) {', '.join(missing)}; run them first with "
                f"--work {work} --phase NAME (a work directory from before the peer was timed "
                "before and after the job has peer.json instead: rerun customers, peer-before, "
                "job and peer-after)"
            )
        phases = {p: json.loads((work / f"{p}.json").read_text()) for p in PHASES}
        return report(args, work, started, phases)
    if args.phase != "all":
        load, t0 = os.getloadavg(), datetime.now(UTC)
        run = {"prepare": prepare, "customers": customers, "job": job, "peer-before": peer,
               "peer-after": peer}  # fmt: skip
        facts = run[args.phase](args, work)
        facts["run"] = {"commit": git_facts(ROOT), "started_utc": t0.isoformat(timespec="seconds"),
                        "loadavg_at_start": load, "loadavg_at_end": os.getloadavg()}  # fmt: skip
        (work / f"{args.phase}.json").write_text(json.dumps(facts, indent=2, default=str))
        return
    started = datetime.now(UTC)
    phases = {}
    for phase in PHASES:
        cmd = [sys.executable, __file__, *sys.argv[1:], "--phase", phase, "--work", str(work)]
        subprocess.run(cmd, check=True)
        phases[phase] = json.loads((work / f"{phase}.json").read_text())
    report(args, work, started, phases)


def prepare(args: argparse.Namespace, work: Path) -> dict:
    """The shop, recsys trained and saved, the peer fitted and saved."""

    from recsys.data.synthetic import END, ShopSpec, make_shop
    from recsys.privacy import Pseudonymizer
    from recsys.privacy.consent import SQLiteConsentStore
    from recsys.recommender import Recommender

    rss: dict[str, float] = {"start": peak_rss_mib()}
    t = time.perf_counter()
    ds = make_shop(ShopSpec(n_users=args.users, n_items=args.items, seed=args.seed))
    data_s = time.perf_counter() - t
    rss["after_data"] = peak_rss_mib()
    log(f"shop: {len(ds.users):,} users, {len(ds.items):,} items, "
        f"{len(ds.interactions):,} interactions in {data_s:.1f}s")  # fmt: skip
    ps = Pseudonymizer(PSEUDONYM_KEY)
    with threadpool_limits(1):
        t = time.perf_counter()
        rec = Recommender(pseudonymizer=ps, consent=SQLiteConsentStore(work / "state.sqlite"))
        rec.fit(ds, now=END)
        fit_s = time.perf_counter() - t
        rss["after_recsys_fit"] = peak_rss_mib()
        log(f"recsys fit {fit_s:.1f}s")
        rec.save(work / "model")
        del rec
        gc.collect()
        user_items, meta = confidence_matrix(ds, "weighted")
        facts = {
            "users": len(ds.users),
            "items": len(ds.items),
            "interactions": len(ds.interactions),
            "generate_s": data_s,
        }
        del ds
        gc.collect()
        model, settings, implicit_fit_s = fit_peer(user_items)
        rss["after_implicit_fit"] = peak_rss_mib()
        log(f"implicit fit {implicit_fit_s:.1f}s")
    keys = np.array([ps(u) for u in meta["user_ids"]], dtype=object)
    np.savez(work / "peer.npz", user_factors=model.user_factors, item_factors=model.item_factors,
             keys=keys.astype(str), indptr=user_items.indptr, indices=user_items.indices,
             data=user_items.data, shape=np.array(user_items.shape))  # fmt: skip
    return {"data": facts, "recsys_fit_s": fit_s, "peer_fit_s": implicit_fit_s,
            "peer_settings": settings, "peak_rss_mib": rss}  # fmt: skip


def bench_campaign(args: argparse.Namespace) -> Campaign:
    """The benchmark's campaign: the job runs it, the peer's customers are its audience."""
    from recsys.batch.campaign import Campaign

    return Campaign.model_validate(
        {"id": "bench", "offers": args.offers, "send_at": SEND_AT,
         "exclude": {"bought_within_days": 30}, "frequency_cap": {"max_emails": 1, "days": 7},
         **({} if args.no_exposure else {"exposure": {"group": "small_sellers"}})}
    )  # fmt: skip


def eligible(args: argparse.Namespace, work: Path, keys: list[str]) -> list[str]:
    """The job's eligible audience, read from its consent store and send log as the job reads
    them (its audience: every consent record and every customer with history)."""
    from recsys.batch.campaign import epoch
    from recsys.batch.offers import Audience, read_suppression
    from recsys.batch.sendlog import SendLog
    from recsys.privacy import Pseudonymizer
    from recsys.privacy.consent import SQLiteConsentStore

    campaign = bench_campaign(args)
    store = SQLiteConsentStore(work / "state.sqlite")
    everyone = sorted({*store.keys(), *keys})
    send_log = SendLog(work / "state.sqlite")
    path = campaign.suppression_path()
    suppressed = read_suppression(path, Pseudonymizer(PSEUDONYM_KEY)) if path else set()
    audience = Audience(campaign, store, send_log, suppressed, epoch(campaign.send_at))
    return audience.split(everyone)[0]


def customers(args: argparse.Namespace, work: Path) -> dict:
    """The peer's customers, once for both of its timings: the job's eligible audience with a
    row in the peer's matrix (``peer-customers.json``)."""
    keys = np.load(work / "peer.npz")["keys"].tolist()
    rows = set(keys)
    chosen = [k for k in eligible(args, work, keys) if k in rows]
    (work / "peer-customers.json").write_text(json.dumps(chosen))
    return {"customers": len(chosen), "peak_rss_mib": {"end": peak_rss_mib()}}


def job(args: argparse.Namespace, work: Path) -> dict:
    """The e-mail job over the saved model, in a process of its own."""
    from recsys.batch.offers import OffersJob
    from recsys.batch.sendlog import SendLog
    from recsys.privacy import Pseudonymizer
    from recsys.privacy.consent import SQLiteConsentStore
    from recsys.recommender import Recommender

    rss: dict[str, float] = {"start": peak_rss_mib()}
    ps = Pseudonymizer(PSEUDONYM_KEY)
    store = SQLiteConsentStore(work / "state.sqlite")
    model = Recommender.load(work / "model", pseudonymizer=ps, consent=store).model_
    rss["after_load"] = peak_rss_mib()
    campaign = bench_campaign(args)
    out = work / "offers.parquet"
    with threadpool_limits(1):
        offers_job = OffersJob(
            model, campaign, out, store, SendLog(work / "state.sqlite"), pseudonymizer=ps,
            chunk_size=args.chunk_size, record=False, progress=True,
        )  # fmt: skip
        t = time.perf_counter()
        report = offers_job.run()
        job_s = time.perf_counter() - t
    rss["after_offers_job"] = peak_rss_mib()
    log(f"offers job {job_s:.1f}s: {report.offers:,} offers to {report.offered:,} customers")
    import pyarrow.parquet as pq

    table = pq.read_table(out, columns=["pseudonym", "reason"])
    offered = list(dict.fromkeys(table.column("pseudonym").to_pylist()))
    with_reason = sum(1 for r in table.column("reason").to_pylist() if r)
    (work / "offered.json").write_text(json.dumps(offered))
    return {"report": report.to_dict(), "seconds": job_s, "with_reason": with_reason,
            "peak_rss_mib": rss}  # fmt: skip


def peer(args: argparse.Namespace, work: Path) -> dict:
    """Bare implicit's batch ``recommend`` over the job's eligible customers with history."""
    import scipy.sparse as sp
    from implicit.cpu.als import AlternatingLeastSquares

    rss: dict[str, float] = {"start": peak_rss_mib()}
    saved = np.load(work / "peer.npz")
    user_items = sp.csr_matrix(
        (saved["data"], saved["indices"], saved["indptr"]), shape=tuple(saved["shape"])
    )
    model = AlternatingLeastSquares(**als_settings())
    model.user_factors, model.item_factors = saved["user_factors"], saved["item_factors"]
    row_of = {k: i for i, k in enumerate(saved["keys"].tolist())}
    chosen = json.loads((work / "peer-customers.json").read_text())
    rows = np.array([row_of[k] for k in chosen], dtype=np.int64)
    rss["after_load"] = peak_rss_mib()
    runs = []
    with threadpool_limits(1):
        for _ in range(max(args.implicit_repeats, 1)):
            t = time.perf_counter()
            model.recommend(rows, user_items[rows], N=args.offers, filter_already_liked_items=True)
            runs.append(time.perf_counter() - t)
    rss["after_implicit_batch"] = peak_rss_mib()
    log(f"implicit batch {np.median(runs):.2f}s over {len(rows):,} customers")
    return {"customers": len(rows), "batch_s": float(np.median(runs)), "batch_s_runs": runs,
            "peak_rss_mib": rss}  # fmt: skip


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def report(args: argparse.Namespace, work: Path, started: datetime, phases: dict) -> None:
    import recsys

    recsys_dir = Path(recsys.__file__).resolve().parent
    label = args.label or f"{args.users}x{args.items}"
    prep, jb = phases["prepare"], phases["job"]
    before, after = phases["peer-before"], phases["peer-after"]
    rep = jb["report"]
    job_s = jb["seconds"]
    implicit_s = (before["batch_s"] + after["batch_s"]) / 2
    offers_per_s = rep["offers"] / job_s
    n_peer = before["customers"]
    implicit_items_per_s = n_peer * args.offers / implicit_s
    bracket = [offers_per_s * pr["batch_s"] / (n_peer * args.offers) for pr in (before, after)]
    offered = set(json.loads((work / "offered.json").read_text()))
    peers = set(json.loads((work / "peer-customers.json").read_text()))
    if not before["customers"] == after["customers"] == len(peers):
        raise SystemExit("the peer's two timings ran over different customers: rerun both")
    if peers != offered:
        log(f"WARNING: the peer's customers differ from the job's offered ones: "
            f"{len(peers - offered):,} not offered, {len(offered - peers):,} offered but "
            "not the peer's; the ratio compares different sets")  # fmt: skip
    data = prep["data"]
    result = {
        "label": label,
        "started_utc": started.isoformat(timespec="seconds"),
        "finished_utc": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "recsys": {"package": str(recsys_dir), **git_facts(recsys_dir.parent)},
        "machine": machine_facts(),
        "args": vars(args),
        "data": data,
        "recsys_fit_s": prep["recsys_fit_s"],
        "job": {
            **rep,
            "seconds_measured": job_s,
            "offers_with_reason": jb["with_reason"],
            "offers_per_s": offers_per_s,
            "customers_per_s": rep["offered"] / job_s,
        },
        "peer": {
            "library": "implicit.cpu.als.AlternatingLeastSquares",
            "settings": prep["peer_settings"],
            "fit_s": prep["peer_fit_s"],
            "batch_s": implicit_s,
            "batch_s_before": before["batch_s"],
            "batch_s_after": after["batch_s"],
            "batch_s_runs": {"before": before["batch_s_runs"], "after": after["batch_s_runs"]},
            "customers": n_peer,
            "customers_not_offered": len(peers - offered),
            "offered_not_in_peer": len(offered - peers),
            "items_per_s": implicit_items_per_s,
            "customers_per_s": n_peer / implicit_s,
        },
        "ratio": offers_per_s / implicit_items_per_s,
        "ratio_before_after": bracket,
        "peak_rss_mib": {p: phases[p]["peak_rss_mib"] for p in PHASES},
        "phases": {p: phases[p].get("run") for p in PHASES},
    }
    peak = {p: max(phases[p]["peak_rss_mib"].values()) for p in PHASES}
    peak["peer"] = max(peak["peer-before"], peak["peer-after"])
    e = rep.get("exposure")
    lines = [
        f"Offers `{label}`: synthetic shop {data['users']:,} customers x {data['items']:,} items "
        f"({data['interactions']:,} interactions); {rep['customers']:,} in the audience, "
        f"{rep['offered']:,} offered; {args.offers} offers per e-mail; local engine, 1 process, "
        f"1 BLAS thread; recsys commit {str(result['recsys']['commit'])[:12]}.",
        "",
        "| measure | recsys offers job | bare implicit `recommend` | recsys / implicit |",
        "| --- | ---: | ---: | ---: |",
        f"| offers (items) per second | {offers_per_s:,.0f} | {implicit_items_per_s:,.0f} | "
        f"{result['ratio']:.3f}x |",
        f"| customers per second | {rep['offered'] / job_s:,.0f} | {n_peer / implicit_s:,.0f} | |",
        f"| wall time (s) | {job_s:.1f} | {implicit_s:.2f} (before {before['batch_s']:.2f}, "
        f"after {after['batch_s']:.2f}) | before {bracket[0]:.3f}x, after {bracket[1]:.3f}x |",
        f"| offers with a reason | {jb['with_reason']:,} of {rep['offers']:,} | none | |",
        f"| peak memory of the process (MiB) | {peak['job']:,.0f} | {peak['peer']:,.0f} | |",
        "",
        f"Preparing (shop generation, `fit`, saving; not part of the job): peak "
        f"{peak['prepare']:,.0f} MiB; recsys fit {prep['recsys_fit_s']:.0f}s, implicit fit "
        f"{prep['peer_fit_s']:.0f}s.",
        "",
        f"The peer ran over {n_peer:,} customers, right before the job and right after it; "
        f"the ratio is against the mean of the two times. Of the peer's customers "
        f"{len(peers - offered):,} were given no offers by the job; of the job's offered "
        f"customers {len(offered - peers):,} are not among the peer's.",
    ]
    split = rep.get("phases")  # job reports before the phases were recorded have none
    if split:
        parts = ", ".join(f"{k} {v:.1f}s" for k, v in split.items())
        lines += ["", f"The job's own seconds by phase: {parts}."]
        within = rep.get("within")  # the bookkeeping inside the phases (newer reports)
        if within:
            parts = ", ".join(f"{k} {v:.1f}s" for k, v in within.items())
            lines[-1] += (
                f" Of which bookkeeping: {parts} (the rest of the chunks is scoring, on the local engine)."
            )
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
