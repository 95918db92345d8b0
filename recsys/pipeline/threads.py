"""BLAS threads: one per request by default, set with threadpoolctl while the library works.

threadpoolctl's limits are process-wide, so concurrent callers share one limit: the first to
enter sets it and the last to leave restores it.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from threadpoolctl import ThreadpoolController

_lock = threading.Lock()
_users = 0
_saved: list | None = None
_controller: ThreadpoolController | None = None


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
                _saved = _controller.limit(limits=n)
        _users += 1
    try:
        yield
    finally:
        with _lock:
            _users -= 1
            if _users == 0 and _saved is not None:
                _saved.restore_original_limits()
                _saved = None
