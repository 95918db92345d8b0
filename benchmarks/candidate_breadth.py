"""How many collaborative candidates the ranker needs (``candidates.sources[collaborative].n``,
issues #13, #14): validation quality per candidate count, on the data sets the defaults are
chosen on (MovieLens-100K and the synthetic shop of ``_common.quality_datasets``, plus the same
shop drawn with ``--seeds`` more seeds, since one small shop's numbers move by about a percent).

Each data set's newest 20% per user is set aside (never read here); the validation split is the
newest 20% of the rest. For each count the whole pipeline (candidates, features, ranker,
re-ranking, as served) is fitted on the remainder and recommends top-10 to the validation users;
the other sources and every other setting keep their defaults. Reported: NDCG@10 and recall@10,
and each relative to the ``--reference`` count (the default before this benchmark: 200); the
synthetic shops also as their mean.

The cost side (time per customer, and how many offers change at 100,000 items) is in
``benchmarks/index_breadth.py`` (at the model's own candidate count).

    OPENBLAS_NUM_THREADS=1 .venv/bin/python benchmarks/candidate_breadth.py
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse
import json
import sys
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import numpy as np
from _common import ROOT, git_facts, machine_facts, quality_datasets

from recsys.config import RecommenderConfig
from recsys.data.splits import temporal_split
from recsys.data.synthetic import ShopSpec, make_shop
from recsys.evaluation.baselines import PipelineSystem, relevant
from recsys.evaluation.metrics import ndcg_values, recall_values


def config_with(n: int) -> RecommenderConfig:
    """The default configuration with ``n`` collaborative candidates."""
    cfg = RecommenderConfig()
    sources = [
        s.model_copy(update={"n": n}) if s.kind == "collaborative" else s
        for s in cfg.candidates.sources
    ]
    return cfg.model_copy(
        update={"candidates": cfg.candidates.model_copy(update={"sources": sources})}
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, nargs="+", default=[50, 100, 150, 200, 300])
    ap.add_argument("--reference", type=int, default=200)
    ap.add_argument("--seeds", type=int, nargs="*", default=[43, 44], help="more synthetic shops")
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "datasets" / "ml-100k"))
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    args = ap.parse_args()
    started = datetime.now(UTC)
    counts = sorted(set(args.n) | {args.reference})
    result: dict = {"data": {}, "reference": args.reference}
    lines = [
        f"| data | collaborative candidates | validation NDCG@10 | vs {args.reference} | recall@10 "
        f"| vs {args.reference} |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    sets = quality_datasets(args.data)
    for seed in args.seeds:
        sets[f"synthetic shop (3,000 x 800, seed {seed})"] = make_shop(
            ShopSpec(3000, 800, seed=seed)
        )
    for name, ds in sets.items():
        train, _test = temporal_split(ds.interactions, 0.2)
        fit_part, val = temporal_split(train, 0.2)
        truth = relevant(val)
        users = sorted(truth)
        rows = []
        for n in counts:
            system = PipelineSystem(config_with(n), rerank=True).fit(fit_part, ds.items, ds.users)
            recs = system.recommend_all(users, 10)
            rows.append(
                {
                    "n": n,
                    "ndcg@10": float(ndcg_values(recs, truth, 10).mean()),
                    "recall@10": float(recall_values(recs, truth, 10).mean()),
                }
            )
            print(f"{name} n={n}: {rows[-1]}", flush=True)
        result["data"][name] = rows
    synthetic = [rows for name, rows in result["data"].items() if name.startswith("synthetic")]
    if len(synthetic) > 1:
        result["data"]["synthetic shops (mean)"] = [
            {
                "n": n,
                "ndcg@10": float(np.mean([rows[c]["ndcg@10"] for rows in synthetic])),
                "recall@10": float(np.mean([rows[c]["recall@10"] for rows in synthetic])),
            }
            for c, n in enumerate(counts)
        ]
    for name, rows in result["data"].items():
        ref = next(r for r in rows if r["n"] == args.reference)
        for r in rows:
            r["ndcg_vs_reference"] = r["ndcg@10"] / ref["ndcg@10"] - 1
            r["recall_vs_reference"] = r["recall@10"] / ref["recall@10"] - 1
            lines.append(
                f"| {name} | {r['n']} | {r['ndcg@10']:.4f} | {r['ndcg_vs_reference']:+.2%} "
                f"| {r['recall@10']:.4f} | {r['recall_vs_reference']:+.2%} |"
            )
    result["run"] = {
        "commit": git_facts(ROOT),
        "machine": machine_facts(),
        "started_utc": started.isoformat(timespec="seconds"),
    }
    print("\n".join(lines))
    out = Path(args.out)
    (out / "candidate_breadth.json").write_text(json.dumps(result, indent=2) + "\n")
    (out / "candidate_breadth.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
