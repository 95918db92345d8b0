"""Keyed pseudonyms for user ids (HMAC-SHA256), so artifacts never hold a raw user id.

The key lives outside every artifact: in ``RECSYS_PSEUDONYM_KEY``, in the file named by
``RECSYS_PSEUDONYM_KEY_FILE``, or in the state directory (:mod:`recsys.state`). A key file is
created with mode 0600 in one step and refused when group or others can read it.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import stat
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd

from recsys.errors import ConfigError
from recsys.state import StateDir

ENV_KEY = "RECSYS_PSEUDONYM_KEY"
ENV_KEY_FILE = "RECSYS_PSEUDONYM_KEY_FILE"
MIN_KEY_BYTES = 16


class Pseudonymizer:
    """Maps user ids to stable pseudonyms under one secret key."""

    def __init__(self, key: bytes) -> None:
        if len(key) < MIN_KEY_BYTES:
            raise ConfigError(f"pseudonymization key must have at least {MIN_KEY_BYTES} bytes")
        self._key = key
        self._cache: dict[str, str] = {}

    def __repr__(self) -> str:  # never print the key
        return "Pseudonymizer(key=<hidden>)"

    @property
    def key_id(self) -> str:
        """A fingerprint of the key (not the key) so a model can tell it is used with the right key."""
        return hmac.new(self._key, b"recsys-key-id", hashlib.sha256).hexdigest()[:16]

    def __call__(self, user_id: str) -> str:
        p = self._cache.get(user_id)
        if p is None:
            p = "p" + hmac.new(self._key, str(user_id).encode(), hashlib.sha256).hexdigest()[:31]
            if len(self._cache) < 1_000_000:
                self._cache[user_id] = p
        return p

    def mac(self, domain: str, message: bytes) -> str:
        """HMAC-SHA256 of ``message`` under a sub-key derived from the key for ``domain``.

        The sub-key is ``HMAC(key, 0xFF || domain)``: a pseudonym's input is UTF-8 text, which
        never starts with the byte 0xFF, so no user id can make a pseudonym that reveals a
        sub-key, and a MAC made for one domain is worthless in another."""
        sub = hmac.new(self._key, b"\xff" + domain.encode(), hashlib.sha256).digest()
        return hmac.new(sub, message, hashlib.sha256).hexdigest()

    def many(self, user_ids: Iterable[str]) -> np.ndarray:
        """Pseudonyms of ``user_ids``, in order; each distinct id is keyed once."""
        ids = user_ids if isinstance(user_ids, pd.Series) else pd.Series(list(user_ids))
        codes, uniques = pd.factorize(ids.astype(object), use_na_sentinel=False)
        keyed = np.array([self(u) for u in uniques], dtype=object)
        return keyed[codes] if len(codes) else np.empty(0, dtype=object)

    @classmethod
    def from_env(cls) -> Pseudonymizer:
        """The shop's key, found as every command finds it: ``$RECSYS_PSEUDONYM_KEY``, else
        ``$RECSYS_PSEUDONYM_KEY_FILE``, else the state directory's key file (the one
        ``recsys train`` created; ``$RECSYS_STATE_DIR``)."""
        if os.environ.get(ENV_KEY):
            return cls(os.environ[ENV_KEY].encode())
        if os.environ.get(ENV_KEY_FILE):
            return cls.from_file(os.environ[ENV_KEY_FILE])
        state_key = StateDir.resolve().key_file
        if state_key.exists():
            return cls.from_file(state_key)
        raise ConfigError(
            f"no pseudonymization key: set {ENV_KEY} (at least {MIN_KEY_BYTES} characters) "
            f"or {ENV_KEY_FILE} (the key file `recsys train` created), or pass --key-file FILE"
        )

    @classmethod
    def from_file(cls, path: str | Path) -> Pseudonymizer:
        """Read a key file; refused when group or others may read it (the key is a secret)."""
        path = Path(path)
        try:
            check_private(path)
            return cls(path.read_text().strip().encode())
        except OSError as exc:
            raise ConfigError(f"{path}: cannot read pseudonymization key: {exc}") from exc


def check_private(path: Path) -> None:
    """Raise :class:`ConfigError` if ``path`` is readable or writable by group or others."""
    if os.name != "posix":
        return
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        raise ConfigError(
            f"{path}: pseudonymization key is accessible by group or others (mode {mode:04o}); "
            f"restrict it with: chmod 600 {path}"
        )


def new_key_file(path: str | Path) -> Path:
    """Create a fresh random key file readable by the owner only.

    The file is created with mode 0600 in the same call that creates it (``O_CREAT|O_EXCL``),
    so it is never readable by others, not even for a moment; an existing file is never
    overwritten. Missing parent directories are created with mode 0700.
    """
    path = Path(path)
    parent = path.parent
    if not parent.exists():
        parent.mkdir(mode=0o700, parents=True)
        parent.chmod(0o700)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError as exc:
        raise ConfigError(f"{path}: a key file already exists; refusing to overwrite it") from exc
    except OSError as exc:
        raise ConfigError(f"{path}: cannot create the pseudonymization key: {exc}") from exc
    with os.fdopen(fd, "w") as f:
        f.write(secrets.token_hex(32) + "\n")
    return path
