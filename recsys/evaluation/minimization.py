"""The minimization curve: how accuracy falls as history caps and retention windows shrink.

Following Biega et al. (SIGIR 2020, "Operationalizing the legal principle of data minimization
for personalization"): train on minimized data, evaluate on each user's untouched future, and
find the smallest data footprint whose NDCG@10 stays within a tolerance of full data, per user
segment too, because minimization can cost some users far more than others.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from recsys.data.dataset import Dataset
from recsys.data.splits import temporal_split
from recsys.evaluation.metrics import ndcg_values
from recsys.privacy.minimize import cap_history, weak_ratings

INTERACTION_COLUMNS = 5  # user_id, item_id, timestamp, event, value


@dataclass(frozen=True)
class Setting:
    strategy: str  # "newest" | "min_rating" | "min_rating+newest" | "retention" | "full"
    value: int | None  # the cap (events), window (days) or minimum rating; None = everything
    min_rating: float | None = None  # with "min_rating+newest"

    @property
    def label(self) -> str:
        if self.strategy == "full":
            return "full data"
        if self.strategy == "min_rating":
            return f"ratings >= {self.value}"
        if self.strategy == "min_rating+newest":
            return f"ratings >= {self.min_rating:g}, newest {self.value} events"
        unit = "days" if self.strategy == "retention" else "events"
        return f"{self.strategy} {self.value} {unit}"


def default_settings(inter: pd.DataFrame) -> list[Setting]:
    """Settings scaled to the data: caps at quantiles of users' history lengths, retention
    windows at fractions of the data's time span, and weak-rating removal when there are ratings."""
    sizes = inter.groupby("user_id").size()
    caps = sorted({int(sizes.quantile(q)) for q in (0.5, 0.75, 0.9, 0.97)} - {0})
    span_days = (inter["timestamp"].max() - inter["timestamp"].min()).days
    windows = sorted({max(1, int(span_days * f)) for f in (0.5, 0.75, 0.9)})
    out = [Setting("full", None)]
    out += [Setting("newest", c) for c in caps]
    if (inter["event"] == "rating").any():
        out += [Setting("min_rating", r) for r in (2, 3)]
        out += [Setting("min_rating+newest", c, 2) for c in caps[-2:]]
    out += [Setting("retention", w) for w in windows]
    return out


def apply(train: pd.DataFrame, s: Setting) -> pd.DataFrame:
    if s.strategy == "full" or s.value is None:
        return train
    if s.strategy == "retention":
        end = train["timestamp"].max()
        return train[train["timestamp"] >= end - pd.Timedelta(days=s.value)]
    if s.strategy == "min_rating":
        return train.loc[~weak_ratings(train, s.value)]
    if s.strategy == "min_rating+newest":
        strong = train.loc[~weak_ratings(train, s.min_rating)]
        return strong.loc[cap_history(strong, s.value)]
    return train.loc[cap_history(train, s.value)]


def segments(train: pd.DataFrame, audit: pd.DataFrame | None) -> pd.DataFrame:
    """Per user: activity tercile, and audit groups (read here only, for the audit)."""
    counts = train.groupby("user_id").size()
    act = pd.qcut(counts.rank(method="first"), 3, labels=["light", "medium", "heavy"])
    seg = pd.DataFrame({"activity": act.astype(str)})
    if audit is not None:
        a = audit.set_index("user_id")
        for col in [c for c in ("gender", "age_band") if c in a.columns]:
            seg[col] = a[col].reindex(seg.index).fillna("unknown")
    return seg


def _run_point(args: tuple) -> dict[str, Any]:
    make, setting, seed, train, items, users, truth = args
    data = apply(train, setting)
    system = make(seed).fit(data, items, users)
    recs = system.recommend_all(sorted(truth), 10)
    per_user = ndcg_values(recs, truth, 10)
    return {
        "strategy": setting.strategy,
        "value": setting.value,
        "label": setting.label,
        "seed": seed,
        "cells": int(len(data) * INTERACTION_COLUMNS),
        "ndcg_per_user": dict(
            zip(sorted(u for u in truth if truth[u]), per_user.tolist(), strict=True)
        ),
    }


