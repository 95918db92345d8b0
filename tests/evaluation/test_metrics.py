"""Every metric against a case computed by hand."""

from __future__ import annotations

import math

import pytest

from recsys.evaluation.metrics import (
    accuracy,
    ap_values,
    catalog_coverage,
    hit_values,
    mrr_values,
    ndcg_values,
    precision_values,
    recall_values,
)

RECS = {"u1": ["a", "b", "c"], "u2": ["d", "e", "f"]}
TRUTH = {"u1": {"a", "c"}, "u2": {"x"}}


def test_ndcg_by_hand() -> None:
    # u1: hits at ranks 1 and 3 -> (1 + 1/log2(4)) / (1 + 1/log2(3)); u2: no hit -> 0
    expected_u1 = (1 + 1 / 2) / (1 + 1 / math.log2(3))
    assert ndcg_values(RECS, TRUTH, 3).tolist() == pytest.approx([expected_u1, 0.0])


def test_recall_precision_hit_by_hand() -> None:
    assert recall_values(RECS, TRUTH, 3).tolist() == [1.0, 0.0]
    assert recall_values(RECS, TRUTH, 1).tolist() == [0.5, 0.0]
    assert precision_values(RECS, TRUTH, 3).tolist() == pytest.approx([2 / 3, 0.0])
    assert hit_values(RECS, TRUTH, 2).tolist() == [1.0, 0.0]


def test_mrr_and_map_by_hand() -> None:
    assert mrr_values({"u": ["x", "a"]}, {"u": {"a"}}, 10).tolist() == [0.5]
    # hits at 1 and 3: AP = (1/1 + 2/3) / min(2, k)
    assert ap_values(RECS, TRUTH, 3).tolist() == pytest.approx([(1 + 2 / 3) / 2, 0.0])


def test_fewer_than_k_recommendations_are_not_rewarded() -> None:
    assert precision_values({"u": ["a"]}, {"u": {"a"}}, 10).tolist() == [0.1]
    assert ndcg_values({"u": ["a"]}, {"u": {"a", "b"}}, 10).tolist() == pytest.approx(
        [1 / (1 + 1 / math.log2(3))]
    )


def test_users_without_relevant_items_are_skipped_and_missing_lists_score_zero() -> None:
    assert ndcg_values({"u1": ["a"]}, {"u1": {"a"}, "u2": set(), "u3": {"b"}}, 5).tolist() == [
        1.0,
        0.0,
    ]


def test_tied_scores_do_not_matter_once_ranked() -> None:
    # metrics read ranks only; the same list gives the same value however it was scored
    assert accuracy(RECS, TRUTH, 3) == accuracy(dict(RECS), dict(TRUTH), 3)


def test_coverage() -> None:
    assert catalog_coverage(RECS, 12, 2) == 4 / 12


def test_malformed_input_fails_clearly() -> None:
    with pytest.raises(ValueError, match="repeats"):
        ndcg_values({"u": ["a", "a"]}, {"u": {"a"}}, 10)
    with pytest.raises(ValueError, match="k must be positive"):
        recall_values(RECS, TRUTH, 0)
    with pytest.raises(TypeError, match="map user ids"):
        ndcg_values([["a"]], TRUTH, 10)  # type: ignore[arg-type]
