"""BLAS threads during a request: limited while the library works, restored afterwards."""

from __future__ import annotations

import threading

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


def test_the_last_request_to_leave_restores_the_setting_from_another_thread() -> None:
    """Request A sets the limit and leaves first (its thread still alive); request B, on another
    thread, leaves last and restores: the setting comes back, and later requests still limit."""
    a_in, b_in, a_out, done = (threading.Event() for _ in range(4))

    def a() -> None:
        with blas_threads(1):
            a_in.set()
            b_in.wait(10)
        a_out.set()
        done.wait(10)

    def b() -> None:
        a_in.wait(10)
        with blas_threads(1):
            b_in.set()
            a_out.wait(10)

    with threadpool_limits(limits=2, user_api="blas"):
        ta, tb = threading.Thread(target=a), threading.Thread(target=b)
        ta.start()
        tb.start()
        tb.join(10)
        assert ta.is_alive()  # A's thread outlives its request
        assert set(_blas_threads()) == {2}
        inside: list[set[int]] = []

        def c() -> None:  # a later request on a third thread
            with blas_threads(1):
                inside.append(set(_blas_threads()))

        tc = threading.Thread(target=c)
        tc.start()
        tc.join(10)
        assert inside == [{1}]
        done.set()
        ta.join(10)
        assert set(_blas_threads()) == {2}
