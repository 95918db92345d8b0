"""One offline evaluation run: every system side by side, every metric, one report.

``metrics.json`` depends only on the data, the configuration and the seed (byte-identical when
rerun); wall-clock timings go to ``timings.json``.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, PositiveInt

from recsys.config import RecommenderConfig, TomlModel
from recsys.data.dataset import Dataset
from recsys.data.splits import global_split, leave_one_out, temporal_split
from recsys.errors import ConfigError
from recsys.evaluation.audit import bootstrap_mean, group_accuracy
from recsys.evaluation.baselines import (
    EASE,
    Bestseller,
    ImplicitSystem,
    ItemKNN,
    MostPopular,
    PipelineSystem,
    long_tail_items,
    pipeline_factory,
    tune,
    tune_rerank,
    with_overrides,
)
from recsys.evaluation.compare import paired_comparisons
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
from recsys.evaluation.peers import RP3beta, UnconstrainedRanker
from recsys.evaluation.protocol import Exclusions, Protocol, ProtocolConfig, apply_exclusions
from recsys.privacy.policy import Policy

UNCONSTRAINED = "unconstrained GBM"
"""The pipeline's candidates and features under a ranker free to combine features: the gap to
"recsys (no re-ranking)" is what exact reasons cost."""
GRIDS: dict[str, dict[str, list[Any]]] = {
    "item-knn": {"neighbors": [20, 50, 100]},
    "ease": {"l2": [100.0, 300.0, 1000.0]},
    "als": {"factors": [64, 128, 200], "regularization": [5.0, 10.0], "alpha": [1.0, 2.0]},
    "bpr": {"factors": [64, 128], "learning_rate": [0.01, 0.05]},
    "rp3beta": {"alpha": [0.5, 1.0], "beta": [0.3, 0.6], "neighbors": [100, 300]},
    "recsys": {"ranker.max_leaf_nodes": [7, 15]},
    "rerank": {"stages.0.trade_off": [0.85, 0.95, 1.0], "stages.1.proportion": [0.35, 0.4, 0.5]},
}
SYSTEMS = (
    "popular",
    "bestseller",
    "item-knn",
    "ease",
    "als",
    "bpr",
    "rp3beta",
    "recsys (no re-ranking)",
    UNCONSTRAINED,
    "recsys",
)


BASELINE_NAME = "current shop list"
"""The name under which ``--baseline-recs`` lists appear in the report."""


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
    protocol: ProtocolConfig = Field(default_factory=ProtocolConfig)
    """One exclusion and one relevance rule for every system of the run."""
    validation_fraction: float = Field(0.2, gt=0, lt=1)
    systems: list[str] = Field(default_factory=lambda: list(SYSTEMS))
    tune: bool = True
    min_long_tail_exposure: float = 0.15
    """Re-ranking is tuned for the best NDCG among settings giving the long tail this share."""
    bootstrap: PositiveInt = 500
    deletion_sample: PositiveInt = 100
    examples: int = Field(3, ge=0)
    """Customers whose lists and reasons the report shows."""
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
    if name == "bestseller":
        return Bestseller(days=cfg.protocol.bestseller_days)
    if name == "item-knn":
        return ItemKNN(**params)
    if name == "ease":
        return EASE(**params)
    if name in ("als", "bpr"):
        return ImplicitSystem(**{"algorithm": name, "random_state": seed, **params})
    if name == "rp3beta":
        return RP3beta(**params)
    raise KeyError(name)


def run_evaluation(
    ds: Dataset,
    cfg: EvaluationConfig,
    *,
    policy: Policy | None = None,
    progress: Callable[[str], None] = lambda m: None,
    baseline_recs: Mapping[str, Sequence[str]] | None = None,
    baseline_name: str = BASELINE_NAME,
    overrides: str | Path | None = None,
) -> tuple[dict[str, Any], dict[str, Any], dict[str, dict[str, list[str]]]]:
    """Returns (metrics, timings, recommendations per system).

    ``baseline_recs`` are the shop's own lists (user id -> ranked item ids, e.g. read by
    :func:`~recsys.evaluation.metrics.read_recommendations`): scored as one more system under the
    same rules, and the reference of the paired tests. ``overrides`` (an overrides file) is
    applied to the full pipeline's lists ("recsys", else the first pipeline system) and its
    effect goes into ``metrics["overrides"]``; the systems' metrics are those without it.
    """
    policy = policy or Policy.default()
    if overrides is not None and not {"recsys", "recsys (no re-ranking)"} & set(cfg.systems):
        raise ConfigError(f"{overrides}: overrides apply to the recsys pipeline; the evaluation "
                          f"runs none (systems: {cfg.systems})")  # fmt: skip
    k = cfg.k
    protocol = Protocol.resolve(cfg.protocol, ds.interactions)
    if cfg.split.kind == "temporal":
        train, test = temporal_split(ds.interactions, cfg.split.test_fraction)
    elif cfg.split.kind == "global":
        cutoff = ds.interactions["timestamp"].quantile(1 - cfg.split.test_fraction)
        train, test = global_split(ds.interactions, cutoff)
    else:
        train, test = leave_one_out(ds.interactions)
    # today's stock flag says nothing about the test period: by default no system sees it
    items = ds.items
    if not protocol.respect_stock and "in_stock" in items:
        items = items.assign(in_stock=True)
    test_users = sorted(test["user_id"].astype(str).unique())
    exclusions = protocol.exclusions(train, ds.items, test_users)
    truth = protocol.truth(test, exclusions)
    users = sorted(truth)
    if not users:
        raise ValueError(
            f"the test split has no relevant items ({protocol.describe()['relevant_text']}): "
            "nothing to evaluate"
        )
    skipped: dict[str, str] = {}
    timings: dict[str, Any] = {}
    tuned: dict[str, Any] = {}
    systems: dict[str, Any] = {}

    for name in cfg.systems:
        t0 = time.perf_counter()
        if name in ("popular", "bestseller"):
            if name == "bestseller" and not (train["event"] == "purchase").any():
                skipped[name] = "no purchase events in the training period"
                continue
            systems[name] = _make(name, {}, cfg)
        elif name in ("item-knn", "ease", "als", "bpr", "rp3beta"):
            params: dict[str, Any] = {}
            if cfg.tune:
                fixed = (
                    {"algorithm": name, "random_state": cfg.seed}
                    if name in ("als", "bpr")
                    else None
                )
                make = {"als": ImplicitSystem, "bpr": ImplicitSystem, "item-knn": ItemKNN,
                        "ease": EASE, "rp3beta": RP3beta}[name]  # fmt: skip
                params, score, _ = tune(make, GRIDS[name], train, items, ds.users,
                                        fraction=cfg.validation_fraction, k=k, fixed=fixed,
                                        protocol=protocol)  # fmt: skip
                params = {p: v for p, v in params.items() if p not in ("algorithm", "random_state")}
                tuned[name] = {"params": params, "validation_ndcg": score}
            systems[name] = _make(name, params, cfg)
        elif name in ("recsys (no re-ranking)", "recsys", UNCONSTRAINED):
            if "_pipeline_config" not in tuned:
                base = cfg.pipeline.model_copy(deep=True)
                base.collaborative.random_state = cfg.seed
                base.ranker.random_state = cfg.seed
                # the run's exclusions arrive with each query; the pipeline's own seen-item
                # filter must not leave out more than they do
                base.candidates.exclude_seen = protocol.exclude == "any"
                if "als" in tuned:
                    base = with_overrides(
                        base, {f"collaborative.{p}": v for p, v in tuned["als"]["params"].items()}
                    )
                params = {}
                if cfg.tune:
                    params, score, _ = tune(pipeline_factory(base, policy), GRIDS["recsys"], train, items, ds.users,
                                            fraction=cfg.validation_fraction, k=k, protocol=protocol)  # fmt: skip
                    tuned["pipeline"] = {"params": params, "validation_ndcg": score}
                tuned["_pipeline_config"] = with_overrides(base, params)
            pcfg = tuned["_pipeline_config"]
            if name == UNCONSTRAINED:  # the same settings as ours, only the constraint lifted
                systems[name] = UnconstrainedRanker(pcfg, policy)
            elif name == "recsys":
                rr = pcfg.rerank
                if cfg.tune:
                    rr, val, _ = tune_rerank(PipelineSystem(pcfg, policy, rerank=True), GRIDS["rerank"], train,
                                             items, ds.users, min_long_tail=cfg.min_long_tail_exposure,
                                             fraction=cfg.validation_fraction, k=k, protocol=protocol)  # fmt: skip
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
    per_user_ndcg: dict[str, np.ndarray] = {}
    examples: list[dict[str, Any]] = []
    pipelines = [n for n, s in systems.items() if isinstance(s, PipelineSystem)]
    effect_on = "recsys" if "recsys" in pipelines else (pipelines or [None])[0]
    effect: dict[str, Any] | None = None
    runs: list[tuple[str, Any]] = list(systems.items())
    if baseline_recs is not None:
        runs.insert(0, (baseline_name, None))
    for name, system in runs:
        m: dict[str, Any] = {}
        t0 = time.perf_counter()
        if system is None:  # the shop's own lists, made elsewhere: the same rule applies
            given = {u: list(baseline_recs.get(u, ())) for u in users}  # type: ignore[union-attr]
            recs, removed = apply_exclusions(given, exclusions, k)
            shown = sum(min(len(v), k) for v in given.values())
            m["from_file"] = {
                "users_with_a_list": sum(bool(v) for v in given.values()),
                "users_evaluated": len(users),
                "entries_removed_by_exclusion_rule": removed,
                "entries_in_top_k": shown,
            }
        else:
            system.fit(train, items, ds.users)
            t1 = time.perf_counter()
            recs = system.recommend_all(users, k, exclusions)
            timings[name] = {
                "fit_s": t1 - t0,
                "recommend_ms_per_user": (time.perf_counter() - t1) / len(users) * 1000,
            }
        all_recs[name] = recs
        m["excluded_recommended"] = _violations(recs, exclusions, k)
        ndcg_user = None
        for metric, fn in ACCURACY.items():
            vals = fn(recs, truth, k)
            m[f"{metric}@{k}"] = float(vals.mean())
            if metric == "ndcg":
                ndcg_user = dict(zip([u for u in users if truth[u]], vals.tolist(), strict=True))
                m[f"ndcg@{k}_ci95"] = list(bootstrap_mean(vals, cfg.bootstrap, cfg.seed))
                per_user_ndcg[name] = vals
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
            m.update(_explanations(system, users, k, cfg, exclusions))
            m["footprint_cells"] = int(system.model_.model_.minimization["cells_kept"])
            if name == "recsys" or not examples:
                examples = _examples(system, users, truth, exclusions, train, ds, cfg)
            if overrides is not None and name == effect_on:
                from recsys.evaluation.overrides import system_effect

                effect = {"system": name, **system_effect(system, users, k, exclusions, overrides)}
        results[name] = m
        progress(f"evaluated {name}")
    reference, why = _reference(results, k, baseline_name if baseline_recs is not None else None)
    metrics = {
        "protocol": {
            "split": cfg.split.model_dump(),
            "k": k,
            **protocol.describe(),
            "same_rule_for_all": sorted(results),
            "users_evaluated": len(users),
            "train_interactions": len(train),
            "test_interactions": len(test),
            "skipped": skipped,
        },
        "data_fingerprint": fingerprint(ds),
        "tuned": tuned,
        "systems": results,
        "comparison": {
            "reference": reference,
            "why": why,
            "metric": f"ndcg@{k}",
            "tests": paired_comparisons(
                per_user_ndcg, reference, n_boot=cfg.bootstrap, seed=cfg.seed
            ),
        },
        "examples": examples,
    }
    if effect is not None:
        metrics["overrides"] = effect
    return _r(metrics), timings, all_recs


def _violations(recs: Mapping[str, Sequence[str]], exclusions: Exclusions, k: int) -> int:
    """How many top-k entries break the run's exclusion rule (0 for every honest system)."""
    return sum(i in exclusions.get(u, ()) for u, items in recs.items() for i in list(items)[:k])


