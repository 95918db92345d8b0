"""Minimization curve on MovieLens-100K: NDCG@10 of the full pipeline as per-user history caps
(two selection strategies) and retention windows shrink, averaged over 3 seeds, with the data
footprint and the loss per user segment; implicit ALS alone is measured the same way for reference.

    OPENBLAS_NUM_THREADS=1 .venv/bin/python benchmarks/minimization_movielens.py [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

from recsys.config import RecommenderConfig
from recsys.data import load_movielens
from recsys.evaluation.baselines import ImplicitFactory, PipelineFactory
from recsys.evaluation.minimization import (
    Setting,
    minimization_curve,
    plot_curve,
    summary_markdown,
)

ROOT = Path(__file__).resolve().parents[1]
CAPS = (100, 150, 200, 300)
WINDOWS = (150, 180)


def settings(quick: bool) -> list[Setting]:
    out = [Setting("full", None)]
    out += [Setting("newest", c) for c in ((150,) if quick else CAPS)]
    out += [Setting("min_rating", r) for r in ((2,) if quick else (2, 3))]
    out += [Setting("min_rating+newest", c, 2) for c in ((200,) if quick else (150, 200))]
    out += [Setting("retention", w) for w in ((180,) if quick else WINDOWS)]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "datasets" / "ml-100k"))
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()
    ds = load_movielens(args.data)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    seeds = (0,) if args.quick else (0, 1, 2)
    suffix = "_quick" if args.quick else ""
    report = {}
    parts = []
    for name, make in (
        ("implicit ALS alone", ImplicitFactory(algorithm="als", factors=128, regularization=10.0)),
        ("recsys pipeline", PipelineFactory(RecommenderConfig(purpose="evaluation"))),
    ):
        t = time.perf_counter()
        res = minimization_curve(ds, make, settings(args.quick), seeds=seeds, workers=args.workers,
                                 progress=lambda m: print("  ", m, flush=True))  # fmt: skip
        print(f"{name}: {time.perf_counter() - t:.0f}s")
        slug = "als" if "ALS" in name else "pipeline"
        plot_curve(res, str(out / f"minimization_{slug}{suffix}.png"))
        parts.append(summary_markdown(res, name))
        report[slug] = {
            "table": res["table"].to_dict("records"),
            "best": res["best"],
            "full_ndcg": res["full_ndcg"],
        }
        print(parts[-1])
    (out / f"minimization_movielens{suffix}.md").write_text("\n\n".join(parts) + "\n")
    (out / f"minimization_movielens{suffix}.json").write_text(
        json.dumps(report, indent=2, default=str) + "\n"
    )


if __name__ == "__main__":
    main()
