"""Are the defaults at least as good as the settings the ranking benchmark tuned? The pipeline
with its defaults against the previous defaults (15 leaves per tree) and against the settings
`ranking_movielens.py` chose (ALS 200 factors, regularization 10, alpha 2; 7 leaves; 200
collaborative candidates), on the test sets of MovieLens-100K and of the synthetic shop, no
re-ranking.

Protocol: each user's newest 20% held out (``recsys.data.splits.temporal_split``, the ranking
benchmark's split), relevant = ratings >= 4 or purchases, training items excluded.

    OPENBLAS_NUM_THREADS=1 .venv/bin/python benchmarks/defaults_vs_tuned.py
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

from _common import quality_datasets

from recsys.config import RecommenderConfig
from recsys.data.splits import temporal_split
from recsys.evaluation.baselines import PipelineSystem, relevant, with_overrides
from recsys.evaluation.compare import paired_test
from recsys.evaluation.metrics import ndcg_values

ROOT = Path(__file__).resolve().parents[1]
TUNED = {
    "collaborative.factors": 200,
    "collaborative.regularization": 10.0,
    "collaborative.alpha": 2.0,
    "ranker.max_leaf_nodes": 7,
    "ranker.max_iter": 300,
    "candidates.sources.0.n": 200,
}
"""``benchmarks/results/ranking_movielens.json``, ``tuned``: the grid's choice for ALS and us."""
PREVIOUS = {"ranker.max_leaf_nodes": 15}
"""The defaults before this comparison (15 leaves per tree)."""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "datasets" / "ml-100k"))
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    args = ap.parse_args()
    sets = quality_datasets(args.data)
    base = RecommenderConfig(purpose="evaluation")
    configs = {
        "defaults": base,
        "previous defaults": with_overrides(base, PREVIOUS),
        "tuned settings": with_overrides(base, TUNED),
    }
    lines = ["| data | defaults | previous defaults (15 leaves) | ranking benchmark's tuned "
             "settings | defaults vs previous (p) | defaults vs tuned (p) |",
             "| --- | ---: | ---: | ---: | ---: | ---: |"]  # fmt: skip
    result = {}
    for name, ds in sets.items():
        train, test = temporal_split(ds.interactions, 0.2)
        truth = relevant(test)
        users = sorted(truth)
        vals = {}
        for label, cfg in configs.items():
            recs = PipelineSystem(cfg).fit(train, ds.items, ds.users).recommend_all(users, 10)
            vals[label] = ndcg_values(recs, truth, 10)
        prev = paired_test(vals["defaults"], vals["previous defaults"])
        tuned = paired_test(vals["defaults"], vals["tuned settings"])
        result[name] = {"ndcg": {n: float(v.mean()) for n, v in vals.items()},
                        "vs_previous": prev, "vs_tuned": tuned}  # fmt: skip
        lines.append(
            f"| {name} | {prev['mean']:.4f} | {prev['reference_mean']:.4f} "
            f"| {tuned['reference_mean']:.4f} | {prev['relative']:+.1%} ({prev['p_value']:.2g}) "
            f"| {tuned['relative']:+.1%} ({tuned['p_value']:.2g}) |"
        )
        print(lines[-1], flush=True)
    out = Path(args.out)
    (out / "defaults_vs_tuned.json").write_text(json.dumps(result, indent=2) + "\n")
    (out / "defaults_vs_tuned.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
