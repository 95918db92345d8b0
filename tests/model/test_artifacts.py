"""Model directories: versioned and atomic, authenticated, confined; every failure named."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from recsys import atomic
from recsys.cli.main import main
from recsys.data.synthetic import END
from recsys.errors import (
    ArtifactError,
    ArtifactFormatError,
    ArtifactIntegrityError,
    ConfigError,
    KeyMismatchError,
    ManifestError,
    UnsafeArtifactPathError,
)
from recsys.model.artifacts import (
    ARRAYS,
    FORMAT_VERSION,
    MANIFEST,
    POINTER,
    VERSIONS,
    load_model,
    open_model,
    save_model,
    sha256,
    sign_manifest,
)
from recsys.privacy import Pseudonymizer
from recsys.privacy.consent import SQLiteConsentStore
from recsys.recommender import Recommender
from tests.conftest import KEY

LAYOUT = {".lock", POINTER, VERSIONS}


def published(model_dir: Path) -> Path:
    """The version directory ``CURRENT`` points to."""
    return model_dir / VERSIONS / (model_dir / POINTER).read_text().split()[0]


@pytest.fixture
def saved(fitted, tmp_path: Path) -> Path:
    return fitted.save(tmp_path / "model")


def repoint(model_dir: Path) -> None:
    """Make ``CURRENT`` state the manifest's present SHA-256, as anyone with write access can
    (the pointer is not secret), so the manifest's own checks are what is tested."""
    vdir = published(model_dir)
    digest = hashlib.sha256((vdir / MANIFEST).read_bytes()).hexdigest()
    (model_dir / POINTER).write_text(f"{vdir.name} {digest}\n")


def resign(model_dir: Path, pseudonymizer: Pseudonymizer, edit) -> None:
    """Change the manifest and sign it again with the right key (what a key holder could do),
    so the checks behind the HMAC are tested on their own."""
    mf = published(model_dir) / MANIFEST
    body = json.loads(mf.read_text())
    body.pop("hmac")
    edit(body)
    mf.write_bytes(sign_manifest(body, pseudonymizer))
    repoint(model_dir)


# --- layout and round trip ---------------------------------------------------------------------
def test_save_load_round_trip(fitted, small_shop, pseudonymizer, saved: Path) -> None:
    assert set(p.name for p in saved.iterdir()) == LAYOUT
    vdir = published(saved)
    assert vdir.name == "000001"
    assert sorted(p.name for p in vdir.iterdir()) == [ARRAYS, MANIFEST]
    back = Recommender.load(saved, pseudonymizer=pseudonymizer, consent=fitted.consent)
    users = small_shop.users["user_id"].iloc[:40].tolist()
    assert back.recommend_many(users, 10) == fitted.recommend_many(users, 10)
    # consent is not part of the artifact: with an empty store nobody is personalized
    empty = Recommender.load(saved, pseudonymizer=pseudonymizer, consent=SQLiteConsentStore())
    assert not any(r.personalized for r in empty.recommend_many(users, 10))
    manifest = json.loads((vdir / MANIFEST).read_text())
    assert manifest["pseudonymized"] and manifest["files"] == {ARRAYS: sha256(vdir / ARRAYS)}
    assert len(manifest["hmac"]) == 64 and manifest["format_version"] == FORMAT_VERSION


def test_a_copied_version_directory_loads_as_a_plain_model_directory(
    pseudonymizer, saved: Path, tmp_path: Path
) -> None:
    plain = tmp_path / "plain"
    shutil.copytree(published(saved), plain)
    assert load_model(plain, pseudonymizer=pseudonymizer).ctx.history.users.ids.size > 0


def test_artifact_holds_no_raw_user_id(small_shop, saved: Path) -> None:
    vdir = published(saved)
    raw = set(small_shop.users["user_id"])
    with np.load(vdir / ARRAYS, allow_pickle=False) as z:
        strings = {str(s) for k in z.files if z[k].dtype.kind == "U" for s in z[k]}
    assert strings and not strings & raw
    assert not any(u in (vdir / MANIFEST).read_text() for u in raw)


