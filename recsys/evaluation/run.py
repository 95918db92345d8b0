"""One offline evaluation run: every system side by side, every metric, one report.

``metrics.json`` depends only on the data, the configuration and the seed (byte-identical when
rerun); wall-clock timings go to ``timings.json``.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, PositiveInt

from recsys.config import RecommenderConfig, TomlModel
from recsys.data.dataset import Dataset
from recsys.data.splits import global_split, leave_one_out, temporal_split
from recsys.evaluation.audit import bootstrap_mean, group_accuracy
from recsys.evaluation.baselines import (
    EASE,
    ImplicitSystem,
    ItemKNN,
    MostPopular,
    PipelineSystem,
    long_tail_items,
    pipeline_factory,
    relevant,
    tune,
    tune_rerank,
    with_overrides,
)
from recsys.evaluation.metrics import (
    ACCURACY,
    catalog_coverage,
    exposure_gini,
    exposure_share,
    intra_list_diversity,
    miscalibration,
    novelty,
)
from recsys.evaluation.minimization import segments
from recsys.privacy.policy import Policy

GRIDS: dict[str, dict[str, list[Any]]] = {
    "item-knn": {"neighbors": [20, 50, 100]},
    "ease": {"l2": [100.0, 300.0, 1000.0]},
    "als": {"factors": [64, 128, 200], "regularization": [5.0, 10.0], "alpha": [1.0, 2.0]},
    "bpr": {"factors": [64, 128], "learning_rate": [0.01, 0.05]},
    "recsys": {"ranker.max_leaf_nodes": [7, 15]},
    "rerank": {"stages.0.trade_off": [0.85, 0.95, 1.0], "stages.1.proportion": [0.35, 0.4, 0.5]},
}
SYSTEMS = ("popular", "item-knn", "ease", "als", "bpr", "recsys (no re-ranking)", "recsys")


class SplitConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: Literal["temporal", "global", "leave_one_out"] = "temporal"
    test_fraction: float = Field(0.2, gt=0, lt=1)
    """temporal: each user's newest share; global: the newest share of all events by time."""


class EvaluationConfig(TomlModel):
    """What ``recsys evaluate`` runs; defaults = the MovieLens protocol of the ranking issue."""

    model_config = ConfigDict(extra="forbid")

    seed: int = 7
    k: PositiveInt = 10
    split: SplitConfig = Field(default_factory=SplitConfig)
    validation_fraction: float = Field(0.2, gt=0, lt=1)
    systems: list[str] = Field(default_factory=lambda: list(SYSTEMS))
    tune: bool = True
    min_long_tail_exposure: float = 0.15
    """Re-ranking is tuned for the best NDCG among settings giving the long tail this share."""
    bootstrap: PositiveInt = 500
    deletion_sample: PositiveInt = 100
    pipeline: RecommenderConfig = Field(
        default_factory=lambda: RecommenderConfig(purpose="evaluation")
    )


def fingerprint(ds: Dataset) -> str:
    """SHA-256 of the canonical tables: the run can be repeated on exactly this data."""
    h = hashlib.sha256()
    for name in ("interactions", "items", "users"):
        df = getattr(ds, name)
        h.update(name.encode())
        h.update(pd.util.hash_pandas_object(df, index=False).to_numpy().tobytes())
    return h.hexdigest()


