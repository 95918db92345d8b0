"""One state directory: explicit, then $RECSYS_STATE_DIR, then XDG, then ~/.local/state."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from recsys.state import StateDir, resolve_state_dir


@pytest.fixture(autouse=True)
def _isolated(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.delenv("RECSYS_STATE_DIR", raising=False)
    monkeypatch.delenv("XDG_STATE_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))


def mode(p: Path) -> int:
    return stat.S_IMODE(p.stat().st_mode)


def test_explicit_wins_and_is_created_private(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("RECSYS_STATE_DIR", str(tmp_path / "env"))
    root = resolve_state_dir(tmp_path / "explicit" / "state")
    assert root == tmp_path / "explicit" / "state"
    assert root.is_dir() and mode(root) == 0o700


def test_environment_then_xdg_then_home(tmp_path: Path, monkeypatch) -> None:
    assert resolve_state_dir() == tmp_path / "home" / ".local" / "state" / "recsys"
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "xdg"))
    assert resolve_state_dir() == tmp_path / "xdg" / "recsys"
    monkeypatch.setenv("RECSYS_STATE_DIR", str(tmp_path / "env"))
    assert resolve_state_dir() == tmp_path / "env"
    assert mode(tmp_path / "env") == 0o700


def test_never_the_current_directory(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    root = resolve_state_dir()
    assert root != tmp_path and tmp_path / "home" in root.parents
    assert not (tmp_path / ".recsys").exists()


def test_state_dir_paths(tmp_path: Path) -> None:
    s = StateDir.resolve(tmp_path / "s")
    assert s.root == tmp_path / "s"
    assert s.key_file == tmp_path / "s" / "pseudonym.key"
    assert s.database == tmp_path / "s" / "state.sqlite"


def test_a_file_in_the_way_is_a_clear_error(tmp_path: Path) -> None:
    from recsys.errors import ConfigError

    (tmp_path / "f").write_text("x")
    with pytest.raises(ConfigError, match="not a directory"):
        resolve_state_dir(tmp_path / "f")
