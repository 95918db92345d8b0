"""The ranker is a genuine scikit-learn classifier: it passes the estimator checks."""

from __future__ import annotations

from sklearn.utils.estimator_checks import parametrize_with_checks

from recsys.ranking.ranker import AdditiveRanker


# binary-only and NaN-tolerant, both declared in its tags; no check needs to be waived
@parametrize_with_checks([AdditiveRanker(max_iter=10)])
def test_sklearn_estimator_checks(estimator, check) -> None:
    check(estimator)
