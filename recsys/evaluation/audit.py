"""Consumer-side fairness audit: accuracy per user group, with the gap and bootstrap intervals.

This is the only code that reads the audit table's protected attributes; it never feeds them to
a model, it only groups already-computed per-user scores.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd


def bootstrap_mean(
    values: np.ndarray, n: int = 1000, seed: int = 0, level: float = 0.95
) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean."""
    if len(values) == 0:
        return (float("nan"), float("nan"))
    rng = np.random.default_rng(seed)
    means = values[rng.integers(0, len(values), size=(n, len(values)))].mean(axis=1)
    lo, hi = np.quantile(means, [(1 - level) / 2, (1 + level) / 2])
    return float(lo), float(hi)


def group_accuracy(
    per_user: Mapping[str, float], groups: pd.Series, *, n_boot: int = 1000, seed: int = 0
) -> dict[str, object]:
    """Mean metric per group with a 95% interval, and the largest gap between groups with its
    interval (users resampled within each group, the same draws for every group statistic)."""
    s = pd.Series(per_user, dtype=float)
    g = groups.reindex(s.index).fillna("unknown").astype(str)
    rng = np.random.default_rng(seed)
    table = {}
    boot = {}
    for name in sorted(g.unique()):
        v = s[g == name].to_numpy()
        idx = rng.integers(0, len(v), size=(n_boot, len(v)))
        boot[name] = v[idx].mean(axis=1)
        lo, hi = np.quantile(boot[name], [0.025, 0.975])
        table[name] = {
            "users": len(v),
            "mean": float(v.mean()),
            "ci95": [float(lo), float(hi)],
        }
    means = {k: t["mean"] for k, t in table.items()}
    best, worst = max(means, key=means.get), min(means, key=means.get)
    gaps = boot[best] - boot[worst]
    return {
        "groups": table,
        "gap": float(means[best] - means[worst]),
        "gap_ci95": [float(x) for x in np.quantile(gaps, [0.025, 0.975])],
        "best": best,
        "worst": worst,
    }