def test_wrong_key_is_refused(saved: Path) -> None:
    with pytest.raises(KeyMismatchError, match="key differs") as err:
        Recommender.load(saved, pseudonymizer=Pseudonymizer(b"another-key-0123456789"))
    assert isinstance(err.value, ConfigError)


def test_saving_raw_ids_or_without_a_key_is_refused(fitted, small_shop, tmp_path: Path) -> None:
    rec = Recommender(consent=SQLiteConsentStore.in_memory()).fit(small_shop, now=END)
    with pytest.raises(ArtifactError, match="raw user ids"):
        rec.save(tmp_path / "model")
    with pytest.raises(ArtifactError, match="without the shop's key"):
        save_model(fitted.model_, tmp_path / "model", signer=None)
    assert not (tmp_path / "model").exists()


def test_each_save_is_a_new_version_and_the_old_one_is_deleted(
    fitted, pseudonymizer, saved: Path, tmp_path: Path
) -> None:
    fitted.save(saved)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]
    assert set(p.name for p in saved.iterdir()) == LAYOUT
    assert [p.name for p in (saved / VERSIONS).iterdir()] == ["000002"]
    Recommender.load(saved, pseudonymizer=pseudonymizer)


def test_saving_into_a_directory_that_is_not_a_model_is_refused(fitted, tmp_path: Path) -> None:
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "notes.txt").write_text("keep me")
    with pytest.raises(ArtifactError, match="not a recsys model directory"):
        fitted.save(tmp_path / "docs")
    assert (tmp_path / "docs" / "notes.txt").read_text() == "keep me"


# --- the manifest is authenticated, validated and confined -------------------------------------
def test_a_manifest_changed_without_the_key_is_refused(pseudonymizer, saved: Path) -> None:
    mf = published(saved) / MANIFEST
    text = mf.read_text()
    changed = text.replace('"trade_off": 0.95', '"trade_off": 0.1')
    assert changed != text  # the edit an attacker wants: re-ranking quietly weakened
    mf.write_text(changed)
    with pytest.raises(ArtifactIntegrityError, match="CURRENT"):
        load_model(saved, pseudonymizer=pseudonymizer)
    repoint(saved)
    with pytest.raises(ArtifactIntegrityError, match="HMAC"):
        load_model(saved, pseudonymizer=pseudonymizer)


def test_empty_files_is_refused_even_when_signed(pseudonymizer, saved: Path) -> None:
    resign(saved, pseudonymizer, lambda b: b.update(files={}))
    with pytest.raises(ManifestError, match="files"):
        load_model(saved, pseudonymizer=pseudonymizer)


@pytest.mark.parametrize("name", ["../../../etc/hostname", "/etc/hostname", "sub/arrays.npz", ".."])
def test_files_outside_the_model_directory_are_refused(
    pseudonymizer, saved: Path, name: str
) -> None:
    digest = "0" * 64

    def edit(body):
        body["files"] = {name: digest}

    resign(saved, pseudonymizer, edit)
    with pytest.raises(UnsafeArtifactPathError, match="not a plain file name"):
        load_model(saved, pseudonymizer=pseudonymizer)


def test_files_must_name_exactly_what_the_loader_reads(pseudonymizer, saved: Path) -> None:
    vdir = published(saved)
    (vdir / "extra.bin").write_bytes(b"x")
    resign(
        saved, pseudonymizer, lambda b: b["files"].update({"extra.bin": sha256(vdir / "extra.bin")})
    )
    with pytest.raises(ManifestError, match="expected exactly"):
        load_model(saved, pseudonymizer=pseudonymizer)
    resign(saved, pseudonymizer, lambda b: b["files"].pop("extra.bin"))
    with pytest.raises(UnsafeArtifactPathError, match="not listed"):
        load_model(saved, pseudonymizer=pseudonymizer)
    (vdir / "extra.bin").unlink()
    load_model(saved, pseudonymizer=pseudonymizer)  # the check can pass: the file was the reason