def _reference(results: dict[str, Any], k: int, given: str | None) -> tuple[str, str]:
    """The system every other one is tested against: the shop's own list when given, else the
    best baseline by NDCG (a baseline is any system that is not the recsys pipeline)."""
    if given is not None:
        return given, "the shop's current recommendations, read from its own file"
    baselines = [n for n in results if not n.startswith("recsys")] or list(results)
    best = max(baselines, key=lambda n: (results[n][f"ndcg@{k}"], n))
    return best, f"the best baseline by NDCG@{k} (no file of the shop's own lists was given)"


def _explanations(
    system: PipelineSystem, users: list[str], k: int, cfg: EvaluationConfig, exclusions: Exclusions
) -> dict[str, Any]:
    from recsys.evaluation.explanations import explanation_metrics
    from recsys.privacy.minimize import minimize
    from recsys.testing.facts import FactChecker

    rec = system.model_
    sample = users[:: max(1, len(users) // 200)]
    lists = dict(zip(sample, system.recommend_lists(sample, k, exclusions), strict=True))
    model = rec.model_
    md = minimize(
        system.data_, model.policy, model.purpose, now=system.data_.interactions["timestamp"].max()
    )
    checker = FactChecker(md, model.policy)
    return {"explanations": explanation_metrics(rec, lists, checker, deletion_sample=cfg.deletion_sample,
                                                seed=cfg.seed)}  # fmt: skip


def _examples(
    system: PipelineSystem,
    users: list[str],
    truth: dict[str, set[str]],
    exclusions: Exclusions,
    train: pd.DataFrame,
    ds: Dataset,
    cfg: EvaluationConfig,
) -> list[dict[str, Any]]:
    """A few customers' lists with their reasons, and what they did next (the report shows
    them under letters, not ids). The first personalized customers in id order: no picking."""
    if not cfg.examples:
        return []
    titles = dict(zip(ds.items["item_id"], ds.items["title"].astype(str), strict=True))
    out: list[dict[str, Any]] = []
    for start in range(0, len(users), 50):
        chunk = users[start : start + 50]
        for user, recs in zip(chunk, system.recommend_lists(chunk, 5, exclusions), strict=True):
            if not recs.personalized or len(out) >= cfg.examples:
                continue
            mine = train[train["user_id"] == user].sort_values("timestamp", kind="stable")
            mine = mine.drop_duplicates("item_id", keep="last")
            recent = [
                {"title": titles.get(i, i), "event": e, "date": t.strftime("%Y-%m-%d")}
                for i, e, t in mine[["item_id", "event", "timestamp"]].tail(3).to_numpy()[::-1]
            ]
            out.append({
                "customer": f"Customer {chr(ord('A') + len(out))}",
                "recent": recent,
                "recommendations": [
                    {"rank": r.rank, "title": titles.get(r.item_id, r.item_id),
                     "reason": r.reason.text, "relevant": r.item_id in truth[user]}
                    for r in recs
                ],
            })  # fmt: skip
        if len(out) >= cfg.examples:
            break
    return out


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
