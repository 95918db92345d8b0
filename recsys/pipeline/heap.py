"""A quieter garbage collector for runs over many users (an offers chunk, ``recommend_many``).

Python's cyclic collector walks every tracked object of a generation when it collects it. A
run that builds many reasons keeps them (the lists of the users already done) until it ends, so
full collections keep coming and each walks all of them, and the imported libraries and the
loaded model as well, none of which ever becomes garbage. For the run, the heap alive at its
start is frozen (``gc.freeze``) and the youngest generation collects once :data:`RUN_THRESHOLD`
more container objects have been allocated than freed (rather than the current threshold, 700
by default), so older generations fill, and are walked, far less often: reference counting
frees almost everything a run makes, and the few cycles wait a little longer (``benchmarks/offers.py`` and ``benchmarks/scale.py`` measure the batch
paths that use it). Both settings are process-wide (other threads run with them meanwhile).
When the last concurrent run ends, the thresholds are restored (a ``gc.set_threshold`` made
during a run is undone) and everything is unfrozen, so a cycle that was garbage at the start is
still collected afterwards.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager

FREEZE_FROM = 64
"""Runs of at least this many users freeze (a single request rarely meets a full collection)."""

RUN_THRESHOLD = 100_000
"""Container objects allocated, net of those freed, before a young collection during a run
(unless the threshold is already higher; the collector's default is 700)."""

_lock = threading.Lock()
_runs = 0
_saved: tuple[int, int, int] = (700, 10, 10)


@contextmanager
def frozen_heap() -> Iterator[None]:
    """Leave the objects alive now out of the cyclic collector's walks during the block, and
    collect young objects less often (a threshold of 0, collection switched off, stays off).

    Concurrent blocks share one freeze: the first to enter freezes, the last to leave unfreezes.
    """
    global _runs, _saved
    with _lock:
        if _runs == 0:
            gc.freeze()
            _saved = gc.get_threshold()
            if _saved[0]:
                gc.set_threshold(max(_saved[0], RUN_THRESHOLD), *_saved[1:])
        _runs += 1
    try:
        yield
    finally:
        with _lock:
            _runs -= 1
            if _runs == 0:
                gc.set_threshold(*_saved)
                gc.unfreeze()
