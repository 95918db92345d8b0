"""The one place that talks to ``implicit``: fits ALS or BPR and keeps the factors as numpy arrays."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal, Self

import numpy as np
import scipy.sparse as sp
from pydantic import BaseModel, ConfigDict, PositiveFloat, PositiveInt
from scipy.linalg import solve_triangular
from scipy.linalg.lapack import dpotrf
from sklearn.base import BaseEstimator
from sklearn.utils.validation import check_is_fitted, check_non_negative, validate_data

from recsys.candidates import ann
from recsys.candidates.ann import AUTO_MIN_ITEMS, AnnIndex
from recsys.errors import ModelFitError
from recsys.pipeline.threads import blas_threads


class CollaborativeConfig(BaseModel):
    """Settings of the collaborative candidate model."""

    model_config = ConfigDict(extra="forbid")

    algorithm: Literal["als", "bpr"] = "als"
    factors: PositiveInt = 128
    regularization: PositiveFloat | None = None
    """Default: 10 for ALS (an L2 weight on factors), 0.01 for BPR (an SGD penalty)."""
    alpha: PositiveFloat = 1.0
    """ALS: weight of observed interactions."""
    learning_rate: PositiveFloat = 0.01
    """BPR: SGD step size."""
    iterations: PositiveInt | None = None
    """Default: 15 for ALS, 100 for BPR."""
    random_state: int = 0
    ann: Literal["auto", "exact", "hnsw"] = "auto"
    """Collaborative retrieval: ``exact`` scores every item; ``hnsw`` searches an approximate
    index built at fit time (:mod:`recsys.candidates.ann`); ``auto``: the index from
    ``recsys.candidates.ann.AUTO_MIN_ITEMS`` items on."""
    ann_ef: PositiveInt = 128
    """Breadth of the index search (more: higher recall, slower); about 1.3 x the collaborative
    candidates asked for. Measured on the synthetic shop at 100,000 items
    (``benchmarks/index_breadth.py``): see the README's benchmark table."""


_DERIVED = ("item_unit_", "gram_", "mean_", "whitened_")
""":meth:`ImplicitModel.set_norms`'s tables: derived from the item factors, never pickled."""