def _r(x: Any) -> Any:
    """Round floats so the JSON is stable and readable."""
    if isinstance(x, float | np.floating):
        return round(float(x), 6)
    if isinstance(x, dict):
        return {str(k): _r(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_r(v) for v in x]
    return x


def _make(name: str, params: dict[str, Any], cfg: EvaluationConfig):
    seed = cfg.seed
    if name == "popular":
        return MostPopular()
    if name == "item-knn":
        return ItemKNN(**params)
    if name == "ease":
        return EASE(**params)
    if name in ("als", "bpr"):
        return ImplicitSystem(**{"algorithm": name, "random_state": seed, **params})
    raise KeyError(name)


def run_evaluation(
    ds: Dataset,
    cfg: EvaluationConfig,
    *,
    policy: Policy | None = None,
    progress: Callable[[str], None] = lambda m: None,
) -> tuple[dict[str, Any], dict[str, Any], dict[str, dict[str, list[str]]]]:
    """Returns (metrics, timings, recommendations per system)."""
    policy = policy or Policy.default()
    k = cfg.k
    if cfg.split.kind == "temporal":
        train, test = temporal_split(ds.interactions, cfg.split.test_fraction)
    elif cfg.split.kind == "global":
        cutoff = ds.interactions["timestamp"].quantile(1 - cfg.split.test_fraction)
        train, test = global_split(ds.interactions, cutoff)
    else:
        train, test = leave_one_out(ds.interactions)
    truth = relevant(test, cfg.pipeline.training.relevant_rating)
    users = sorted(truth)
    if not users:
        raise ValueError("the test split has no relevant items: nothing to evaluate")
    timings: dict[str, Any] = {}
    tuned: dict[str, Any] = {}
    systems: dict[str, Any] = {}

    for name in cfg.systems:
        t0 = time.perf_counter()
        if name in ("popular",):
            systems[name] = MostPopular()
        elif name in ("item-knn", "ease", "als", "bpr"):
            params: dict[str, Any] = {}
            if cfg.tune:
                fixed = (
                    {"algorithm": name, "random_state": cfg.seed}
                    if name in ("als", "bpr")
                    else None
                )
                make = (
                    ImplicitSystem
                    if name in ("als", "bpr")
                    else (ItemKNN if name == "item-knn" else EASE)
                )
                params, score, _ = tune(make, GRIDS[name], train, ds.items, ds.users,
                                        fraction=cfg.validation_fraction, k=k, fixed=fixed)  # fmt: skip
                params = {p: v for p, v in params.items() if p not in ("algorithm", "random_state")}
                tuned[name] = {"params": params, "validation_ndcg": score}
            systems[name] = _make(name, params, cfg)
        elif name in ("recsys (no re-ranking)", "recsys"):
            if "pipeline" not in tuned:
                base = cfg.pipeline.model_copy(deep=True)
                base.collaborative.random_state = cfg.seed
                base.ranker.random_state = cfg.seed
                if "als" in tuned:
                    base = with_overrides(
                        base, {f"collaborative.{p}": v for p, v in tuned["als"]["params"].items()}
                    )
                params = {}
                if cfg.tune:
                    params, score, _ = tune(pipeline_factory(base, policy), GRIDS["recsys"], train, ds.items, ds.users,
                                            fraction=cfg.validation_fraction, k=k)  # fmt: skip
                    tuned["pipeline"] = {"params": params, "validation_ndcg": score}
                tuned["_pipeline_config"] = with_overrides(base, params)
            pcfg = tuned["_pipeline_config"]
            if name == "recsys":
                rr = pcfg.rerank
                if cfg.tune:
                    rr, val, _ = tune_rerank(PipelineSystem(pcfg, policy, rerank=True), GRIDS["rerank"], train,
                                             ds.items, ds.users, min_long_tail=cfg.min_long_tail_exposure,
                                             fraction=cfg.validation_fraction, k=k)  # fmt: skip
                    tuned["rerank"] = {"params": rr.model_dump(), "validation": val}
                systems[name] = PipelineSystem(pcfg, policy, name="recsys", rerank=rr)
            else:
                systems[name] = PipelineSystem(pcfg, policy, name=name, rerank=False)
        else:
            raise KeyError(f"unknown system {name!r}; known: {list(SYSTEMS)}")
        timings[f"tune {name}"] = time.perf_counter() - t0
        progress(f"tuned {name}")
    tuned.pop("_pipeline_config", None)

    categories = {
        i: set(c.split("|")) for i, c in zip(ds.items["item_id"], ds.items["category"], strict=True)
    }
    catalog = ds.items["item_id"].tolist()
    tail = long_tail_items(train, ds.items, policy.item_groups["long_tail"].head_share)
    small: set[str] = set()
    if "seller_id" in ds.items and (ds.items["seller_id"].astype(str) != "").any():
        per_seller = ds.items["seller_id"].value_counts()
        head_share = policy.item_groups["small_sellers"].head_share
        big = per_seller.index[
            : int((per_seller.cumsum() / per_seller.sum()).searchsorted(head_share) + 1)
        ]
        small = set(ds.items.loc[~ds.items["seller_id"].isin(big), "item_id"])
    popularity = train.groupby("item_id")["user_id"].nunique().to_dict()
    history = train.groupby("user_id")["item_id"].apply(list).to_dict()
    seg = segments(train, ds.audit)

    results: dict[str, Any] = {}
    all_recs: dict[str, dict[str, list[str]]] = {}
    for name, system in systems.items():
        t0 = time.perf_counter()
        system.fit(train, ds.items, ds.users)
        t1 = time.perf_counter()
        recs = system.recommend_all(users, k)
        t2 = time.perf_counter()
        timings[name] = {"fit_s": t1 - t0, "recommend_ms_per_user": (t2 - t1) / len(users) * 1000}
        all_recs[name] = recs
        m: dict[str, Any] = {}
        ndcg_user = None
        for metric, fn in ACCURACY.items():
            vals = fn(recs, truth, k)
            m[f"{metric}@{k}"] = float(vals.mean())
            if metric == "ndcg":
                ndcg_user = dict(zip([u for u in users if truth[u]], vals.tolist(), strict=True))
                m[f"ndcg@{k}_ci95"] = list(bootstrap_mean(vals, cfg.bootstrap, cfg.seed))
        m["coverage"] = catalog_coverage(recs, len(catalog), k)
        m["intra_list_diversity"] = intra_list_diversity(recs, categories, k)
        m["novelty"] = novelty(recs, popularity, train["user_id"].nunique(), k)
        m["miscalibration_kl"] = miscalibration(recs, history, categories, k)
        m["exposure_gini"] = exposure_gini(recs, catalog, k)
        m["exposure_share"] = {"long_tail": exposure_share(recs, tail, k)}
        if small:
            m["exposure_share"]["small_sellers"] = exposure_share(recs, small, k)
        m["user_groups"] = {
            col: group_accuracy(ndcg_user, seg[col], n_boot=cfg.bootstrap, seed=cfg.seed)
            for col in seg.columns
        }
        m["footprint_cells"] = int(train.size)
        if isinstance(system, PipelineSystem):
            m.update(_explanations(system, users, k, cfg))
            m["footprint_cells"] = int(system.model_.model_.minimization["cells_kept"])
        results[name] = m
        progress(f"evaluated {name}")
    metrics = {
        "protocol": {
            "split": cfg.split.model_dump(),
            "k": k,
            "relevant": f"ratings >= {cfg.pipeline.training.relevant_rating}, purchases, carts",
            "users_evaluated": len(users),
            "train_interactions": len(train),
            "test_interactions": len(test),
        },
        "data_fingerprint": fingerprint(ds),
        "tuned": tuned,
        "systems": results,
    }
    return _r(metrics), timings, all_recs


def _explanations(
    system: PipelineSystem, users: list[str], k: int, cfg: EvaluationConfig
) -> dict[str, Any]:
    from recsys.evaluation.explanations import explanation_metrics
    from recsys.privacy.minimize import minimize
    from recsys.testing.facts import FactChecker

    rec = system.model_
    sample = users[:: max(1, len(users) // 200)]
    lists = dict(zip(sample, system.recommend_lists(sample, k), strict=True))
    model = rec.model_
    md = minimize(
        system.data_, model.policy, model.purpose, now=system.data_.interactions["timestamp"].max()
    )
    checker = FactChecker(md, model.policy)
    return {"explanations": explanation_metrics(rec, lists, checker, deletion_sample=cfg.deletion_sample,
                                                seed=cfg.seed)}  # fmt: skip


def write_report(
    out: Path,
    metrics: dict[str, Any],
    timings: dict[str, Any],
    cfg: EvaluationConfig,
    minimization: dict[str, Any] | None = None,
) -> list[Path]:
    """metrics.json, timings.json, config.toml, report.md, report.html and the plots."""
    from recsys.evaluation.report import render_report

    out.mkdir(parents=True, exist_ok=True)
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2, sort_keys=True) + "\n")
    (out / "timings.json").write_text(json.dumps(_r(timings), indent=2, sort_keys=True) + "\n")
    (out / "config.toml").write_text(cfg.to_toml())
    return render_report(out, metrics, minimization)
