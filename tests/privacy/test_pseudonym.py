"""The pseudonymization key: created private in one step, refused when others can read it."""

from __future__ import annotations

import argparse
import os
import stat
from pathlib import Path

import pytest

from recsys.cli.data_args import add_key_arg, pseudonymizer_from_args, state_from_args
from recsys.errors import ConfigError
from recsys.privacy.pseudonym import ENV_KEY, ENV_KEY_FILE, Pseudonymizer, new_key_file


@pytest.fixture(autouse=True)
def _no_env_key(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.delenv(ENV_KEY, raising=False)
    monkeypatch.delenv(ENV_KEY_FILE, raising=False)
    monkeypatch.setenv("RECSYS_STATE_DIR", str(tmp_path / "state"))


def mode(p: Path) -> int:
    return stat.S_IMODE(p.stat().st_mode)


def test_key_file_is_created_0600_in_a_0700_directory(tmp_path: Path) -> None:
    old = os.umask(0)  # even with a permissive umask, nothing is ever group/world readable
    try:
        key = new_key_file(tmp_path / "new" / "pseudonym.key")
    finally:
        os.umask(old)
    assert mode(key) == 0o600
    assert mode(key.parent) == 0o700
    assert len(key.read_text().strip()) == 64


def test_key_file_is_created_with_o_excl(tmp_path: Path, monkeypatch) -> None:
    calls = []
    real_open = os.open

    def spy(path, flags, mode=0o777, *a, **kw):
        calls.append((flags, mode))
        return real_open(path, flags, mode, *a, **kw)

    monkeypatch.setattr(os, "open", spy)
    new_key_file(tmp_path / "k")
    flags, m = calls[-1]
    assert flags & os.O_CREAT and flags & os.O_EXCL and m == 0o600


def test_existing_key_is_never_overwritten(tmp_path: Path) -> None:
    key = new_key_file(tmp_path / "k")
    before = key.read_text()
    with pytest.raises(ConfigError, match="already exists"):
        new_key_file(key)
    assert key.read_text() == before


@pytest.mark.parametrize("bad_mode", [0o644, 0o640, 0o604, 0o660])
def test_key_readable_by_others_is_refused_with_the_chmod(tmp_path: Path, bad_mode: int) -> None:
    key = new_key_file(tmp_path / "k")
    key.chmod(bad_mode)
    with pytest.raises(ConfigError, match=rf"group or others.*chmod 600 {key}"):
        Pseudonymizer.from_file(key)
    key.chmod(0o600)
    assert Pseudonymizer.from_file(key)("u") == Pseudonymizer.from_file(key)("u")


def parse(*argv: str) -> argparse.Namespace:
    p = argparse.ArgumentParser()
    add_key_arg(p)
    return p.parse_args(list(argv))


def test_missing_key_error_names_only_real_options(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as err:
        pseudonymizer_from_args(parse())
    text = str(err.value)
    assert "--key-file" in text and "--state-dir" in text and ENV_KEY in text
    assert "keygen" not in text
    assert not (tmp_path / "state" / "pseudonym.key").exists()
    # every option the message names exists on the parser
    for option in ("--key-file", "--state-dir"):
        assert parse(option, "x")


def test_state_dir_key_is_created_for_training_only(tmp_path: Path, capsys) -> None:
    args = parse("--state-dir", str(tmp_path / "s"))
    assert state_from_args(args).root == tmp_path / "s"
    ps = pseudonymizer_from_args(args, create=True)
    key = tmp_path / "s" / "pseudonym.key"
    assert key.exists() and mode(key) == 0o600 and mode(key.parent) == 0o700
    assert str(key) in capsys.readouterr().out
    assert pseudonymizer_from_args(args)("u") == ps("u")  # the same key next time


def test_key_resolution_order(tmp_path: Path, monkeypatch) -> None:
    state_key = new_key_file(tmp_path / "state" / "pseudonym.key")
    other = new_key_file(tmp_path / "other.key")
    env_file = new_key_file(tmp_path / "env.key")
    fp = {p: Pseudonymizer.from_file(p).key_id for p in (state_key, other, env_file)}
    assert pseudonymizer_from_args(parse()).key_id == fp[state_key]  # $RECSYS_STATE_DIR
    monkeypatch.setenv(ENV_KEY_FILE, str(env_file))
    assert pseudonymizer_from_args(parse()).key_id == fp[env_file]
    assert pseudonymizer_from_args(parse("--key-file", str(other))).key_id == fp[other]
