"""Quality out of the box on MovieLens-100K: `recsys train` with the defaults, and after
`recsys tune`, against a field of peers each tuned with the same budget, on a split of its own.

Protocol: each user's ratings ordered by time (ties by item id), the newest 20% (rounded down,
at least one) held out; ratings >= 4 relevant; each user's training items excluded; top-10 over
the whole catalogue. This is not the split of `ranking_movielens.py` (which rounds and breaks
ties by file order). Ours runs as a shop would: the `recsys` command line on the training
ratings written in the GroupLens layout (`--now` is the day after the last training rating, the
data's own date). Every peer is tuned by Optuna on a validation split carved from the training
data (each user's newest 20% of it), with the same time budget and trial cap as `recsys tune`.

    OPENBLAS_NUM_THREADS=1 .venv/bin/python benchmarks/defaults_movielens.py [--budget 10m]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import git_facts, machine_facts

from recsys.config import RecommenderConfig
from recsys.data import load_movielens
from recsys.evaluation.audit import bootstrap_mean
from recsys.evaluation.baselines import (
    EASE,
    ImplicitSystem,
    ItemKNN,
    MostPopular,
    long_tail_items,
)
from recsys.evaluation.compare import paired_comparisons
from recsys.evaluation.metrics import catalog_coverage, exposure_share, ndcg_values
from recsys.evaluation.peers import RP3beta, UnconstrainedRanker
from recsys.evaluation.tuning import Range, Split, parse_budget, search, search_model

ROOT = Path(__file__).resolve().parents[1]
RECSYS = str(Path(sys.executable).with_name("recsys"))
PEERS = {
    "als": (
        ImplicitSystem,
        {"algorithm": "als"},
        {
            "factors": Range(16, 256, log=True),
            "regularization": Range(0.01, 100.0, log=True),
            "alpha": Range(0.1, 20.0, log=True),
            "iterations": Range(5, 50),
        },
    ),
    "bpr": (
        ImplicitSystem,
        {"algorithm": "bpr"},
        {
            "factors": Range(16, 256, log=True),
            "learning_rate": Range(0.001, 0.1, log=True),
            "regularization": Range(0.0001, 0.1, log=True),
            "iterations": Range(20, 400, log=True),
        },
    ),
    "ease": (EASE, {}, {"l2": Range(1.0, 5000.0, log=True)}),
    "item-knn": (ItemKNN, {}, {"neighbors": Range(5, 500, log=True)}),
    "rp3beta": (
        RP3beta,
        {},
        {
            "alpha": Range(0.2, 2.0),
            "beta": Range(0.0, 1.0),
            "neighbors": Range(10, 500, log=True),
        },
    ),
}


def split_newest(ratings: pd.DataFrame, fraction: float = 0.2) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Each user's newest ``fraction`` of ratings (ties by item id, rounded down, at least one)."""
    r = ratings.sort_values(["user_id", "timestamp", "item_id"], kind="stable")
    pos = r.groupby("user_id").cumcount().to_numpy()
    n = r.groupby("user_id")["item_id"].transform("size").to_numpy()
    late = pos >= n - np.maximum(1, np.floor(n * fraction)).astype(int)
    return r[~late], r[late]


def write_grouplens(src: Path, dst: Path, train: pd.DataFrame) -> None:
    """The training ratings in the GroupLens layout, beside the data set's own item/user files."""
    dst.mkdir(parents=True)
    train[["user_id", "item_id", "rating", "timestamp"]].to_csv(
        dst / "u.data", sep="\t", header=False, index=False
    )
    for name in ("u.item", "u.user", "u.genre", "u.occupation"):
        shutil.copy(src / name, dst / name)


def cli(*args: str, env: dict[str, str]) -> float:
    t = time.perf_counter()
    subprocess.run([RECSYS, *args], check=True, env=env, stdout=subprocess.DEVNULL)
    return time.perf_counter() - t