class ImplicitModel(BaseEstimator):
    """Matrix factorization by ``implicit`` (ALS or BPR) on a user x item confidence matrix.

    Learned: ``user_factors_`` and ``item_factors_`` (float32 arrays); a score is their dot
    product. ``implicit``'s own model object is not kept, so saving needs no pickle.
    """

    def __init__(
        self,
        algorithm: Literal["als", "bpr"] = "als",
        factors: int = 128,
        regularization: float | None = None,
        alpha: float = 1.0,
        learning_rate: float = 0.01,
        iterations: int | None = None,
        random_state: int = 0,
    ) -> None:
        self.algorithm = algorithm
        self.factors = factors
        self.regularization = regularization
        self.alpha = alpha
        self.learning_rate = learning_rate
        self.iterations = iterations
        self.random_state = random_state

    index_: AnnIndex | None = None
    """The approximate retrieval index over ``item_factors_`` (``None``: exact scoring)."""

    @classmethod
    def from_config(cls, cfg: CollaborativeConfig) -> ImplicitModel:
        return cls(**cfg.model_dump(exclude={"ann", "ann_ef"}))

    def build_index(self, cfg: CollaborativeConfig) -> None:
        """Build the retrieval index ``cfg.ann`` asks for (none for ``exact``, or for ``auto``
        below :data:`~recsys.candidates.ann.AUTO_MIN_ITEMS` items)."""
        check_is_fitted(self, "item_factors_")
        n = len(self.item_factors_)
        if cfg.ann == "hnsw" or (cfg.ann == "auto" and n >= AUTO_MIN_ITEMS and ann.available()):
            self.index_ = AnnIndex.build(self.item_factors_, ef=cfg.ann_ef, seed=self.random_state)
        else:
            self.index_ = None

    def check_fitted(self) -> None:
        """``check_is_fitted`` for the request path (sklearn's walks the estimator's tags: a
        fifth of a millisecond a call)."""
        if "item_factors_" not in self.__dict__:
            check_is_fitted(self, "item_factors_")

    @property
    def reg_(self) -> float:
        """The regularization in force (the algorithm's default when none was given)."""
        if self.regularization is not None:
            return self.regularization
        return 10.0 if self.algorithm == "als" else 0.01

    def _make(self):
        if self.algorithm == "als":
            from implicit.cpu.als import AlternatingLeastSquares

            return AlternatingLeastSquares(
                factors=self.factors,
                regularization=self.reg_,
                alpha=self.alpha,
                iterations=self.iterations or 15,
                random_state=self.random_state,
                num_threads=1,
            )
        if self.algorithm == "bpr":
            from implicit.cpu.bpr import BayesianPersonalizedRanking

            return BayesianPersonalizedRanking(
                factors=self.factors,
                learning_rate=self.learning_rate,
                regularization=self.reg_,
                iterations=self.iterations or 100,
                random_state=self.random_state,
                num_threads=1,
            )
        raise ModelFitError(f"unknown algorithm {self.algorithm!r}; expected 'als' or 'bpr'")

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True  # the user x item matrix is sparse by nature
        tags.input_tags.positive_only = True  # confidences: counts and weights, never negative
        return tags

    def fit(self, user_items: sp.csr_matrix | np.ndarray, y: None = None) -> Self:
        """Fit on a users x items confidence matrix (users without events keep zero factors).

        ``y`` is ignored: implicit feedback has no target (scikit-learn's unsupervised signature).
        """
        user_items = sp.csr_matrix(
            validate_data(self, user_items, accept_sparse="csr", dtype=np.float32)
        )
        check_non_negative(user_items, f"{type(self).__name__}.fit")
        if user_items.nnz == 0:
            raise ModelFitError("no interactions to learn from (after minimization and consent)")
        try:
            with blas_threads(1):  # implicit runs its own threads; BLAS inside them must not
                model = self._make()
                model.fit(user_items, show_progress=False)
        except Exception as exc:  # implicit raises plain exceptions
            raise ModelFitError(f"{self.algorithm} failed to fit: {exc}") from exc
        uf = np.asarray(model.user_factors, dtype=np.float32)
        itf = np.asarray(model.item_factors, dtype=np.float32)
        if not (np.isfinite(uf).all() and np.isfinite(itf).all()):
            raise ModelFitError(
                f"{self.algorithm} produced non-finite factors; lower the learning rate"
            )
        # users with no events get a zero vector: they have no personal signal
        empty = np.diff(user_items.indptr) == 0
        uf[empty] = 0.0
        self.user_factors_ = uf
        self.item_factors_ = itf
        self.set_norms()
        return self

    def set_norms(self) -> None:
        """The tables derived from ``item_factors_`` (unit vectors, Gram matrix, mean, the
        whitened factors of the ALS split): call it after every change of the item factors."""
        n = np.linalg.norm(self.item_factors_, axis=1, keepdims=True)
        self.item_unit_ = self.item_factors_ / np.maximum(n, 1e-9)
        Y = self.item_factors_.astype(np.float64)
        self.gram_ = Y.T @ Y
        self.mean_ = Y.mean(axis=0)
        if self.algorithm == "als":
            # the factors whitened by the regularized Gram matrix G0 = Y^T Y + reg I = L L^T:
            # W = Y L^-T, so W_a . W_b = y_a^T G0^-1 y_b, the part of every user's ALS system all
            # users share (see ``split_many``); one triangular solve over the items, at load
            g0 = self.gram_.copy()
            g0[np.diag_indices_from(g0)] += self.reg_
            chol, info = dpotrf(g0, lower=True, clean=True)
            if info != 0:
                raise ModelFitError(f"the ALS Gram matrix is not positive definite (info {info})")
            w = solve_triangular(chol, Y.T, lower=True, check_finite=False).T
            self.whitened_ = np.ascontiguousarray(w)  # Fortran-order solve: .T is C already

    def __getstate__(self) -> dict:
        # what set_norms derives (unit vectors, Gram matrix, mean, whitened factors: more than
        # the factors themselves) is rebuilt where the model is unpickled (a Dask worker, a deep
        # copy): the state ships only what was learned
        state = dict(super().__getstate__())  # a copy: object's own is the live __dict__
        for name in _DERIVED:
            state.pop(name, None)
        return state

    def __setstate__(self, state: dict) -> None:
        super().__setstate__(state)
        if "item_factors_" in state:
            self.set_norms()

    def score_moments(self, V: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Mean and standard deviation over every item of each user's scores (rows of ``V``),
        in closed form from the factors' mean and Gram matrix: no pass over the items."""
        V = np.asarray(V, dtype=np.float64)
        G, m = self.gram_, self.mean_
        # one user at a time (dots, and v'Gv as a matrix-vector product and a dot): a user's
        # numbers are the same whether asked alone or in a block (a block's product rounds in
        # its own way), and a request's cost a fifth of einsum's
        mean = np.fromiter((v @ m for v in V), dtype=np.float64, count=len(V))
        quad = np.fromiter(((G @ v) @ v for v in V), dtype=np.float64, count=len(V))
        second = quad / max(len(self.item_factors_), 1)
        return mean, np.sqrt(np.maximum(second - mean**2, 0.0))

    def scores(self, u: int) -> np.ndarray:
        """Scores of every item for user index ``u``."""
        self.check_fitted()
        return self.item_factors_ @ self.user_factors_[u]

    def split_many(
        self,
        histories: Sequence[np.ndarray],
        weights: Sequence[np.ndarray],
        items: Sequence[np.ndarray],
    ) -> list[np.ndarray]:
        """Per user ``p``: how much each item of ``histories[p]`` (with confidence weights
        ``weights[p]``) adds to the score of each of ``items[p]`` (history x items).

        ALS: the exact split of the least-squares solution ``x_u = A^-1 Y^T C p`` (as in
        ``implicit``'s ``explain``): history item ``h`` adds ``c_h y_h^T A^-1 y_i`` to item
        ``i``'s score, and the parts sum to the score of the re-solved user vector. ``A = G0 +
        Yh^T D Yh`` (``D = C - I`` on the history) differs from the shared ``G0`` only on the
        history, so by the push-through identity the split is ``C (I + M D)^-1 U`` with ``M =
        Wh Wh^T`` and ``U = Wh W_i^T`` in the whitened factors: a history x history solve per
        user instead of factorizing the factors x factors ``A``. Users with as many history
        items and items are solved in one stacked call; each user's numbers are computed the
        same way however many share the call. BPR: factor similarity.
        """
        self.check_fitted()
        out: list[np.ndarray] = [np.empty((0, 0))] * len(histories)
        if self.algorithm != "als":
            Y = self.item_factors_
            for p, (h, i) in enumerate(zip(histories, items, strict=True)):
                out[p] = Y[h].astype(np.float64) @ Y[i].T.astype(np.float64)
            return out
        W = self.whitened_
        shapes: dict[tuple[int, int], list[int]] = {}
        for p, (h, i) in enumerate(zip(histories, items, strict=True)):
            shapes.setdefault((len(h), len(i)), []).append(p)
        for (nh, ni), who in shapes.items():
            if nh == 0 or ni == 0:
                for p in who:
                    out[p] = np.zeros((nh, ni))
                continue
            conf = self.alpha * np.array([weights[p] for p in who], dtype=np.float64)
            wh = W[np.array([histories[p] for p in who], dtype=np.int64)]  # users x h x f
            m = wh @ wh.transpose(0, 2, 1)
            s = m * (conf - 1.0)[:, None, :]
            s[:, np.arange(nh), np.arange(nh)] += 1.0
            u = wh @ W[np.array([items[p] for p in who], dtype=np.int64)].transpose(0, 2, 1)
            try:
                x = np.linalg.solve(s, u)
            except np.linalg.LinAlgError as exc:
                raise ModelFitError(f"a user's ALS system is singular: {exc}") from None
            split = conf[:, :, None] * x
            for b, p in enumerate(who):
                out[p] = split[b]
        return out

    def user_vector(self, history: np.ndarray, weights: np.ndarray) -> np.ndarray:
        """Solve a user's factor from a history (the ALS user step); BPR has no such step."""
        self.check_fitted()
        if self.algorithm != "als":
            raise NotImplementedError("only ALS user factors can be re-solved from a history")
        yh = self.item_factors_[history].astype(np.float64)
        conf = self.alpha * weights
        A = self.gram_ + yh.T @ ((conf - 1.0)[:, None] * yh)
        A[np.diag_indices_from(A)] += self.reg_
        return np.linalg.solve(A, yh.T @ conf).astype(np.float32)

    def resolve_items(self, items: np.ndarray, item_users: sp.csr_matrix) -> None:
        """Re-solve the factors of ``items`` from the current user factors (ALS item step).

        ``item_users`` holds, per item in ``items``, the remaining users' confidences. Used after
        erasure so an item's factor no longer carries the forgotten user's signal, the same
        least-squares step ``implicit``'s ``partial_fit_items`` takes. BPR factors are kept.
        """
        check_is_fitted(self, "item_factors_")
        if self.algorithm != "als" or not len(items):
            return
        X = self.user_factors_.astype(np.float64)
        base = X.T @ X
        base[np.diag_indices_from(base)] += self.reg_
        out = self.item_factors_.copy()
        for row, i in enumerate(items):
            users = item_users.indices[item_users.indptr[row] : item_users.indptr[row + 1]]
            conf = self.alpha * item_users.data[item_users.indptr[row] : item_users.indptr[row + 1]]
            xu = X[users]
            A = base + xu.T @ ((conf - 1.0)[:, None] * xu)
            out[i] = np.linalg.solve(A, xu.T @ conf) if len(users) else 0.0
        self.item_factors_ = out.astype(np.float32)
        self.set_norms()
        if self.index_ is not None:  # the index holds the re-solved vectors too
            self.index_.update(items, self.item_factors_)

    def drop_users(self, keep: np.ndarray) -> None:
        """Keep only the user factors at indices ``keep`` (erasure)."""
        self.user_factors_ = self.user_factors_[keep]

    def to_arrays(self) -> dict[str, np.ndarray]:
        return {"user_factors": self.user_factors_, "item_factors": self.item_factors_}

    @classmethod
    def from_arrays(cls, params: dict, arrays: dict[str, np.ndarray]) -> ImplicitModel:
        m = cls(**params)
        m.user_factors_ = arrays["user_factors"]
        m.item_factors_ = arrays["item_factors"]
        m.set_norms()
        return m
