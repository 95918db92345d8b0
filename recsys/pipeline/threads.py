"""BLAS threads: one per request by default, set with threadpoolctl while the library works.

threadpoolctl's limits are process-wide, so concurrent callers share one limit: the first to
enter sets it and the last to leave restores it. These may be different threads, while
threadpoolctl lets only one thread (the first to set a limit) change a pthreads OpenBLAS and
ignores the others: the thread that sets or restores takes that role first (under the lock).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

import threadpoolctl
from threadpoolctl import ThreadpoolController

_lock = threading.Lock()
_users = 0
_saved: list | None = None
_controller: ThreadpoolController | None = None


def _take_control() -> None:
    """Make the calling thread the one whose OpenBLAS limits take effect (threadpoolctl >= 3.6;
    older versions have no such restriction)."""
    openblas = getattr(threadpoolctl, "OpenBLASController", None)
    clear = getattr(openblas, "clear_controlling_thread", None)
    if clear is not None:
        clear(force=True)


@contextmanager
def blas_threads(n: int | None = 1) -> Iterator[None]:
    """Run the block with at most ``n`` BLAS threads (``None``: leave them as they are)."""
    global _users, _saved, _controller
    if n is None:
        yield
        return
    with _lock:
        if _users == 0:
            _controller = _controller or ThreadpoolController().select(user_api="blas")
            # a process that runs BLAS with n threads anyway (OPENBLAS_NUM_THREADS=1) needs no
            # limit: reading the setting is cheap, setting and restoring it per request is not
            if any(lib.num_threads != n for lib in _controller.lib_controllers):
                _take_control()
                _saved = _controller.limit(limits=n)
        _users += 1
    try:
        yield
    finally:
        with _lock:
            _users -= 1
            if _users == 0 and _saved is not None:
                _take_control()  # the last to leave may not be the thread that set the limit
                _saved.restore_original_limits()
                _saved = None
                _take_control()  # nor may the next to set one be this thread
