"""Per-thread connections to the shop's state database, as the consent store keeps them."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from recsys.privacy.consent import connect

T = TypeVar("T")


class StateTable:
    """A store whose tables live in the state database (``state.sqlite``, WAL mode).

    One connection per thread; pickles as its path, so it ships to worker processes and
    reconnects there. Subclasses set :attr:`SCHEMA`.
    """

    SCHEMA: str = ""

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        self._local = threading.local()

    def __getstate__(self) -> dict[str, Any]:
        return {"path": self.path}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["path"])  # type: ignore[misc]

    def conn(self) -> sqlite3.Connection:
        c = getattr(self._local, "conn", None)
        if c is None:
            c = connect(self.path, self.SCHEMA)
            self._local.conn = c
        return c

    def transaction(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn`` in one write transaction (committed on return, rolled back on error)."""
        c = self.conn()
        c.execute("BEGIN IMMEDIATE")
        try:
            out = fn(c)
            c.execute("COMMIT")
        except BaseException:
            c.execute("ROLLBACK")
            raise
        return out
