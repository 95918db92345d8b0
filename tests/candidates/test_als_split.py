"""The ALS explainer splits a user's score exactly among their history items.

The split is what "because you chose X" reasons rank history items by, so it is checked against
its definition: ``c_h y_h^T A^-1 y_i`` with the user's own ALS system ``A``, factorized directly.
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from recsys.candidates.implicit_adapter import ImplicitModel


@pytest.fixture(scope="module")
def als() -> ImplicitModel:
    rng = np.random.default_rng(7)
    m = sp.random(60, 90, density=0.15, random_state=rng, format="csr")
    m.data = np.ceil(m.data * 3)  # event weights 1 to 3
    return ImplicitModel(factors=16, iterations=3, alpha=2.0).fit(m)


def _direct(model: ImplicitModel, hist: np.ndarray, w: np.ndarray, items: np.ndarray):
    Y = model.item_factors_.astype(np.float64)
    conf = model.alpha * w
    A = Y.T @ Y + Y[hist].T @ ((conf - 1.0)[:, None] * Y[hist]) + model.reg_ * np.eye(Y.shape[1])
    return conf[:, None] * (Y[hist] @ np.linalg.solve(A, Y[items].T))


@pytest.mark.parametrize("seed", range(5))
def test_split_is_the_exact_als_split(als: ImplicitModel, seed: int) -> None:
    rng = np.random.default_rng(seed)
    hist = np.sort(rng.choice(90, size=int(rng.integers(1, 30)), replace=False))
    # confidences below, at and above 1: D = C - I is then negative, zero and positive
    w = rng.choice([0.25, 0.5, 1.0, 2.0, 3.0], size=len(hist))
    items = rng.choice(90, size=7, replace=False)
    got = als.split_many([hist], [w], [items])[0]
    assert got.shape == (len(hist), len(items))
    np.testing.assert_allclose(got, _direct(als, hist, w, items), rtol=1e-9, atol=1e-12)
    # the parts sum to the score of the user vector re-solved from the same history
    x = als.user_vector(hist, w).astype(np.float64)
    np.testing.assert_allclose(
        got.sum(axis=0), als.item_factors_[items].astype(np.float64) @ x, rtol=1e-5, atol=1e-6
    )


def test_a_users_split_does_not_depend_on_who_shares_the_call(als: ImplicitModel) -> None:
    rng = np.random.default_rng(3)
    users = []
    for _ in range(40):  # a few history and list lengths, so users share stacked solves
        hist = np.sort(rng.choice(90, size=int(rng.integers(1, 6)), replace=False))
        users.append(
            (hist, rng.uniform(0.5, 3.0, len(hist)), rng.choice(90, int(rng.integers(1, 4))))
        )
    together = als.split_many(*map(list, zip(*users, strict=True)))
    for (hist, w, items), got in zip(users, together, strict=True):
        np.testing.assert_array_equal(got, als.split_many([hist], [w], [items])[0])


def test_split_survives_a_reload(als: ImplicitModel) -> None:
    again = ImplicitModel.from_arrays(als.get_params(), als.to_arrays())
    args = [np.array([1, 5, 9])], [np.array([1.0, 2.0, 3.0])], [np.array([0, 2, 4])]
    np.testing.assert_array_equal(again.split_many(*args)[0], als.split_many(*args)[0])


def test_bpr_split_is_factor_similarity() -> None:
    rng = np.random.default_rng(1)
    m = sp.random(30, 40, density=0.2, random_state=rng, format="csr")
    bpr = ImplicitModel(algorithm="bpr", factors=8, iterations=3).fit(m)
    hist, items = np.array([2, 3]), np.array([5, 6, 7])
    Y = bpr.item_factors_.astype(np.float64)
    got = bpr.split_many([hist], [np.ones(2)], [items])[0]
    np.testing.assert_allclose(got, Y[hist] @ Y[items].T)


def test_split_stays_exact_after_the_item_factors_change(als: ImplicitModel) -> None:
    """Erasure re-solves items (``resolve_items``) and new items extend the factors; the split
    must follow, or reasons would cite from factors that still carry an erased customer."""
    import copy

    m = copy.deepcopy(als)
    users = sp.random(60, 3, density=0.5, random_state=np.random.default_rng(5), format="csc")
    m.resolve_items(np.array([1, 5, 9]), users.T.tocsr())
    hist, w, items = np.array([1, 5, 9, 12]), np.array([1.0, 2.0, 0.5, 3.0]), np.array([0, 5, 7])
    np.testing.assert_allclose(
        m.split_many([hist], [w], [items])[0], _direct(m, hist, w, items), rtol=1e-9, atol=1e-12
    )
    assert not np.allclose(m.item_factors_[[1, 5, 9]], als.item_factors_[[1, 5, 9]])


def test_a_pickled_model_ships_without_its_derived_tables_and_rebuilds_them(
    als: ImplicitModel,
) -> None:
    import pickle

    state = als.__getstate__()
    assert not {"whitened_", "item_unit_", "gram_", "mean_"} & set(state)
    assert hasattr(als, "whitened_")  # the state is a copy: the model keeps its own
    again = pickle.loads(pickle.dumps(als))
    for name in ("whitened_", "item_unit_", "gram_", "mean_"):
        np.testing.assert_array_equal(getattr(again, name), getattr(als, name))


def test_an_empty_history_or_list_splits_into_nothing(als: ImplicitModel) -> None:
    got = als.split_many(
        [np.array([], dtype=np.int64), np.array([1, 2])],
        [np.array([]), np.array([1.0, 1.0])],
        [np.array([3, 4]), np.array([], dtype=np.int64)],
    )
    assert [g.shape for g in got] == [(0, 2), (2, 0)]


def test_score_moments_are_those_of_every_item_score_and_do_not_depend_on_the_block(
    als: ImplicitModel,
) -> None:
    """Approximate retrieval scores only candidates, so the collaborative z-score's mean and
    standard deviation over every item come in closed form: they must be the plain ones, and
    a user's must not change with the other users of its block."""
    rng = np.random.default_rng(3)
    V = np.vstack([rng.normal(size=(6, 16)), np.zeros((1, 16))])
    mean, std = als.score_moments(V)
    scores = V @ als.item_factors_.astype(np.float64).T
    np.testing.assert_allclose(mean, scores.mean(axis=1), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(std, scores.std(axis=1), rtol=1e-7, atol=1e-9)
    for u in range(len(V)):
        alone = als.score_moments(V[u : u + 1])
        assert (alone[0][0], alone[1][0]) == (mean[u], std[u])