def read_recs(path: Path) -> dict[str, list[str]]:
    df = pd.read_csv(path, dtype={"user_id": str, "item_id": str})
    df = df.sort_values(["user_id", "rank"])
    return {u: g["item_id"].tolist() for u, g in df.groupby("user_id")}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "datasets" / "ml-100k"))
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    ap.add_argument("--budget", default="10m", help="tuning budget per system (recsys tune's)")
    ap.add_argument("--max-trials", type=int, default=200, help="trial cap per system")
    ap.add_argument("--quick", action="store_true", help="1-minute budgets, 3 trials (smoke run)")
    ap.add_argument("--k", type=int, default=10)
    args = ap.parse_args()
    budget = parse_budget("1m" if args.quick else args.budget)
    trials = 3 if args.quick else args.max_trials
    k = args.k
    src = Path(args.data)
    started = time.perf_counter()
    facts = {"machine": machine_facts(), "git": git_facts(ROOT)}

    raw = pd.read_csv(src / "u.data", sep="\t", names=["user_id", "item_id", "rating", "timestamp"])
    train_raw, test_raw = split_newest(raw)
    work = Path(tempfile.mkdtemp(prefix="recsys-defaults-"))
    write_grouplens(src, work / "ml", train_raw)
    now = pd.Timestamp(int(train_raw["timestamp"].max()), unit="s", tz="UTC").normalize()
    now = (now + pd.Timedelta(days=1)).strftime("%Y-%m-%d")
    ds = load_movielens(work / "ml")  # what the CLI reads, for the peers
    test = test_raw.astype({"user_id": str, "item_id": str})
    truth = {u: set(g["item_id"]) for u, g in test[test["rating"] >= 4].groupby("user_id")}
    users = sorted(truth)
    pd.DataFrame({"user_id": users}).to_csv(work / "users.csv", index=False)
    print(f"train {len(train_raw):,}  test {len(test_raw):,}  users scored {len(users):,}")
    print(f"working in {work}; budget {budget:.0f}s and at most {trials} trials per system")

    # --- ours, through the command line ---------------------------------------------------
    env = {**os.environ, "RECSYS_STATE_DIR": str(work / "state")}
    recs: dict[str, dict[str, list[str]]] = {}
    seconds: dict[str, float] = {}
    data = ["--data", str(work / "ml"), "--now", now]
    seconds["recsys defaults: train"] = cli("train", *data, "--out", str(work / "m0"), env=env)
    for name, extra in (("recsys defaults", ["--no-rerank"]), ("recsys defaults, re-ranked", [])):
        out = work / f"{name}.csv"
        cli("recommend", "--model", str(work / "m0"), "--users", str(work / "users.csv"),
            "--k", str(k), "--out", str(out), *extra, env=env)  # fmt: skip
        recs[name] = read_recs(out)
    tune_args = ["--budget", f"{budget:.0f}s", "--max-trials", str(trials), "--no-progress"]
    seconds["recsys tune"] = cli(
        "tune", "--data", str(work / "ml"), "--out", str(work / "tuned.toml"), *tune_args, env=env
    )
    cli("train", *data, "--config", str(work / "tuned.toml"), "--out", str(work / "m1"), env=env)
    for name, extra in (("recsys tuned", ["--no-rerank"]), ("recsys tuned, re-ranked", [])):
        out = work / f"{name}.csv"
        cli("recommend", "--model", str(work / "m1"), "--users", str(work / "users.csv"),
            "--k", str(k), "--out", str(out), *extra, env=env)  # fmt: skip
        recs[name] = read_recs(out)
    print(f"recsys: default and tuned lists written ({time.perf_counter() - started:.0f}s)")

    # --- the peers, tuned in process with the same budget ---------------------------------
    split = Split.carve(ds.interactions, ds.items, ds.users)
    tuned: dict[str, dict] = {}
    for name, (cls, fixed, space) in PEERS.items():
        res = search(name, cls, space, split, budget_s=budget, k=k, max_trials=trials,
                     fixed=fixed, seed=0)  # fmt: skip
        params = {**fixed, **res.params}
        system = cls(**params).fit(ds.interactions, ds.items, ds.users)
        recs[name] = system.recommend_all(users, k)
        tuned[name] = {"params": params, "validation_ndcg": res.ndcg, "trials": len(res.trials),
                       "seconds": res.seconds}  # fmt: skip
        print(f"{name:<10} {len(res.trials):>3} trials in {res.seconds:.0f}s: {params}")
    # the unconstrained ranker: the same two-step model search as `recsys tune`
    best_cfg, phases = search_model(UnconstrainedRanker, RecommenderConfig(), split,
                                    budget_s=budget, k=k, max_trials=trials)  # fmt: skip
    gbm = UnconstrainedRanker(best_cfg).fit(ds.interactions, ds.items, ds.users)
    recs["unconstrained GBM"] = gbm.recommend_all(users, k)
    res = phases[-1]
    tuned["unconstrained GBM"] = {
        "params": {p.name: p.params for p in phases}, "validation_ndcg": res.ndcg,
        "trials": sum(len(p.trials) for p in phases), "seconds": sum(p.seconds for p in phases),
    }  # fmt: skip
    print(f"unconstrained GBM {tuned['unconstrained GBM']['trials']} trials")
    recs["popular"] = MostPopular().fit(ds.interactions, ds.items, ds.users).recommend_all(users, k)
    tuned_md = (work / "tuned.md").read_text()

    # --- the table --------------------------------------------------------------------------
    tail = long_tail_items(ds.interactions, ds.items)
    per_user = {name: ndcg_values(r, truth, k) for name, r in recs.items()}
    best_mf = max(("als", "bpr"), key=lambda n: per_user[n].mean())
    tests = paired_comparisons(per_user, best_mf)
    vs_gbm = paired_comparisons({n: per_user[n] for n in ("recsys tuned", "unconstrained GBM")},
                                "unconstrained GBM")["recsys tuned"]  # fmt: skip
    ref = per_user[best_mf].mean()
    rows = []
    for name, vals in sorted(per_user.items(), key=lambda kv: kv[1].mean()):
        lo, hi = bootstrap_mean(vals, 1000, 0)
        t = tests.get(name)
        rows.append({
            "system": name, "ndcg": float(vals.mean()), "ci95": [lo, hi],
            "vs_best_mf": float(vals.mean() / ref),
            "long_tail": exposure_share(recs[name], tail, k),
            "coverage": catalog_coverage(recs[name], len(ds.items), k),
            "p_adjusted": None if t is None else t["p_adjusted"],
            "verdict": "reference" if t is None else t["verdict"],
        })  # fmt: skip
    lines = [
        f"| system | NDCG@{k} (95% CI) | vs tuned {best_mf.upper()} | long-tail exposure "
        f"| coverage | paired test vs {best_mf.upper()} (BH-adjusted p) |",
        "| --- | ---: | ---: | ---: | ---: | --- |",
    ]
    for r in rows:
        p = "" if r["p_adjusted"] is None else f"{r['verdict']} (p = {r['p_adjusted']:.2g})"
        lines.append(
            f"| {r['system']} | {r['ndcg']:.4f} ({r['ci95'][0]:.4f}-{r['ci95'][1]:.4f}) "
            f"| {r['vs_best_mf']:.3f}x | {r['long_tail']:.1%} | {r['coverage']:.3f} "
            f"| {p or 'reference'} |"
        )
    additivity = (
        f"Cost of additivity: recsys tuned {per_user['recsys tuned'].mean():.4f} vs unconstrained "
        f"GBM {per_user['unconstrained GBM'].mean():.4f} on the same candidates and features "
        f"({vs_gbm['relative']:+.1%}, {vs_gbm['verdict']}, p = {vs_gbm['p_adjusted']:.2g})."
    )
    table = "\n".join(lines) + "\n\n" + additivity
    print("\n" + table)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    name = "defaults_movielens_quick" if args.quick else "defaults_movielens"
    result = {
        "protocol": __doc__.split("Protocol: ")[1].split("\n\n")[0].replace("\n", " "),
        "budget_s": budget, "max_trials": trials, "now": now, "reference": best_mf,
        "systems": rows, "tuned": tuned, "vs_unconstrained": vs_gbm, "seconds": seconds,
        "tune_report": tuned_md, "wall_s": time.perf_counter() - started, **facts,
    }  # fmt: skip
    (out / f"{name}.json").write_text(json.dumps(result, indent=2, default=str) + "\n")
    (out / f"{name}.md").write_text(table + "\n\n" + tuned_md)
    print(f"\nwritten to {out / name}.json and .md ({time.perf_counter() - started:.0f}s)")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
