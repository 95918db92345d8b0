"""One state directory for everything recsys keeps between runs (pseudonymization key, state).

The directory is chosen explicitly or from the environment, never the current directory by
accident, so running a command from another folder does not silently create a second key.
Resolution order: the explicit argument, ``$RECSYS_STATE_DIR``, ``$XDG_STATE_HOME/recsys``,
``~/.local/state/recsys``. It is created with mode 0700: it holds a secret key.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from recsys.errors import ConfigError

ENV_STATE_DIR = "RECSYS_STATE_DIR"
DIR_MODE = 0o700


def _choose(explicit: str | Path | None) -> Path:
    if explicit is not None and str(explicit) != "":
        return Path(explicit).expanduser()
    if os.environ.get(ENV_STATE_DIR):
        return Path(os.environ[ENV_STATE_DIR]).expanduser()
    if os.environ.get("XDG_STATE_HOME"):
        return Path(os.environ["XDG_STATE_HOME"]).expanduser() / "recsys"
    return Path.home() / ".local" / "state" / "recsys"


def resolve_state_dir(explicit: str | Path | None = None) -> Path:
    """The state directory (created with mode 0700 if missing); see the module docstring."""
    root = _choose(explicit)
    if not root.is_absolute():
        root = Path.cwd() / root  # only when asked for: an explicit or environment path
    try:
        if not root.exists():
            root.mkdir(mode=DIR_MODE, parents=True)
            root.chmod(DIR_MODE)  # mkdir's mode is reduced by the umask, never widened
        elif not root.is_dir():
            raise ConfigError(f"{root}: state directory path exists but is not a directory")
    except OSError as exc:
        raise ConfigError(f"{root}: cannot create the state directory: {exc}") from exc
    return root


@dataclass(frozen=True)
class StateDir:
    """Where recsys keeps its key and state; see :func:`resolve_state_dir`."""

    root: Path

    @property
    def key_file(self) -> Path:
        return self.root / "pseudonym.key"

    @property
    def database(self) -> Path:
        return self.root / "state.sqlite"

    @classmethod
    def resolve(cls, explicit: str | Path | None = None) -> StateDir:
        return cls(resolve_state_dir(explicit))
