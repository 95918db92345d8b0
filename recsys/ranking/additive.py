"""An additive tree ensemble compiled to one step function per feature.

With ``interaction_cst="no_interactions"`` every tree of a histogram gradient-boosting model
splits on a single feature, so the model is ``base + sum_j f_j(x_j)``. Collapsing the trees of
each feature into one step function gives:

- exact SHAP values: for a one-feature tree, TreeSHAP's path-dependent value is the tree's
  output minus its cover-weighted mean, so ``phi_j = f_j(x_j) - E[f_j]``, summed over trees;
- a fast path: a prediction is one ``searchsorted`` per feature;
- a plain-array artifact: thresholds and values, saved without pickle.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

from recsys.errors import ModelFitError


def _tree_value(nodes: np.ndarray, x: float) -> float:
    n = 0
    while not nodes["is_leaf"][n]:
        if np.isnan(x):
            go_left = bool(nodes["missing_go_to_left"][n])
        else:
            go_left = x <= nodes["num_threshold"][n]
        n = int(nodes["left"][n] if go_left else nodes["right"][n])
    return float(nodes["value"][n])


def _tree_mean(nodes: np.ndarray) -> float:
    leaf = nodes["is_leaf"].astype(bool)
    return float((nodes["value"][leaf] * nodes["count"][leaf]).sum() / nodes["count"][0])


@dataclass(frozen=True)
class AdditiveModel:
    """``raw(x) = base + sum_j steps_j(x_j)``, each step function centred on its training mean."""

    feature_names: tuple[str, ...]
    thresholds: tuple[np.ndarray, ...]
    values: tuple[np.ndarray, ...]
    """Per feature: ``len(thresholds) + 1`` centred contributions, one per interval."""
    missing: np.ndarray
    """Per feature: the centred contribution of a missing (NaN) value."""
    base: float
    """The expected raw output: equals ``shap.TreeExplainer(...).expected_value``."""

    @classmethod
    def from_hgb(cls, model, feature_names: list[str]) -> AdditiveModel:
        """Compile a fitted binary ``HistGradientBoostingClassifier`` (or regressor)."""
        predictors = model._predictors
        if any(len(p) != 1 for p in predictors):
            raise ModelFitError("only binary classification or regression can be compiled")
        base = float(np.ravel(model._baseline_prediction)[0])
        n_f = len(feature_names)
        trees: list[list[np.ndarray]] = [[] for _ in range(n_f)]
        for (pred,) in predictors:
            nodes = pred.nodes
            if bool(nodes["is_leaf"][0]):
                base += float(nodes["value"][0])
                continue
            if nodes["is_categorical"].any():
                raise ModelFitError("categorical splits cannot be compiled")
            used = np.unique(nodes["feature_idx"][~nodes["is_leaf"].astype(bool)])
            if len(used) != 1:
                raise ModelFitError(
                    "a tree splits on several features: fit with interaction_cst='no_interactions'"
                )
            trees[int(used[0])].append(nodes)
        thresholds, values, missing = [], [], np.zeros(n_f)
        for j in range(n_f):
            ts = trees[j]
            if not ts:
                thresholds.append(np.empty(0))
                values.append(np.zeros(1))
                continue
            internal = [n["num_threshold"][~n["is_leaf"].astype(bool)] for n in ts]
            t = np.unique(np.concatenate(internal))
            reps = np.append(t, np.inf)  # x = t[r] lies in interval r; +inf in the last one
            v = np.zeros(len(reps))
            for nodes in ts:
                mean = _tree_mean(nodes)
                base += mean
                v += np.array([_tree_value(nodes, x) for x in reps]) - mean
                missing[j] += _tree_value(nodes, np.nan) - mean
            thresholds.append(t)
            values.append(v)
        return cls(tuple(feature_names), tuple(thresholds), tuple(values), missing, base)

    def contributions(self, X: np.ndarray) -> np.ndarray:
        """Exact SHAP values, shape ``(n_samples, n_features)`` (compiled:
        :mod:`recsys.ranking.kernels`)."""
        from recsys.ranking import kernels  # numba loads where the ranker first scores

        X = np.asarray(X, dtype=np.float64)
        if X.ndim != 2 or X.shape[1] != len(self.feature_names):
            raise ValueError(f"expected {len(self.feature_names)} features, got shape {X.shape}")
        if not (X.flags.c_contiguous or X.flags.f_contiguous):
            X = np.ascontiguousarray(X)
        out = np.empty_like(X)  # X's own layout: a row sum then adds in the order it always did
        kernels.step_values(X, *self._flat, np.asarray(self.missing, dtype=np.float64), out)
        return out

    @cached_property
    def _flat(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """The step functions laid end to end: the thresholds and where each feature's start,
        the values and where each feature's start."""
        t_start = np.concatenate([[0], np.cumsum([len(t) for t in self.thresholds])])
        v_start = np.concatenate([[0], np.cumsum([len(v) for v in self.values])])
        t_all = np.concatenate([np.empty(0), *self.thresholds]).astype(np.float64)
        v_all = np.concatenate([np.empty(0), *self.values]).astype(np.float64)
        return t_all, t_start.astype(np.int64), v_all, v_start.astype(np.int64)

    def decision_function(self, X: np.ndarray) -> np.ndarray:
        return self.base + self.contributions(X).sum(axis=1)

    # --- plain arrays for npz ---------------------------------------------------------------
    def to_arrays(self, prefix: str = "ranker_") -> dict[str, np.ndarray]:
        lens = np.array([len(t) for t in self.thresholds], dtype=np.int64)
        return {
            f"{prefix}threshold_lengths": lens,
            f"{prefix}thresholds": np.concatenate([*self.thresholds, np.empty(0)]),
            f"{prefix}values": np.concatenate(self.values),
            f"{prefix}missing": self.missing,
            f"{prefix}base": np.array([self.base]),
        }

    @classmethod
    def from_arrays(
        cls, names: list[str], arrays: dict[str, np.ndarray], prefix: str = "ranker_"
    ) -> AdditiveModel:
        lens = arrays[f"{prefix}threshold_lengths"]
        t_all, v_all = arrays[f"{prefix}thresholds"], arrays[f"{prefix}values"]
        ts, vs, ti, vi = [], [], 0, 0
        for n in lens:
            ts.append(t_all[ti : ti + n])
            vs.append(v_all[vi : vi + n + 1])
            ti, vi = ti + n, vi + n + 1
        return cls(
            tuple(names),
            tuple(ts),
            tuple(vs),
            arrays[f"{prefix}missing"],
            float(arrays[f"{prefix}base"][0]),
        )
