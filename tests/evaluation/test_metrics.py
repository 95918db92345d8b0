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


def test_exposure_share_and_gini_by_hand() -> None:
    from recsys.evaluation.metrics import exposure_gini, exposure_share

    recs = {"u": ["a", "b"]}
    w1, w2 = 1.0, 1 / math.log2(3)
    assert exposure_share(recs, {"b"}, 2) == pytest.approx(w2 / (w1 + w2))
    # all exposure on one of two catalogue items: Gini = (2*2 - 2 - 1) * e / (2 * e) = 0.5
    assert exposure_gini({"u": ["a"]}, ["a", "b"], 1) == pytest.approx(0.5)
    assert exposure_gini({"u": ["a"], "v": ["b"]}, ["a", "b"], 1) == pytest.approx(0.0)


def test_diversity_novelty_calibration_by_hand() -> None:
    from recsys.evaluation.metrics import intra_list_diversity, miscalibration, novelty

    cats = {"a": {"x"}, "b": {"x", "y"}, "c": {"z"}}
    # pairs: (a,b) 1 - 1/2, (a,c) 1, (b,c) 1 -> mean 5/6
    assert intra_list_diversity({"u": ["a", "b", "c"]}, cats, 3) == pytest.approx(5 / 6)
    # chosen by 1 of 4 users -> 2 bits; by 4 of 4 -> 0 bits
    assert novelty({"u": ["a", "b"]}, {"a": 1, "b": 4}, 4, 2) == pytest.approx(1.0)
    # same category mix in history and list -> KL 0; disjoint -> large
    assert miscalibration({"u": ["a"]}, {"u": ["a"]}, cats, 1) == pytest.approx(0.0)
    assert miscalibration({"u": ["c"]}, {"u": ["a"]}, cats, 1) == pytest.approx(math.log(1 / 0.01))


def test_recommendation_files_fail_clearly(tmp_path) -> None:
    from recsys.errors import DataValidationError
    from recsys.evaluation.metrics import read_recommendations

    good = tmp_path / "good.csv"
    good.write_text("user_id,item_id,rank\nu,b,2\nu,a,1\n")
    assert read_recommendations(str(good)) == {"u": ["a", "b"]}
    cases = {
        "empty.csv": ("user_id,item_id,rank\n", "no recommendations"),
        "cols.csv": ("user,item\nu,a\n", "missing column"),
        "rank.csv": ("user_id,item_id,rank\nu,a,first\n", "row 2, column 'rank'"),
        "dup.csv": ("user_id,item_id,rank\nu,a,1\nu,a,2\n", "row 3, column 'item_id'"),
    }
    for name, (text, message) in cases.items():
        (tmp_path / name).write_text(text)
        with pytest.raises(DataValidationError, match=message):
            read_recommendations(str(tmp_path / name))