def minimization_curve(
    ds: Dataset,
    make: Callable[[int], Any],
    settings: Sequence[Setting],
    *,
    seeds: Sequence[int] = (0, 1, 2),
    test_fraction: float = 0.2,
    tolerance: float = 0.02,
    workers: int = 1,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """NDCG@10 and footprint at each setting, averaged over seeds; the smallest good setting."""
    from recsys.evaluation.baselines import relevant

    train, test = temporal_split(ds.interactions, test_fraction)
    truth = relevant(test)
    jobs = [(make, s, seed, train, ds.items, ds.users, truth) for s in settings for seed in seeds]
    if workers > 1:
        # spawn, not fork: a forked child can inherit a lock held by a parent thread (progress
        # bars, BLAS pools) and hang
        with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
            results = []
            for r in pool.map(_run_point, jobs):
                results.append(r)
                if progress:
                    progress(f"{r['label']} seed {r['seed']}")
    else:
        results = []
        for j in jobs:
            results.append(_run_point(j))
            if progress:
                progress(f"{results[-1]['label']} seed {results[-1]['seed']}")
    seg = segments(train, ds.audit)
    full_cells = len(train) * INTERACTION_COLUMNS
    rows = []
    by_setting: dict[str, list[dict]] = {}
    for r in results:
        by_setting.setdefault(r["label"], []).append(r)
    for label, rs in by_setting.items():
        per_user = pd.DataFrame([r["ndcg_per_user"] for r in rs]).mean(axis=0)
        row = {
            "setting": label,
            "strategy": rs[0]["strategy"],
            "value": rs[0]["value"],
            "cells": rs[0]["cells"],
            "cells_share": rs[0]["cells"] / full_cells,
            "ndcg": float(np.mean([np.mean(list(r["ndcg_per_user"].values())) for r in rs])),
            "ndcg_std": float(np.std([np.mean(list(r["ndcg_per_user"].values())) for r in rs])),
        }
        for col in seg.columns:
            for group, users in seg.groupby(col).groups.items():
                row[f"ndcg[{col}={group}]"] = float(per_user.reindex(users).dropna().mean())
        rows.append(row)
    table = pd.DataFrame(rows).sort_values(["strategy", "cells"]).reset_index(drop=True)
    full = table.loc[table["strategy"] == "full"].iloc[0]
    table["ndcg_vs_full"] = table["ndcg"] / full["ndcg"]
    for c in [c for c in table.columns if c.startswith("ndcg[")]:
        table[c.replace("ndcg[", "loss[")] = 1 - table[c] / full[c]
    ok = table[(table["ndcg_vs_full"] >= 1 - tolerance) & (table["strategy"] != "full")]
    best = ok.sort_values("cells").iloc[0].to_dict() if len(ok) else None
    return {"table": table, "best": best, "full_ndcg": float(full["ndcg"]), "tolerance": tolerance}


def plot_curve(result: dict[str, Any], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t = result["table"]
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for strategy, g in t[t["strategy"] != "full"].groupby("strategy"):
        g = g.sort_values("cells_share")
        ax.errorbar(
            g["cells_share"], g["ndcg"], yerr=g["ndcg_std"], marker="o", capsize=3, label=strategy
        )
    ax.axhline(result["full_ndcg"], color="black", lw=1, label="full data")
    ax.axhline(result["full_ndcg"] * (1 - result["tolerance"]), color="grey", ls="--", lw=1,
               label=f"-{result['tolerance']:.0%}")  # fmt: skip
    if result["best"]:
        ax.scatter([result["best"]["cells_share"]], [result["best"]["ndcg"]], s=160, facecolors="none",
                   edgecolors="red", label=f"smallest within tolerance: {result['best']['setting']}")  # fmt: skip
    ax.set_xlabel("share of training interaction cells used")
    ax.set_ylabel("NDCG@10 (mean of seeds)")
    ax.set_title("Data minimization curve")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def summary_markdown(result: dict[str, Any], name: str) -> str:
    """The curve as a Markdown table with per-segment loss, and the smallest good setting."""
    t = result["table"]
    seg_cols = [c for c in t.columns if c.startswith("loss[")]
    lines = [
        f"### {name}",
        "",
        "| setting | cells kept | NDCG@10 | vs full | "
        + " | ".join(c[5:-1] for c in seg_cols)
        + " |",
        "| --- | ---: | ---: | ---: | " + " | ".join("---:" for _ in seg_cols) + " |",
    ]
    for _, r in t.sort_values(["strategy", "cells"]).iterrows():
        segs = " | ".join(f"{-r[c]:+.1%}" for c in seg_cols)
        lines.append(
            f"| {r['setting']} | {r['cells_share']:.1%} | {r['ndcg']:.4f} ± {r['ndcg_std']:.4f} "
            f"| {r['ndcg_vs_full']:.3f} | {segs} |"
        )
    b = result["best"]
    lines.append("")
    lines.append(
        f"Smallest footprint within {result['tolerance']:.0%} of full data: **{b['setting']}**, "
        f"{b['cells_share']:.1%} of the cells, NDCG@10 {b['ndcg']:.4f} ({b['ndcg_vs_full']:.3f} of full)."
        if b
        else "No setting stayed within the tolerance."
    )
    return "\n".join(lines)
