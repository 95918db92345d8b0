"""Paired comparisons: is a system better than the reference for the same customers?

Every system is scored on the same users, so per-user NDCG values pair up. The difference of
means gets a bootstrap interval over users, and the Wilcoxon signed-rank test (``scipy.stats``;
NDCG is far from normal, with many zeros) gives a p-value; p-values are adjusted for the number
of comparisons with Benjamini-Hochberg (``scipy.stats.false_discovery_control``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from scipy import stats

from recsys.evaluation.audit import bootstrap_mean

ALPHA = 0.05
"""Significance level of the verdicts, after adjustment."""


def paired_test(
    a: np.ndarray, b: np.ndarray, *, n_boot: int = 1000, seed: int = 0
) -> dict[str, Any]:
    """``a`` against ``b`` (per-user values of two systems, the same users in the same order)."""
    if a.shape != b.shape:
        raise ValueError(f"paired values need the same users: {a.shape} vs {b.shape}")
    d = a - b
    if len(d) == 0 or not np.any(d):
        p = 1.0  # identical on every user: no evidence of a difference
    else:
        p = float(stats.wilcoxon(a, b, zero_method="zsplit").pvalue)
    base = float(b.mean()) if len(b) else 0.0
    lo, hi = bootstrap_mean(d, n_boot, seed)
    return {
        "users": len(d),
        "mean": float(a.mean()) if len(a) else 0.0,
        "reference_mean": base,
        "difference": float(d.mean()) if len(d) else 0.0,
        "difference_ci95": [lo, hi],
        "relative": float(d.mean() / base) if base else None,
        "better_users": int((d > 0).sum()),
        "worse_users": int((d < 0).sum()),
        "p_value": p,
    }


def paired_comparisons(
    per_user: Mapping[str, np.ndarray], reference: str, *, n_boot: int = 1000, seed: int = 0
) -> dict[str, dict[str, Any]]:
    """Each system against ``reference``, with BH-adjusted p-values and a verdict."""
    ref = per_user[reference]
    out = {
        name: paired_test(vals, ref, n_boot=n_boot, seed=seed)
        for name, vals in per_user.items()
        if name != reference
    }
    if out:
        adjusted = stats.false_discovery_control([t["p_value"] for t in out.values()])
        for t, p in zip(out.values(), adjusted, strict=True):
            t["p_adjusted"] = float(min(p, 1.0))
            if t["p_adjusted"] >= ALPHA:
                t["verdict"] = "no clear difference"
            else:
                t["verdict"] = "better" if t["difference"] > 0 else "worse"
    return out
