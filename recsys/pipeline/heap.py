"""A quieter garbage collector for runs over many users (an offers chunk, ``recommend_many``).

Python's cyclic collector walks every tracked object of a generation when it collects it; a
run that builds many reasons triggers full collections, and each walks the imported libraries
and the loaded model, which never become garbage. Freezing them for the run (``gc.freeze``)
leaves them out (``benchmarks/offers.py`` and ``benchmarks/scale.py`` measure the batch paths
that use it). Objects the run creates are collected as usual, and everything frozen is
unfrozen when the last concurrent run ends, so a cycle that was garbage at the start is still
collected afterwards. Reference counting, which frees almost everything, is not affected.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager

FREEZE_FROM = 64
"""Runs of at least this many users freeze (a single request rarely meets a full collection)."""

_lock = threading.Lock()
_runs = 0


@contextmanager
def frozen_heap() -> Iterator[None]:
    """Leave the objects alive now out of the cyclic collector's walks during the block.

    Concurrent blocks share one freeze: the first to enter freezes, the last to leave unfreezes.
    """
    global _runs
    with _lock:
        if _runs == 0:
            gc.freeze()
        _runs += 1
    try:
        yield
    finally:
        with _lock:
            _runs -= 1
            if _runs == 0:
                gc.unfreeze()
