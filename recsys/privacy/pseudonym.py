"""Keyed pseudonyms for user ids (HMAC-SHA256), so artifacts never hold a raw user id.

The key lives outside every artifact: in ``RECSYS_PSEUDONYM_KEY`` or in the file named by
``RECSYS_PSEUDONYM_KEY_FILE``.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from recsys.errors import ConfigError

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

    def many(self, user_ids: Iterable[str]) -> np.ndarray:
        return np.array([self(u) for u in user_ids], dtype=object)

    @classmethod
    def from_env(cls) -> Pseudonymizer:
        if os.environ.get(ENV_KEY):
            return cls(os.environ[ENV_KEY].encode())
        if os.environ.get(ENV_KEY_FILE):
            return cls.from_file(os.environ[ENV_KEY_FILE])
        raise ConfigError(
            f"no pseudonymization key: set {ENV_KEY} (at least {MIN_KEY_BYTES} characters) "
            f"or {ENV_KEY_FILE} (a file made by `recsys keygen`)"
        )

    @classmethod
    def from_file(cls, path: str | Path) -> Pseudonymizer:
        try:
            return cls(Path(path).read_text().strip().encode())
        except OSError as exc:
            raise ConfigError(f"{path}: cannot read pseudonymization key: {exc}") from exc


def new_key_file(path: str | Path) -> Path:
    """Write a fresh random key readable by the owner only."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(secrets.token_hex(32) + "\n")
    path.chmod(0o600)
    return path
