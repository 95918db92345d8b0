"""The learned ranker: a scikit-learn classifier whose attributions are exact."""

from __future__ import annotations

from typing import Self

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, PositiveFloat, PositiveInt
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.utils.validation import check_is_fitted

from recsys.errors import ModelFitError
from recsys.ranking.additive import AdditiveModel


class RankerConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    max_iter: PositiveInt = 300
    learning_rate: PositiveFloat = 0.05
    max_leaf_nodes: PositiveInt = 15
    min_samples_leaf: PositiveInt = 20
    l2_regularization: float = 0.0
    random_state: int = 0


class AdditiveRanker(ClassifierMixin, BaseEstimator):
    """Gradient-boosted trees without feature interactions, compiled to an :class:`AdditiveModel`.

    An additive model makes every attribution exact and cheap; in our MovieLens runs interactions
    did not win (see ``benchmarks/ranking_movielens.py``). Learned: ``model_`` (the sklearn
    estimator, absent after loading), ``additive_``, ``classes_``, ``feature_names_in_``.
    """

    def __init__(
        self,
        max_iter: int = 300,
        learning_rate: float = 0.05,
        max_leaf_nodes: int = 15,
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

    def fit(self, X: pd.DataFrame | np.ndarray, y: np.ndarray, sample_weight=None) -> Self:
        names = (
            list(X.columns)
            if isinstance(X, pd.DataFrame)
            else [f"x{j}" for j in range(np.shape(X)[1])]
        )
        y = np.asarray(y)
        if len(np.unique(y)) != 2:
            raise ModelFitError(
                f"the ranker needs positive and negative examples; labels seen: {np.unique(y).tolist()}"
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
        self.feature_names_in_ = np.array(names, dtype=object)
        self.n_features_in_ = len(names)
        self.additive_ = AdditiveModel.from_hgb(model, names)
        return self

    def decision_function(self, X) -> np.ndarray:
        """Raw log-odds, from the compiled model (identical to the sklearn model's)."""
        check_is_fitted(self, "additive_")
        return self.additive_.decision_function(np.asarray(X, dtype=np.float64))

    def predict_proba(self, X) -> np.ndarray:
        p = 1.0 / (1.0 + np.exp(-self.decision_function(X)))
        return np.column_stack([1 - p, p])

    def predict(self, X) -> np.ndarray:
        return self.classes_[(self.decision_function(X) > 0).astype(int)]

    def shap_values(self, X) -> np.ndarray:
        """Exact SHAP values of the raw output (log-odds), one column per feature."""
        check_is_fitted(self, "additive_")
        return self.additive_.contributions(np.asarray(X, dtype=np.float64))

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
