"""How the default re-ranking was chosen: MMR trade-off x FA*IR proportion on a validation
split of MovieLens-100K and of the synthetic shop, long-tail exposure against NDCG@10.

Each data set's newest 20% per user is set aside (never read here); the validation split is
the newest 20% of the rest; the pipeline runs with its defaults and only the re-ranking varies.

    OPENBLAS_NUM_THREADS=1 .venv/bin/python benchmarks/rerank_defaults.py
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
from recsys.evaluation.baselines import PipelineSystem, tune_rerank

ROOT = Path(__file__).resolve().parents[1]
GRID = {"stages.0.trade_off": [0.85, 0.9, 0.95, 1.0], "stages.1.proportion": [0.4, 0.5, 0.55, 0.6]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "datasets" / "ml-100k"))
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    args = ap.parse_args()
    sets = quality_datasets(args.data)
    result, lines = {}, ["| data | MMR trade-off | FA*IR p | validation NDCG@10 | long tail |",
                         "| --- | ---: | ---: | ---: | ---: |"]  # fmt: skip
    for name, ds in sets.items():
        train, _test = temporal_split(ds.interactions, 0.2)
        system = PipelineSystem(RecommenderConfig(), rerank=True)
        _, _, trials = tune_rerank(system, GRID, train, ds.items, ds.users, min_long_tail=0.15)
        result[name] = [{"params": p, "ndcg": n, "long_tail": float(t)} for p, n, t in trials]
        for p, n, t in trials:
            lines.append(f"| {name} | {p['stages.0.trade_off']} | {p['stages.1.proportion']} "
                         f"| {n:.4f} | {t:.1%} |")  # fmt: skip
        print("\n".join(lines[-len(trials) :]), flush=True)
    out = Path(args.out)
    (out / "rerank_defaults.json").write_text(json.dumps(result, indent=2) + "\n")
    (out / "rerank_defaults.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