def test_a_symlinked_file_is_refused(pseudonymizer, saved: Path, tmp_path: Path) -> None:
    vdir = published(saved)
    outside = tmp_path / "outside.npz"
    shutil.move(vdir / ARRAYS, outside)
    (vdir / ARRAYS).symlink_to(outside)  # same bytes, same SHA-256, but outside the directory
    with pytest.raises(UnsafeArtifactPathError, match="not a plain file"):
        load_model(saved, pseudonymizer=pseudonymizer)


def test_unknown_manifest_fields_are_refused(pseudonymizer, saved: Path) -> None:
    resign(saved, pseudonymizer, lambda b: b.update(run_this="os.system"))
    with pytest.raises(ManifestError, match="run_this"):
        load_model(saved, pseudonymizer=pseudonymizer)


def test_an_unknown_fairness_group_in_a_signed_manifest_is_refused(pseudonymizer, saved) -> None:
    def edit(body):
        for stage in body["config"]["rerank"]["stages"]:
            if stage["kind"] == "fair":
                stage["group"] = "long_tial"

    resign(saved, pseudonymizer, edit)
    with pytest.raises(ConfigError, match="long_tial"):
        Recommender.load(saved, pseudonymizer=pseudonymizer)


def test_a_newer_format_is_refused_naming_both_versions(pseudonymizer, saved: Path) -> None:
    newer = FORMAT_VERSION + 1
    resign(saved, pseudonymizer, lambda b: b.update(format_version=newer))
    match = rf"format version {newer}.*reads format version {FORMAT_VERSION}"
    with pytest.raises(ArtifactFormatError, match=match):
        load_model(saved, pseudonymizer=pseudonymizer)


def test_a_format_1_directory_is_refused_with_advice(pseudonymizer, saved, tmp_path) -> None:
    old = tmp_path / "old"
    shutil.copytree(published(saved), old)
    body = json.loads((old / MANIFEST).read_text())
    for k in ("hmac", "signing_key_id"):
        body.pop(k)
    body["format_version"] = 1
    (old / MANIFEST).write_text(json.dumps(body, indent=2, sort_keys=True) + "\n")
    with pytest.raises(ArtifactFormatError, match=r"version 1.*retrain"):
        load_model(old, pseudonymizer=pseudonymizer)


# --- a bit flip anywhere in any file is refused --------------------------------------------------
def flip_positions(size: int, n: int = 40) -> list[int]:
    """First and last byte and ``n`` more, spread deterministically over the file."""
    rng = np.random.default_rng(size)
    return sorted({0, size - 1, *rng.choice(size, size=min(n, size), replace=False).tolist()})


@pytest.mark.parametrize("name", [POINTER, MANIFEST, ARRAYS])
def test_a_single_bit_flip_in_any_artifact_file_is_refused(
    pseudonymizer, saved: Path, name: str
) -> None:
    path = saved / POINTER if name == POINTER else published(saved) / name
    original = path.read_bytes()
    positions = flip_positions(len(original))
    assert len(positions) >= 30 or len(positions) == len(original)
    for pos in positions:
        flipped = bytearray(original)
        flipped[pos] ^= 1 << (pos % 8)
        path.write_bytes(bytes(flipped))
        if name == MANIFEST:
            repoint(saved)  # the pointer's digest alone must not be what refuses it
        with pytest.raises(ArtifactError) as err:
            load_model(saved, pseudonymizer=pseudonymizer)
        assert "\n" not in str(err.value), f"byte {pos}: not a one-line message"
    path.write_bytes(original)
    repoint(saved)
    load_model(saved, pseudonymizer=pseudonymizer)  # restored: the refusals were the flips


