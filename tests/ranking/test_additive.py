"""Attributions are exact: they match shap.TreeExplainer and add up to the model output."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import shap
from sklearn.ensemble import HistGradientBoostingClassifier

from recsys.data.schema import EVENTS
from recsys.errors import ModelFitError
from recsys.ranking.additive import AdditiveModel
from recsys.ranking.ranker import AdditiveRanker


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(2000, 5))
    X[rng.random(X.shape) < 0.05] = np.nan  # missing values take their own branch
    y = np.nansum(X[:, :3], axis=1) + rng.normal(size=2000) > 0
    return X, y


def test_ranker_is_sklearn_native(data) -> None:
    X, y = data
    r = AdditiveRanker(max_iter=50)
    assert r.fit(X, y) is r
    assert r.n_features_in_ == 5
    assert set(r.classes_) == {False, True}
    p = r.predict_proba(X)
    assert np.allclose(p.sum(axis=1), 1)


def test_compiled_model_equals_sklearn(data) -> None:
    X, y = data
    r = AdditiveRanker(max_iter=80).fit(X, y)
    assert np.abs(r.decision_function(X) - r.model_.decision_function(X)).max() < 1e-9


def test_shap_values_match_tree_explainer(data) -> None:
    X, y = data
    r = AdditiveRanker(max_iter=80).fit(X, y)
    explainer = shap.TreeExplainer(r.model_)
    assert np.abs(explainer.shap_values(X) - r.shap_values(X)).max() < 1e-6
    assert abs(float(np.ravel(explainer.expected_value)[0]) - r.expected_value) < 1e-6


def test_attributions_add_up(data) -> None:
    X, y = data
    r = AdditiveRanker(max_iter=80).fit(X, y)
    total = r.expected_value + r.shap_values(X).sum(axis=1)
    assert np.abs(total - r.model_.decision_function(X)).max() < 1e-6


def test_pipeline_ranker_matches_shap_on_real_features(fitted) -> None:
    """The ranker trained on the feature rows the pipeline builds for real users."""
    from recsys.ranking.training import TrainingConfig, positives, training_examples

    model = fitted.model_
    ctx = model.ctx
    inter = pd.DataFrame(
        {
            "user_id": ctx.history.users.ids[ctx.history.user_of_event()],
            "item_id": ctx.catalog.items.ids[ctx.history.item],
            "event": [EVENTS[e] for e in ctx.history.event],
            "value": ctx.history.value,
        }
    )
    X, y = training_examples(
        ctx, positives(inter, 4.0), model.features, model.config.candidates,
        TrainingConfig(max_users=60),
    )  # fmt: skip
    r = AdditiveRanker(max_iter=60, max_leaf_nodes=7).fit(X, y)
    explainer = shap.TreeExplainer(r.model_)
    assert np.abs(explainer.shap_values(X) - r.shap_values(X)).max() < 1e-6
    out = r.model_.decision_function(X)
    assert np.abs(r.expected_value + r.shap_values(X).sum(1) - out).max() < 1e-6


def test_trees_with_interactions_are_refused(data) -> None:
    X, y = data
    m = HistGradientBoostingClassifier(max_iter=5, max_depth=3).fit(np.nan_to_num(X), y)
    with pytest.raises(ModelFitError, match="no_interactions"):
        AdditiveModel.from_hgb(m, [f"x{j}" for j in range(5)])


def test_array_round_trip(data) -> None:
    X, y = data
    r = AdditiveRanker(max_iter=30).fit(X, y)
    names = list(r.additive_.feature_names)
    back = AdditiveModel.from_arrays(names, r.additive_.to_arrays())
    assert np.array_equal(back.decision_function(X), r.decision_function(X))


def test_a_feature_missing_everywhere_is_constant(data) -> None:
    X, y = data
    X = X.copy()
    X[:, 2] = np.nan
    r = AdditiveRanker(max_iter=20).fit(X, y)
    assert np.all(r.shap_values(X)[:, 2] == 0.0)


def test_contributions_keep_the_layout_of_their_input(data) -> None:
    """A column-major input (sklearn makes one from a DataFrame) gets a column-major result:
    its row sums, and so the decision function, add in the order they always did."""
    X, y = data
    model = AdditiveRanker(max_iter=40).fit(X, y).additive_
    for layout in (np.ascontiguousarray(X), np.asfortranarray(X)):
        out = model.contributions(layout)
        assert out.flags.c_contiguous == layout.flags.c_contiguous
        assert out.flags.f_contiguous == layout.flags.f_contiguous
        np.testing.assert_array_equal(out, model.contributions(np.ascontiguousarray(X)))
