"""BLAS threads during a request: limited while the library works, restored afterwards."""

from __future__ import annotations

import numpy as np  # noqa: F401  (loads the BLAS library the limits act on)
from threadpoolctl import ThreadpoolController, threadpool_limits

from recsys.pipeline.threads import blas_threads


def _blas_threads() -> list[int]:
    return [
        lib.num_threads for lib in ThreadpoolController().select(user_api="blas").lib_controllers
    ]


def test_the_limit_holds_inside_and_the_setting_comes_back_after() -> None:
    with threadpool_limits(limits=2, user_api="blas"):
        assert set(_blas_threads()) == {2}
        with blas_threads(1):
            assert set(_blas_threads()) == {1}
            with blas_threads(1):  # a concurrent request inside: the outer one restores
                assert set(_blas_threads()) == {1}
            assert set(_blas_threads()) == {1}
        assert set(_blas_threads()) == {2}


def test_a_process_already_at_the_limit_keeps_it_and_none_changes_nothing() -> None:
    with threadpool_limits(limits=1, user_api="blas"):
        with blas_threads(1):
            assert set(_blas_threads()) == {1}
        assert set(_blas_threads()) == {1}
    with threadpool_limits(limits=2, user_api="blas"), blas_threads(None):
        assert set(_blas_threads()) == {2}
