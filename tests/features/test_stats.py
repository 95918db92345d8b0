"""The precomputed co-occurrence table: exact counts, bounded rows, and one answer per lookup."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st

from recsys.features import kernels
from recsys.features.stats import Cooccurrence, csr_find, first_of_each, unique_ints


def _table(seed: int, n_users: int = 60, n_items: int = 40, cap: int = 1000) -> tuple:
    rng = np.random.default_rng(seed)
    X = sp.csr_matrix((rng.random((n_users, n_items)) < 0.15).astype(np.float32))
    return X, Cooccurrence.build(X, cap)


def test_counts_are_customers_who_chose_both() -> None:
    X, table = _table(0)
    both = (X.T @ X).toarray()
    for j in range(X.shape[1]):
        got = table.lookup(j, np.arange(X.shape[1]))
        want = both[j].copy()
        want[j] = 0  # an item is not its own neighbour
        np.testing.assert_array_equal(got, want)


def test_pair_lookup_agrees_with_row_lookup() -> None:
    for seed, cap in [(1, 1000), (2, 5), (3, 1)]:
        X, table = _table(seed, cap=cap)
        n = X.shape[1]
        rng = np.random.default_rng(seed)
        rows, cols = rng.integers(0, n, 500), rng.integers(0, n, 500)
        want = [table.lookup(int(r), np.array([c]))[0] for r, c in zip(rows, cols, strict=True)]
        np.testing.assert_array_equal(table.pairs(rows, cols), want)
        np.testing.assert_array_equal(table.pairs(rows[:5], cols[:5]), want[:5])
        same = np.full(40, rows[0])
        want_row = table.lookup(int(rows[0]), cols[:40])
        np.testing.assert_array_equal(table.pairs(same, cols[:40]), want_row)  # one row
        stacked = np.stack([table.lookup(int(r), cols[:50]) for r in rows[:3]])
        np.testing.assert_array_equal(table.lookup_rows(rows[:3], cols[:50]), stacked)


def test_rows_keep_only_the_largest_counts() -> None:
    X, table = _table(4, cap=3)
    assert np.diff(table.indptr).max() <= 3
    both = (X.T @ X).toarray()
    np.fill_diagonal(both, 0)
    for j in range(X.shape[1]):
        kept = table.counts[table.indptr[j] : table.indptr[j + 1]]
        if len(kept):
            assert kept.min() >= np.sort(both[j])[::-1][len(kept) - 1]


def test_empty_table_reads_zero() -> None:
    table = Cooccurrence.build(sp.csr_matrix((3, 4), dtype=np.float32), 10)
    np.testing.assert_array_equal(table.pairs(np.array([0, 3]), np.array([1, 2])), [0.0, 0.0])


def test_approximate_block_scores_only_what_it_filled(served_dir, pseudonymizer) -> None:
    """A block with the index keeps its candidates' scores (the same numbers as the factors
    give) and reads NaN for any pair it never scored."""
    from recsys.features.context import UserBlock
    from recsys.model.artifacts import load_model

    model = load_model(served_dir[0], pseudonymizer=pseudonymizer)
    ctx = model.ctx
    assert ctx.collab.index_ is not None
    states = [ctx.user_state(u, model.cutoff) for u in range(5)]
    block = UserBlock.build(ctx, states)
    assert not block.exact
    rng = np.random.default_rng(0)
    cands = [np.unique(rng.integers(0, len(ctx.catalog.items), 30)) for _ in states]
    block.fill(ctx, cands)
    rows = np.concatenate([np.full(len(c), p) for p, c in enumerate(cands)])
    items = np.concatenate(cands)
    want = np.concatenate(
        [(ctx.item_factors64[c] @ st.vector.astype(np.float64)).astype(np.float32)
         for st, c in zip(states, cands, strict=True)]
    )  # fmt: skip
    assert np.array_equal(block.score_of(rows, items), want)
    never = np.setdiff1d(np.arange(len(ctx.catalog.items)), cands[0])[:5]
    assert np.isnan(block.score_of(np.zeros(len(never), dtype=np.int64), never)).all()


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(-5, 40), max_size=60))
def test_unique_ints_and_first_of_each_are_what_np_unique_gives(values: list[int]) -> None:
    a = np.array(values, dtype=np.int64)
    want, first = np.unique(a, return_index=True)
    got = unique_ints(a)
    assert got.dtype == want.dtype and got.tolist() == want.tolist()
    assert first_of_each(a).tolist() == first.tolist()


@settings(max_examples=150, deadline=None)
@given(
    st.integers(0, 2**16),
    st.lists(st.tuples(st.integers(0, 7), st.integers(-3, 34)), max_size=40),
    st.sampled_from([np.int32, np.int64]),
)
def test_csr_find_is_scipy_lookup(seed: int, pairs: list, index_type) -> None:
    """Every pair answers what the sparse matrix holds (columns outside the matrix too, and
    rows with no entry), and ``at`` points at the stored entry, for either index width."""
    rng = np.random.default_rng(seed)
    X = sp.csr_matrix(rng.random((8, 31)) < rng.random())
    X.sort_indices()
    rows = np.array([r for r, _ in pairs], dtype=np.int64)
    cols = np.array([c for _, c in pairs], dtype=np.int64)
    indptr, indices = X.indptr.astype(index_type), X.indices.astype(index_type)
    hit, at = csr_find(indptr, indices, rows, cols)
    dense = X.toarray()
    assert hit.tolist() == [0 <= c < 31 and bool(dense[r, c]) for r, c in pairs]
    assert all(X.indices[a] == c for a, c, h in zip(at, cols, hit, strict=True) if h)
    assert ((at >= 0) & (at < max(len(indices), 1))).all()  # a valid index: callers gather
    values = X.indices.astype(np.int32) * 3 + 1  # a value per stored entry
    dense_values = sp.csr_matrix((values, X.indices, X.indptr), shape=X.shape).toarray()
    want = [float(dense_values[r, c]) if 0 <= c < 31 else 0.0 for r, c in pairs]
    assert kernels.csr_values(indptr, indices, values, rows, cols).tolist() == want
    no_row = np.where(rows % 3 == 0, -1, rows)  # -1: no such row, nothing is stored
    has = kernels.csr_has(indptr, indices, no_row, cols)
    assert has.tolist() == [r >= 0 and h for r, h in zip(no_row, hit.tolist(), strict=True)]
    grid = kernels.csr_grid(indptr, indices, values, rows[:5], np.arange(-1, 33))
    padded = np.pad(dense_values, ((0, 0), (1, 2)))  # columns -1 and 31, 32 hold nothing
    np.testing.assert_array_equal(grid, padded[rows[:5]])


def test_a_column_past_32_bits_is_not_found() -> None:
    """A column that only matches a stored one in its low 32 bits is not that column."""
    X = sp.csr_matrix(np.array([[0, 0, 0, 0, 0, 0], [0, 0, 0, 0, 0, 1]], dtype=np.float32))
    hit, _ = csr_find(X.indptr, X.indices, np.array([0, 1, 1]), np.array([5 + 2**32, 5, 5 + 2**32]))
    assert hit.tolist() == [False, True, False]
    empty = sp.csr_matrix((2, 6), dtype=np.float32)
    hit, at = csr_find(empty.indptr, empty.indices, np.array([0, 1]), np.array([1, 2]))
    assert hit.tolist() == [False, False] and at.tolist() == [0, 0]


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 2**16), st.integers(1, 6), st.integers(0, 40))
def test_cooc_mean_is_the_numpy_formula(seed: int, n_users: int, n_rows: int) -> None:
    """The co-occurrence feature's compiled pass gives, to the last bit, numpy's mean over a
    user's (up to 3) recent items of count / sqrt((cust_c + 1)(cust_j + 1)); NaN without one."""
    rng = np.random.default_rng(seed)
    X, table = _table(seed)
    cust = np.asarray(X.sum(axis=0)).ravel().astype(float)
    have = rng.integers(0, 4, size=n_users)
    recent = np.full((n_users, 3), -1, dtype=np.int64)
    for u, h in enumerate(have):
        recent[u, :h] = rng.choice(X.shape[1], size=h, replace=False)
    row_user = np.sort(rng.integers(0, n_users, size=n_rows))
    cand = rng.integers(0, X.shape[1], size=n_rows)
    got = kernels.cooc_mean(table.indptr, table.indices, table.counts, cust, recent, row_user, cand)
    want = np.full(n_rows, np.nan)
    for r, (u, c) in enumerate(zip(row_user, cand, strict=True)):
        js = recent[u, : have[u]]
        if len(js):
            cols = table.lookup_rows(js, np.array([c])) / np.sqrt(
                (cust[[c]] + 1)[None, :] * (cust[js] + 1)[:, None]
            )
            want[r] = np.mean(cols, axis=0)[0]
    np.testing.assert_array_equal(got, want)


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 2**16), st.integers(1, 5), st.integers(0, 30))
def test_rebuy_cycles_are_the_numpy_formula(seed: int, n_users: int, n_rows: int) -> None:
    """The re-buy feature's compiled pass gives, to the last bit, numpy's (as_of - last) / day
    / gap (30 where no gap is measured), NaN where the user never bought the item."""
    rng = np.random.default_rng(seed)
    n_items, day = 12, 86_400
    gaps = np.where(rng.random(n_items) < 0.3, np.nan, rng.random(n_items) * 40)
    bought = []
    for _ in range(n_users):
        items = rng.choice(n_items, size=rng.integers(0, 6), replace=False).tolist()
        bought.append({i: int(rng.integers(0, 10**9)) for i in items})
    as_of = rng.integers(10**9, 2 * 10**9, size=n_users)
    row_user = np.sort(rng.integers(0, n_users, size=n_rows))
    cand = rng.integers(0, n_items, size=n_rows)
    got = kernels.rebuy_cycles(
        np.array([i for d in bought for i in d], dtype=np.int64),
        np.array([t for d in bought for t in d.values()], dtype=np.int64),
        np.cumsum([0, *(len(d) for d in bought)]), as_of, gaps, day, row_user, cand,
    )  # fmt: skip
    last = np.array(
        [bought[u].get(int(c), np.nan) for u, c in zip(row_user, cand, strict=True)], dtype=float
    )
    want = (as_of[row_user] - last) / day / np.where(np.isfinite(gaps[cand]), gaps[cand], 30.0)
    np.testing.assert_array_equal(got, want)


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 2**16), st.integers(1, 5), st.integers(0, 30))
def test_recent_similarity_is_numpys_nan_mean_and_max(seed: int, n_users: int, n_rows: int) -> None:
    """The similarity features' compiled pass: each candidate's cosines to its user's (up to
    10) recent items, then their mean over the 3 most recent, their largest and their mean,
    as numpy computes them from the same cosines; NaN for a user with no recent item."""
    rng = np.random.default_rng(seed)
    unit = rng.normal(size=(30, 8)).astype(np.float32)
    unit /= np.linalg.norm(unit, axis=1, keepdims=True)
    have = rng.integers(0, 11, size=n_users)
    recent = np.full((n_users, 10), -1, dtype=np.int64)
    for u, h in enumerate(have):
        recent[u, :h] = rng.choice(len(unit), size=h, replace=False)
    row_user = np.sort(rng.integers(0, n_users, size=n_rows))
    cand = rng.integers(0, len(unit), size=n_rows)
    got = kernels.recent_similarity(unit, recent, row_user, cand, 3)
    u64 = unit.astype(np.float64)
    cos = np.full((n_rows, 10), np.nan)
    for r, (u, c) in enumerate(zip(row_user, cand, strict=True)):
        js = recent[u, : have[u]]
        cos[r, : len(js)] = u64[js] @ u64[c]

    def nanmean(x: np.ndarray) -> np.ndarray:
        n = (~np.isnan(x)).sum(axis=1)
        total = np.where(np.isnan(x), 0.0, x).sum(axis=1)
        return np.where(n > 0, total / np.maximum(n, 1), np.nan)

    empty = np.isnan(cos).all(axis=1)
    best = np.where(empty, np.nan, np.nanmax(np.where(empty[:, None], 0.0, cos), axis=1))
    want = np.stack([nanmean(cos[:, :3]), best, nanmean(cos)])
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-15)


def test_a_bad_row_raises_as_numpy_would() -> None:
    """Compiled look-ups check their indices: a row past the table is an IndexError, never a
    read of another array's memory."""
    X = sp.identity(4, format="csr")
    for row in (5, 10**8):
        with pytest.raises(IndexError):
            kernels.csr_find(X.indptr, X.indices, np.array([row]), np.array([1]))
