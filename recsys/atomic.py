"""Crash-safe file system steps, shared by every writer in recsys.

A file is published by writing it under a temporary name, flushing it to disk (``fsync``),
renaming it over the target (``os.replace``, atomic on POSIX) and flushing the directory, so a
crash at any moment leaves either the old file or the new one, never half of one. Every step
that changes the file system goes through a function of this module, so a test can inject a
crash at any step (``monkeypatch.setattr(atomic, "replace", ...)``).
"""

from __future__ import annotations

import contextlib
import glob
import os
import secrets
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

PARTIAL = ".partial"
"""Suffix of temporary files; a leftover ``.NAME.*.partial`` is a killed write, safe to delete."""


def fsync(path: Path) -> None:
    """Flush a file or a directory (its entries: a rename is durable once this returns)."""
    flags = os.O_RDONLY | (getattr(os, "O_DIRECTORY", 0) if Path(path).is_dir() else 0)
    try:
        fd = os.open(path, flags)
    except IsADirectoryError:  # pragma: no cover - platforms without directory handles
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover - some file systems cannot sync directories
        if not Path(path).is_dir():
            raise
    finally:
        os.close(fd)


def replace(src: Path, dst: Path) -> None:
    """Rename ``src`` over ``dst`` in one step (atomic on POSIX)."""
    os.replace(src, dst)


def make_dir(path: Path) -> None:
    """Create ``path`` (and missing parents); an existing directory is fine."""
    Path(path).mkdir(parents=True, exist_ok=True)


def make_temp_dir(parent: Path, prefix: str) -> Path:
    """A new, empty, private directory in ``parent``."""
    return Path(tempfile.mkdtemp(prefix=prefix, dir=parent))


def remove(path: Path) -> None:
    """Delete a file, a symlink or a directory tree; a missing path is fine."""
    path = Path(path)
    if path.is_symlink() or path.is_file():
        path.unlink(missing_ok=True)
    elif path.is_dir():
        shutil.rmtree(path)


def write_file(path: Path, write: Callable[[Path], None]) -> None:
    """``write(path)`` (which creates the file), then flush it to disk."""
    write(path)
    fsync(path)


def write_atomic(path: Path, write: Callable[[Path], None]) -> None:
    """Publish the file ``write(tmp)`` creates at ``path``: readers see the old file or the
    new one, and after a crash at most a ``.NAME.*.partial`` leftover (see :func:`leftovers`)."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}{PARTIAL}")
    try:
        write_file(tmp, write)
        replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            remove(tmp)
        raise
    fsync(path.parent)


def write_bytes_atomic(path: Path, data: bytes) -> None:
    """Publish ``data`` at ``path`` atomically (see :func:`write_atomic`)."""
    write_atomic(path, lambda p: p.write_bytes(data))


def leftovers(directory: Path, name: str) -> list[Path]:
    """Temporary files a killed :func:`write_atomic` of ``directory/name`` left behind."""
    return sorted(Path(directory).glob(f".{glob.escape(name)}.*{PARTIAL}"))


@contextlib.contextmanager
def exclusive_lock(path: Path):
    """Hold an exclusive advisory lock on ``path`` (created if missing) for the ``with`` block.

    Two processes saving to one place take turns; a killed holder releases it automatically.
    Without ``fcntl`` (not POSIX) this does not lock.
    """
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX
        yield
        return
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock
