"""The implicit adapter is a genuine scikit-learn estimator: it passes the estimator checks."""

from __future__ import annotations

from sklearn.utils.estimator_checks import parametrize_with_checks

from recsys.candidates.implicit_adapter import ImplicitModel


# unsupervised (fit(X, y=None)), sparse-friendly and non-negative only, as its tags declare;
# a few factors and iterations keep the checks fast, with ALS and BPR both covered
@parametrize_with_checks(
    [
        ImplicitModel(factors=4, iterations=2),
        ImplicitModel(algorithm="bpr", factors=4, iterations=5),
    ]
)
def test_sklearn_estimator_checks(estimator, check) -> None:
    check(estimator)
