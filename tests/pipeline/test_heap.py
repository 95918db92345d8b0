"""The frozen heap leaves pre-existing objects out of collections only while runs are active."""

from __future__ import annotations

import gc
import threading
import weakref

from recsys.pipeline.heap import RUN_THRESHOLD, frozen_heap


class _Cycle:
    def __init__(self) -> None:
        self.me = self


def test_objects_alive_at_entry_are_frozen_and_released_at_exit() -> None:
    assert gc.get_freeze_count() == 0
    with frozen_heap():
        assert gc.get_freeze_count() > 0
    assert gc.get_freeze_count() == 0


def test_young_objects_are_collected_less_often_during_a_run_only() -> None:
    before = gc.get_threshold()
    with frozen_heap():
        inside = gc.get_threshold()
        with frozen_heap():  # a nested (or concurrent) run keeps the run's setting
            assert gc.get_threshold() == inside
        assert gc.get_threshold() == inside
    assert inside == (max(before[0], RUN_THRESHOLD), *before[1:])
    assert gc.get_threshold() == before


def test_a_collector_switched_off_by_threshold_stays_off() -> None:
    before = gc.get_threshold()
    gc.set_threshold(0)
    try:
        with frozen_heap():
            assert gc.get_threshold()[0] == 0
        assert gc.get_threshold()[0] == 0
    finally:
        gc.set_threshold(*before)


def test_a_cycle_made_during_the_run_is_collected_during_the_run() -> None:
    with frozen_heap():
        c = _Cycle()
        probe = weakref.ref(c)
        del c
        gc.collect()
        assert probe() is None


def test_garbage_frozen_at_entry_is_collected_after_the_run() -> None:
    c = _Cycle()
    probe = weakref.ref(c)
    with frozen_heap():
        del c
        gc.collect()
        assert probe() is not None  # frozen: the collector does not look at it
    gc.collect()
    assert probe() is None


def test_a_run_that_raises_still_unfreezes() -> None:
    before = gc.get_threshold()
    try:
        with frozen_heap():
            raise RuntimeError("a chunk failed")
    except RuntimeError:
        pass
    assert gc.get_freeze_count() == 0
    assert gc.get_threshold() == before


def test_concurrent_runs_share_one_freeze_and_the_last_unfreezes() -> None:
    entered, release = threading.Barrier(3, timeout=30), threading.Event()
    frozen_inside: list[bool] = []
    before = gc.get_threshold()

    def run() -> None:
        with frozen_heap():
            entered.wait()
            release.wait(timeout=30)
            frozen_inside.append(gc.get_freeze_count() > 0)

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    try:
        entered.wait()
        with frozen_heap():  # a third run that leaves first: the others stay frozen
            pass
        still_frozen = gc.get_freeze_count() > 0
        still_raised = gc.get_threshold()[0] == max(before[0], RUN_THRESHOLD)
    finally:
        release.set()  # never leave the other runs waiting, whatever failed
        for t in threads:
            t.join()
    assert still_frozen and still_raised
    assert frozen_inside == [True, True]
    assert gc.get_freeze_count() == 0
    assert gc.get_threshold() == before
