"""The index search breadth (``collaborative.ann_ef``) and where a batch's time goes (issues #13,
#14), on one model of the synthetic shop (100,000 customers x 100,000 items by default).

1. Breadth: for each ``ef``, the median time of one search as the collaborative source asks it
   (``AnnIndex.search`` for its ``n`` items, every item allowed), recall@n against exact numpy
   top-n, and the e-mail offers of ``--customers`` eligible customers (one chunk of the job:
   reasons, MMR + FA*IR, the small-sellers boost held) compared with those at the first ``ef``:
   the share of customers whose five offers are identical, and of offers kept.
2. Where the time goes: CPU time per stage (candidates, and within them the collaborative source
   and its index search; features and attributions; re-ranking; reasons; output), per customer, for
   the same chunk and for ``recommend_many`` top-10 over the same customers, at the model's
   ``ef``.

One thread. Results: a Markdown table on stdout and ``benchmarks/results/index_breadth.json``
/ ``.md``.

    OPENBLAS_NUM_THREADS=1 .venv/bin/python benchmarks/index_breadth.py
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse
import collections
import json
import sys
import time
from collections.abc import Callable
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import PSEUDONYM_KEY, ROOT, git_facts, machine_facts


@contextmanager
def timed_stages(targets: dict[str, tuple[object, str]]):
    """CPU seconds spent inside each ``(owner, attribute)`` callable while the block runs."""
    spent: collections.Counter[str] = collections.Counter()
    saved = []
    for label, (owner, name) in targets.items():
        f = getattr(owner, name)
        saved.append((owner, name, f))

        def wrapper(*a, _f: Callable = f, _label: str = label, **k):
            t = time.process_time()
            try:
                return _f(*a, **k)
            finally:
                spent[_label] += time.process_time() - t

        setattr(owner, name, wrapper)
    try:
        yield spent
    finally:
        for owner, name, f in saved:
            setattr(owner, name, f)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--users", type=int, default=100_000)
    ap.add_argument("--items", type=int, default=100_000)
    ap.add_argument("--customers", type=int, default=2000)
    ap.add_argument("--queries", type=int, default=500)
    ap.add_argument("--ef", type=int, nargs="+", default=[256, 192, 128])
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    args = ap.parse_args()

    import recsys.batch.chunk as chunk_mod
    import recsys.candidates.sources as sources
    import recsys.pipeline.pipeline as pipeline_mod
    from recsys.batch.campaign import Campaign
    from recsys.batch.chunk import ChunkSpec, ChunkTask, run_chunk
    from recsys.candidates.ann import AnnIndex
    from recsys.data.synthetic import END, ShopSpec, make_shop
    from recsys.explain.explainer import Explainer
    from recsys.privacy import Pseudonymizer
    from recsys.privacy.consent import SQLiteConsentStore
    from recsys.ranking.scorer import Scorer
    from recsys.recommender import Recommender

    started = datetime.now(UTC)
    load0 = os.getloadavg()
    ds = make_shop(ShopSpec(n_users=args.users, n_items=args.items, seed=42))
    ps = Pseudonymizer(PSEUDONYM_KEY)
    work = Path(os.environ.get("TMPDIR", "/tmp")) / f"recsys-index-breadth-{os.getpid()}"
    work.mkdir(parents=True, exist_ok=True)
    store = SQLiteConsentStore(work / "state.sqlite")
    with threadpool_limits(1):
        rec = Recommender(pseudonymizer=ps, consent=store).fit(ds, now=END)
    model = rec.model_
    ctx = model.ctx
    index = ctx.collab.index_
    if index is None:
        raise SystemExit("the model has no index: use at least 20,000 items")
    model_ef = index.ef
    n_cand = next(s.n for s in model.config.candidates.sources if s.kind == "collaborative")

    users = ds.users
    ok = users["consent_personalization"].astype(bool) & users["consent_email"].astype(bool)
    active = set(ds.interactions["user_id"].astype(str).unique())
    pool = sorted(u for u in users.loc[ok, "user_id"].astype(str) if u in active)
    rng = np.random.default_rng(1)
    chosen = [str(u) for u in rng.choice(pool, size=min(args.customers, len(pool)), replace=False)]
    keys = [ps(u) for u in chosen]
    consent = store.get_many(keys)
    campaign = Campaign.model_validate(
        {"id": "bench", "offers": 5, "send_at": "2026-11-23T08:00:00Z",
         "exclude": {"bought_within_days": 30}, "exposure": {"group": "small_sellers"}}
    )  # fmt: skip
    spec = ChunkSpec(campaign, None, boost=0.5)
    task = ChunkTask(0, tuple(k for k in keys if k in consent), consent)

    # --- 1. breadth -------------------------------------------------------------------------
    rows = [ctx.history.users.get(k) for k in keys[: args.queries]]
    V = ctx.collab.user_factors_[[r for r in rows if r >= 0]].astype(np.float32)
    Y = ctx.collab.item_factors_
    exact = [set(np.argpartition(-(Y @ v), n_cand)[:n_cand].tolist()) for v in V]
    everything = np.ones(len(Y), dtype=bool)

    def offers_of() -> dict[str, list[str]]:
        table = run_chunk(model, spec, task).table
        out: dict[str, list[str]] = {}
        for key, item in zip(table.column("pseudonym").to_pylist(),
                             table.column("item_id").to_pylist(), strict=True):  # fmt: skip
            out.setdefault(key, []).append(item)
        return out

    breadth, lists = [], {}
    with threadpool_limits(1):
        for ef in args.ef:
            probe = AnnIndex(index.index, index.n_items, ef)
            probe.search(V[0], n_cand, everything)
            times, recall = [], []
            for v, want in zip(V, exact, strict=True):
                t = time.perf_counter()
                found = probe.search(v, n_cand, everything)
                times.append(time.perf_counter() - t)
                got = set(found.tolist()) if found is not None else set()  # None: no answer
                recall.append(len(want & got) / n_cand)
            index.index.set_ef(ef)
            index.ef = ef
            lists[ef] = offers_of()
            breadth.append({"ef": ef, "search_ms_p50": float(np.median(times) * 1000),
                            "recall_at_n": float(np.mean(recall))})  # fmt: skip
        base = lists[args.ef[0]]
        for row in breadth:
            got = lists[row["ef"]]
            row["identical_offer_lists"] = float(np.mean([base[k] == got.get(k) for k in base]))
            row["offers_kept"] = float(
                np.mean([len(set(base[k]) & set(got.get(k, []))) / len(base[k]) for k in base])
            )
        index.index.set_ef(model_ef)
        index.ef = model_ef

        # --- 2. where the time goes ---------------------------------------------------------
        stages = {
            "candidates": (pipeline_mod, "block_candidates"),
            "candidates: collaborative source": (sources.CollaborativeSource, "__call__"),
            "candidates: collaborative source: index search": (AnnIndex, "search_many"),
            "candidates: trending source": (sources.TrendingSource, "__call__"),
            "features and attributions": (Scorer, "__call__"),
            "reasons": (Explainer, "many"),
            "output objects": (pipeline_mod.Pipeline, "_recommendations"),
        }
        breakdown = {}
        for name, run, extra in (
            ("e-mail chunk (5 offers)", lambda: run_chunk(model, spec, task),
             {"re-ranking (exposure, MMR, FA*IR)": (chunk_mod.ExposureController, "many"),
              "offer rows": (chunk_mod, "offer_table")}),
            ("recommend_many (top 10)", lambda: rec.recommend_many(chosen, k=10),
             {"re-ranking (MMR, FA*IR)": (pipeline_mod.Pipeline, "_rerank")}),
        ):  # fmt: skip
            run()  # warm
            with timed_stages({**stages, **extra}) as spent:
                t = time.process_time()
                run()
                total = time.process_time() - t
            n = len(task.keys)
            breakdown[name] = {
                "customers": n,
                "total_ms_per_customer": total / n * 1000,
                "ms_per_customer": {k: spent[k] / n * 1000 for k in {**stages, **extra}},
            }

    result = {
        "started_utc": started.isoformat(timespec="seconds"),
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "recsys": git_facts(ROOT),
        "machine": machine_facts(),
        "loadavg_at_start": load0,
        "loadavg_at_end": os.getloadavg(),
        "args": vars(args),
        "model_ef": model_ef,
        "collaborative_candidates": n_cand,
        "breadth": breadth,
        "breakdown": breakdown,
    }
    lines = [
        f"Index breadth on the synthetic shop, {args.users:,} customers x {args.items:,} items; "
        f"{len(task.keys):,} customers' five e-mail offers compared with ef {args.ef[0]}; one "
        f"thread; commit {str(result['recsys'].get('commit'))[:12]}; load average "
        f"{load0[0]:.1f} -> {result['loadavg_at_end'][0]:.1f}.",
        "",
        f"| ef | one search p50 (ms) | recall@{n_cand} | identical offer lists | offers kept |",
        "| ---: | ---: | ---: | ---: | ---: |",
        *(
            f"| {r['ef']} | {r['search_ms_p50']:.3f} | {r['recall_at_n']:.3f} | "
            f"{r['identical_offer_lists']:.1%} | {r['offers_kept']:.1%} |"
            for r in breadth
        ),
    ]
    for name, b in breakdown.items():
        lines += ["", f"CPU time per customer, {name}, ef {model_ef}: "
                  f"{b['total_ms_per_customer']:.3f} ms in all.", "",
                  "| stage | ms per customer |", "| --- | ---: |"]  # fmt: skip
        lines += [f"| {k} | {v:.3f} |" for k, v in b["ms_per_customer"].items()]
    table = "\n".join(lines)
    print(table)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "index_breadth.json").write_text(json.dumps(result, indent=2, default=str) + "\n")
    (out / "index_breadth.md").write_text(table + "\n")


if __name__ == "__main__":
    main()
