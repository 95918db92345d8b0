"""The learned ranker: a scikit-learn classifier whose attributions are exact."""

from __future__ import annotations

from typing import Self

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, PositiveFloat, PositiveInt
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data

from recsys.errors import ModelFitError
from recsys.ranking.additive import AdditiveModel


class RankerLabelError(ModelFitError, ValueError):
    """The labels are not binary: a ranker learns "chosen" against "not chosen" only.

    A ``ValueError`` too, as scikit-learn's conventions expect of a bad target.
    """


class RankerConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    max_iter: PositiveInt = 300
    learning_rate: PositiveFloat = 0.05
    max_leaf_nodes: PositiveInt = 7
    """Leaves per tree (one feature each: the model is additive). 7, measured against 15 by
    ``benchmarks/defaults_vs_tuned.py``: +1% to +5% NDCG@10 on MovieLens-100K and the synthetic
    shop, and a smaller model to score."""
    min_samples_leaf: PositiveInt = 20
    l2_regularization: float = 0.0
    random_state: int = 0


class AdditiveRanker(ClassifierMixin, BaseEstimator):
    """Gradient-boosted trees without feature interactions, compiled to an :class:`AdditiveModel`.

    An additive model makes every attribution exact and cheap; in our MovieLens runs interactions
    did not win (see ``benchmarks/ranking_movielens.py``). Learned: ``model_`` (the sklearn
    estimator, absent after loading), ``additive_``, ``classes_``, ``n_features_in_`` and, when
    fitted on a DataFrame, ``feature_names_in_``.
    """

    def __init__(
        self,
        max_iter: int = 300,
        learning_rate: float = 0.05,
        max_leaf_nodes: int = 7,
        min_samples_leaf: int = 20,
        l2_regularization: float = 0.0,
        random_state: int = 0,
    ) -> None:
        self.max_iter = max_iter
        self.learning_rate = learning_rate
        self.max_leaf_nodes = max_leaf_nodes
        self.min_samples_leaf = min_samples_leaf
        self.l2_regularization = l2_regularization
        self.random_state = random_state

    @classmethod
    def from_config(cls, cfg: RankerConfig) -> AdditiveRanker:
        return cls(**cfg.model_dump())

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_class = False  # chosen or not: a binary target
        tags.input_tags.allow_nan = True  # a feature without evidence is missing, not zero
        return tags

    def fit(self, X: pd.DataFrame | np.ndarray, y: np.ndarray, sample_weight=None) -> Self:
        X, y = validate_data(self, X, y, dtype=np.float64, ensure_all_finite="allow-nan")
        check_classification_targets(y)
        labels = np.unique(y)
        if len(labels) > 2:
            raise RankerLabelError(
                "Only binary classification is supported: the ranker learns chosen against "
                f"not chosen; labels seen: {labels.tolist()}"
            )
        if len(labels) != 2:
            raise RankerLabelError(
                "the ranker needs positive and negative examples (one class only); "
                f"labels seen: {labels.tolist()}"
            )
        names = (
            [str(n) for n in self.feature_names_in_]
            if hasattr(self, "feature_names_in_")
            else [f"x{j}" for j in range(X.shape[1])]
        )
        model = HistGradientBoostingClassifier(
            max_iter=self.max_iter,
            learning_rate=self.learning_rate,
            max_leaf_nodes=self.max_leaf_nodes,
            min_samples_leaf=self.min_samples_leaf,
            l2_regularization=self.l2_regularization,
            interaction_cst="no_interactions",
            early_stopping=False,
            random_state=self.random_state,
        )
        X = np.array(X, dtype=np.float64)
        # a feature missing in every row carries nothing; sklearn's binning cannot take it
        X[:, np.isnan(X).all(axis=0)] = 0.0
        model.fit(X, y, sample_weight=sample_weight)
        self.model_ = model
        self.classes_ = model.classes_
        self.n_iter_ = model.n_iter_
        self.additive_ = AdditiveModel.from_hgb(model, names)
        return self

    def _rows(self, X) -> np.ndarray:
        """``X`` checked against the fitted shape (and names, when fitted on a DataFrame)."""
        check_is_fitted(self, "additive_")
        return validate_data(self, X, reset=False, dtype=np.float64, ensure_all_finite="allow-nan")

    def decision_function(self, X) -> np.ndarray:
        """Raw log-odds, from the compiled model (identical to the sklearn model's)."""
        X = self._rows(X)
        return self.additive_.decision_function(X)

    def predict_proba(self, X) -> np.ndarray:
        p = 1.0 / (1.0 + np.exp(-self.decision_function(X)))
        return np.column_stack([1 - p, p])

    def predict(self, X) -> np.ndarray:
        raw = self.decision_function(X)
        return self.classes_[(raw > 0).astype(int)]

    def shap_values(self, X) -> np.ndarray:
        """Exact SHAP values of the raw output (log-odds), one column per feature."""
        X = self._rows(X)
        return self.additive_.contributions(X)

    @property
    def expected_value(self) -> float:
        check_is_fitted(self, "additive_")
        return self.additive_.base

    @classmethod
    def from_additive(cls, additive: AdditiveModel, params: dict | None = None) -> AdditiveRanker:
        r = cls(**(params or {}))
        r.additive_ = additive
        r.classes_ = np.array([False, True])
        r.feature_names_in_ = np.array(additive.feature_names, dtype=object)
        r.n_features_in_ = len(additive.feature_names)
        return r