@pytest.mark.parametrize("name", [POINTER, MANIFEST, ARRAYS])
def test_the_cli_refuses_a_flipped_file_with_exit_2_and_one_line(
    fitted, saved: Path, name: str, monkeypatch, capsys
) -> None:
    monkeypatch.setenv("RECSYS_PSEUDONYM_KEY", KEY.decode())
    path = saved / POINTER if name == POINTER else published(saved) / name
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x10
    path.write_bytes(bytes(data))
    assert main(["recommend", "--model", str(saved), "--user", "U0000001"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("recsys: error: ") and err.count("\n") == 1


# --- a crash at any step of a save leaves a loadable model --------------------------------------
STEPS = ("make_dir", "make_temp_dir", "write_file", "fsync", "replace", "remove")


class InjectedCrash(OSError):
    """The process 'dies' here: this step and every later one fail (cleanup included)."""


def instrument(monkeypatch, crash_at: int | None) -> list[tuple[str, tuple]]:
    calls: list[tuple[str, tuple]] = []
    for step in STEPS:
        real = getattr(atomic, step)

        def wrapper(*args, _real=real, _step=step, **kwargs):
            calls.append((_step, args))
            if crash_at is not None and len(calls) >= crash_at:
                raise InjectedCrash(f"crash injected at step {crash_at}")
            return _real(*args, **kwargs)

        monkeypatch.setattr(atomic, step, wrapper)
    return calls


def test_a_crash_at_every_step_of_a_save_leaves_a_loadable_model(
    fitted, small_shop, pseudonymizer, tmp_path: Path, monkeypatch
) -> None:
    old = fitted.model_
    new, _ = old.without_user(pseudonymizer(small_shop.users["user_id"].iloc[0]))
    n_old, n_new = len(old.ctx.history.users), len(new.ctx.history.users)
    assert n_old == n_new + 1  # the two versions can be told apart

    probe = tmp_path / "probe"
    save_model(old, probe, signer=pseudonymizer)
    with monkeypatch.context() as m:
        calls = instrument(m, None)
        save_model(new, probe, signer=pseudonymizer)
    switch = next(i for i, (s, a) in enumerate(calls, 1) if s == "replace" and a[1].name == POINTER)
    assert len(calls) >= 8 and switch < len(calls)  # the cleanup after the switch is tested too

    for n in range(1, len(calls) + 1):
        target = tmp_path / f"model{n}"
        save_model(old, target, signer=pseudonymizer)
        with monkeypatch.context() as m:
            instrument(m, n)
            with pytest.raises(InjectedCrash):
                save_model(new, target, signer=pseudonymizer)
        loaded = load_model(target, pseudonymizer=pseudonymizer)
        expected = n_old if n <= switch else n_new
        assert len(loaded.ctx.history.users) == expected, f"crash at step {n}: wrong version"
        save_model(new, target, signer=pseudonymizer)  # the next save cleans what was left
        assert set(p.name for p in target.iterdir()) == LAYOUT, f"crash at step {n}"
        assert len(list((target / VERSIONS).iterdir())) == 1, f"crash at step {n}"
        assert len(load_model(target, pseudonymizer=pseudonymizer).ctx.history.users) == n_new
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []


def test_leftovers_of_format_1_saves_are_cleaned(fitted, tmp_path: Path) -> None:
    path = tmp_path / "model"
    for leftover in (".model.old", ".model.k3j9x2ab"):  # the old rename-swap's directories
        (tmp_path / leftover).mkdir()
        (tmp_path / leftover / ARRAYS).write_bytes(b"old model")
    (tmp_path / ".model.notes").mkdir()  # not ours: kept
    (tmp_path / ".model.notes" / "todo.txt").write_text("mine")
    fitted.save(path)
    assert sorted(p.name for p in tmp_path.iterdir()) == [".model.notes", "model"]


def test_saving_over_a_plain_model_directory_switches_to_versions(
    pseudonymizer, saved: Path, fitted, tmp_path: Path
) -> None:
    plain = tmp_path / "plain"
    shutil.copytree(published(saved), plain)
    fitted.save(plain)
    assert set(p.name for p in plain.iterdir()) == LAYOUT  # the plain files are gone
    load_model(plain, pseudonymizer=pseudonymizer)


def test_open_model_returns_the_key_only_for_pseudonymized_models(pseudonymizer, saved) -> None:
    model, ps = open_model(saved, pseudonymizer)
    assert ps is pseudonymizer and model.key_id == pseudonymizer.key_id
