"""Model directories: plain arrays and JSON, never pickle, published atomically, authenticated.

Layout of a model directory ``DIR`` (what ``save_model`` writes and ``open_model`` reads)::

    DIR/CURRENT                 "000007 <SHA-256 of its manifest.json>": the published version
    DIR/versions/000007/        arrays.npz (read with allow_pickle=False) + manifest.json
    DIR/.lock                   taken while saving, so two saves take turns

A save writes a new version directory under a temporary name, flushes it, renames it into
``versions/`` and then switches ``CURRENT`` with one atomic rename: a crash at any step leaves
the previous version loadable, and the next save deletes what a killed save left behind. Older
versions are deleted once the pointer has switched (an erased customer must not survive in an
old version). A directory holding ``manifest.json`` itself (a copied version) loads too.

The manifest is canonical JSON carrying an HMAC-SHA256 made with a sub-key of the shop's
pseudonymization key (:meth:`~recsys.privacy.pseudonym.Pseudonymizer.mac`), so nobody without
the key can change a re-ranking trade-off, a fairness group or the list of files; its schema is
validated (``extra="forbid"``), and ``files`` must name exactly the files the loader reads, each
a plain file inside the version directory with the SHA-256 the manifest states. Every failure is
an :class:`~recsys.errors.ArtifactError` subclass with a one-line message.
"""

from __future__ import annotations

import contextlib
import glob
import hashlib
import hmac
import json
import re
import tempfile
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import IO, Annotated, Any, Literal

import numpy as np
import pandas as pd
import scipy.sparse as sp
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError

from recsys import __version__, atomic
from recsys.candidates.ann import AnnIndex
from recsys.candidates.implicit_adapter import ImplicitModel
from recsys.config import RecommenderConfig
from recsys.data.schema import CATEGORY_SEP
from recsys.errors import (
    ArtifactError,
    ArtifactFormatError,
    ArtifactIntegrityError,
    ConfigError,
    KeyMismatchError,
    ManifestError,
    StaleModelError,
    UnsafeArtifactPathError,
)
from recsys.features.context import FeatureContext
from recsys.features.history import Catalog, History, Vocabulary
from recsys.features.shop import ShopStats
from recsys.features.stats import Cooccurrence
from recsys.model.fitted import FittedModel
from recsys.privacy.policy import Policy
from recsys.privacy.pseudonym import Pseudonymizer
from recsys.ranking.additive import AdditiveModel

FORMAT = "recsys-model"
FORMAT_VERSION = 3
"""Version 3: an optional retrieval index file, the data fingerprint and the policy hash.
Version 2 (versioned directories, an authenticated manifest) still loads; version 1 does not."""
MIN_FORMAT_VERSION = 2
INDEX = "ann.hnsw"
"""The approximate retrieval index (:mod:`recsys.candidates.ann`), when the model has one."""
ARRAYS = "arrays.npz"
MANIFEST = "manifest.json"
POINTER = "CURRENT"
VERSIONS = "versions"
LOCK = ".lock"
READS = frozenset({ARRAYS})
"""The files the loader reads besides the manifest: ``files`` must list exactly these."""
MAC_DOMAIN = "recsys-model-manifest"
MAX_MANIFEST_BYTES = 16 << 20
_POINTER_RE = re.compile(rb"(\d{6,12}) ([0-9a-f]{64})\n")
_VERSION_RE = re.compile(r"\d{6,12}")
_SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*(\.[A-Za-z0-9_-]+)*")

Digest = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]


class Manifest(BaseModel):
    """What ``manifest.json`` holds; anything else in it is refused."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    format: Literal["recsys-model"]
    format_version: int
    versions: dict[str, str]
    purpose: str
    config: dict[str, Any]
    policy: dict[str, Any]
    features: list[str] = Field(min_length=1)
    collaborative_params: dict[str, Any]
    training: dict[str, Any]
    pseudonymized: bool
    key_id: str | None
    signing_key_id: str
    data_cutoff: str
    minimization: dict[str, Any] | None
    files: dict[str, Digest] = Field(min_length=1)
    data_fingerprint: Digest | None = None
    """SHA-256 of the minimized data the model holds (ids, history, catalogue): format 3 on."""
    policy_hash: Digest | None = None
    """SHA-256 of the policy's canonical JSON: format 3 on."""
    index: dict[str, Any] | None = None
    """The retrieval index's kind, dimensions and search breadth (``None``: exact scoring)."""
    hmac: Digest


def sha256(path: Path) -> str:
    with Path(path).open("rb") as f:
        return _sha256_of(f)


def _sha256_of(f: IO[bytes]) -> str:
    h = hashlib.sha256()
    for block in iter(lambda: f.read(1 << 20), b""):
        h.update(block)
    return h.hexdigest()


def _text(a: np.ndarray) -> np.ndarray:
    """Object arrays of strings as fixed-width unicode (storable without pickle)."""
    return np.asarray([str(x) for x in a], dtype=str) if len(a) else np.empty(0, dtype="<U1")


def _versions() -> dict[str, str]:
    out = {"recsys": __version__}
    for pkg in ("numpy", "scipy", "scikit-learn", "implicit", "pandas"):
        with contextlib.suppress(metadata.PackageNotFoundError):
            out[pkg] = metadata.version(pkg)
    return out


ATTR = "item_attr."
"""Array-name prefix of the catalogue's extra attributes (``Catalog.attributes``)."""


def model_arrays(model: FittedModel) -> dict[str, np.ndarray]:
    ctx = model.ctx
    cat, h = ctx.catalog, ctx.history
    cats = [CATEGORY_SEP.join(cat.categories_of(i)) for i in range(len(cat.items))]
    arrays: dict[str, np.ndarray] = {
        "item_ids": _text(cat.items.ids),
        "item_title": _text(cat.title),
        "item_category": _text(np.array(cats, dtype=object)),
        "item_in_stock": cat.in_stock,
        "user_ids": _text(h.users.ids),
        "history_indptr": h.indptr,
        "history_item": h.item,
        "history_ts": h.ts,
        "history_event": h.event,
        "history_value": h.value,
        **ctx.collab.to_arrays(),
        **ctx.cooc.to_arrays(),
        **model.ranker.to_arrays(),
    }
    if ctx.shop is not None:
        arrays.update(ctx.shop.to_arrays())
    if ctx.seen is not None:
        arrays["seen_indptr"] = ctx.seen.indptr.astype(np.int64)
        arrays["seen_indices"] = ctx.seen.indices.astype(np.int64)
    if cat.brand is not None:
        arrays["item_brand"] = _text(cat.brand)
    if cat.price is not None:
        arrays["item_price"] = cat.price
    if cat.seller is not None:
        arrays["item_seller"] = _text(cat.seller)
    if cat.created is not None:
        arrays["item_created"] = cat.created.astype(float)
    for name, col in cat.attributes.items():  # extra item columns the policy allowed (#15)
        arrays[ATTR + name] = col if col.dtype != object else _text(col)
    return arrays


# --- canonical, authenticated manifest ---------------------------------------------------------
def _mac_input(body: dict[str, Any]) -> bytes:
    """The bytes the HMAC covers: the manifest without its ``hmac``, compact and key-sorted."""
    rest = {k: v for k, v in body.items() if k != "hmac"}
    return json.dumps(rest, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def _file_bytes(manifest: dict[str, Any]) -> bytes:
    """The one byte form a manifest file may have (so no byte of it escapes the HMAC)."""
    return (json.dumps(manifest, sort_keys=True, indent=2, ensure_ascii=True) + "\n").encode()


def sign_manifest(body: dict[str, Any], signer: Pseudonymizer) -> bytes:
    """The manifest file for ``body``: its values made JSON-native, an HMAC added."""
    body = json.loads(json.dumps(body, default=str))  # JSON-native values only
    body["hmac"] = signer.mac(MAC_DOMAIN, _mac_input(body))
    return _file_bytes(body)


def _one_line(exc: ValidationError) -> str:
    errs = exc.errors()
    first = errs[0]
    where = ".".join(str(p) for p in first["loc"]) or "(top level)"
    more = f" (and {len(errs) - 1} more)" if len(errs) > 1 else ""
    return f"{where}: {first['msg']}{more}"


def parse_manifest(raw: bytes, signer: Pseudonymizer, *, where: str) -> Manifest:
    """Check one manifest's bytes: JSON, canonical form, format version, HMAC, schema."""
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ManifestError(f"{where}: corrupt manifest (not JSON: {exc})") from None
    if not isinstance(data, dict):
        raise ManifestError(f"{where}: corrupt manifest (expected a JSON object)")
    if data.get("format") != FORMAT:
        raise ManifestError(f"{where}: not a recsys model manifest (format {data.get('format')!r})")
    version = data.get("format_version")
    if not isinstance(version, int) or isinstance(version, bool):
        raise ManifestError(f"{where}: format_version must be an integer, got {version!r}")
    if version > FORMAT_VERSION:
        raise ArtifactFormatError(
            f"{where}: saved in model format version {version}, but this recsys "
            f"({__version__}) reads format version {FORMAT_VERSION}: upgrade recsys to load it"
        )
    if version < MIN_FORMAT_VERSION:
        raise ArtifactFormatError(
            f"{where}: saved in model format version {version}, which this recsys ({__version__}) "
            f"no longer reads (it reads versions {MIN_FORMAT_VERSION} to {FORMAT_VERSION}: an "
            "authenticated manifest); retrain the model"
        )
    if raw != _file_bytes(data):
        raise ArtifactIntegrityError(
            f"{where}: manifest modified since it was saved (its bytes are not the form recsys "
            "writes)"
        )
    mac = data.get("hmac")
    expected = signer.mac(MAC_DOMAIN, _mac_input(data))
    if not isinstance(mac, str) or not hmac.compare_digest(mac, expected):
        signed_by = data.get("signing_key_id")
        if isinstance(signed_by, str) and signed_by != signer.key_id:
            raise KeyMismatchError(
                f"{where}: the pseudonymization key differs from the one this model was saved "
                f"with (key id {signed_by}; the key in use has id {signer.key_id})"
            )
        raise ArtifactIntegrityError(
            f"{where}: manifest modified since it was saved (HMAC-SHA256 check failed)"
        )
    try:
        return Manifest.model_validate(data)
    except ValidationError as exc:
        raise ManifestError(f"{where}: invalid manifest: {_one_line(exc)}") from None


# --- layout: pointer and versions --------------------------------------------------------------
def _read_pointer(path: Path) -> bytes | None:
    """The raw bytes of ``CURRENT`` (``None`` when there is none)."""
    p = path / POINTER
    if p.is_symlink():
        raise UnsafeArtifactPathError(f"{p}: is a symlink; recsys writes a plain file")
    try:
        with p.open("rb") as f:
            return f.read(256)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise ArtifactError(f"{p}: cannot be read: {exc}") from None


def _parse_pointer(path: Path, raw: bytes) -> tuple[str, str]:
    m = _POINTER_RE.fullmatch(raw)
    if m is None:
        raise ArtifactIntegrityError(
            f"{path / POINTER}: corrupt version pointer (expected '<6+ digits> <SHA-256>' and a "
            "newline)"
        )
    return m.group(1).decode(), m.group(2).decode()


def _published(path: Path) -> tuple[Path, str | None]:
    """The directory to load, and the manifest digest the pointer promises (``None``: a plain
    model directory without a pointer)."""
    raw = _read_pointer(path)
    if raw is None:
        if (path / MANIFEST).is_file():
            return path, None
        if not path.exists():
            raise ArtifactError(f"{path}: no such model directory")
        raise ArtifactError(f"{path}: not a recsys model directory (no {POINTER} or {MANIFEST})")
    name, digest = _parse_pointer(path, raw)
    vdir = path / VERSIONS / name
    if vdir.is_symlink() or not vdir.is_dir():
        raise ArtifactError(
            f"{path / POINTER}: points to version {name}, which is missing or not a directory"
        )
    return vdir, digest


def _checked_files(vdir: Path, manifest: Manifest, *, plain: bool) -> None:
    """``files`` names exactly :data:`READS`, each a plain file inside ``vdir``, nothing else."""
    for name in manifest.files:
        if not _SAFE_NAME.fullmatch(name):
            raise UnsafeArtifactPathError(
                f"{vdir / MANIFEST}: files entry {name!r} is not a plain file name inside the "
                "model directory"
            )
    listed = set(manifest.files)
    reads = READS | ({INDEX} if manifest.index is not None else set())
    if listed != reads:
        raise ManifestError(
            f"{vdir / MANIFEST}: files lists {sorted(listed)}, expected exactly {sorted(reads)}"
        )
    present = {p.name for p in vdir.iterdir()} - {MANIFEST}
    if plain:  # a directory that may also hold the versioned layout's own entries
        present -= {VERSIONS, LOCK}
        present = {n for n in present if not n.startswith(f".{POINTER}.")}
    if present != listed:
        extra, missing = sorted(present - listed), sorted(listed - present)
        raise UnsafeArtifactPathError(
            f"{vdir}: files not listed in the manifest: {extra}; listed but missing: {missing}"
        )
    root = vdir.resolve()
    for name in listed:
        f = vdir / name
        if f.is_symlink() or not f.is_file() or f.resolve().parent != root:
            raise UnsafeArtifactPathError(f"{f}: not a plain file inside the model directory")


def _open_checked(path: Path, signer: Pseudonymizer) -> tuple[Path, Manifest]:
    vdir, promised = _published(path)
    mf = vdir / MANIFEST
    try:
        with mf.open("rb") as f:
            raw = f.read(MAX_MANIFEST_BYTES + 1)
    except FileNotFoundError:
        raise ArtifactError(f"{mf}: missing") from None
    except OSError as exc:
        raise ArtifactError(f"{mf}: cannot be read: {exc}") from None
    if len(raw) > MAX_MANIFEST_BYTES:
        raise ManifestError(f"{mf}: larger than {MAX_MANIFEST_BYTES:,} bytes")
    if promised is not None and hashlib.sha256(raw).hexdigest() != promised:
        raise ArtifactIntegrityError(
            f"{mf}: does not match the SHA-256 that {path / POINTER} states (modified, or the "
            "pointer is)"
        )
    manifest = parse_manifest(raw, signer, where=str(mf))
    _checked_files(vdir, manifest, plain=promised is None)
    return vdir, manifest


def read_manifest(path: Path, signer: Pseudonymizer) -> Manifest:
    """The checked manifest of the published version of ``path`` (see :func:`open_model`)."""
    return _open_checked(Path(path), signer)[1]


def open_model(
    path: Path, pseudonymizer: Pseudonymizer | None = None
) -> tuple[FittedModel, Pseudonymizer | None]:
    """The published model of ``path``, checked, and the key to use with it.

    ``pseudonymizer`` (default: the environment's key) authenticates the manifest and, for a
    pseudonymized model, must be the key it was trained with; it is returned for such a model
    (``None`` for a model with raw ids). A save replacing the model while it is read is retried.
    """
    p = open_published(path, pseudonymizer)
    return p.model, p.pseudonymizer


@dataclass(frozen=True)
class Published:
    """One loaded version of a model directory and what it was loaded from."""

    model: FittedModel
    pseudonymizer: Pseudonymizer | None
    manifest: Manifest
    version: str
    """The version directory's name (``000007``); the directory's name for a plain layout."""
    pointer: bytes | None
    """``CURRENT`` as it was read (``None``: a plain layout): a watcher compares it."""


def pointer_of(path: Path) -> bytes | None:
    """The raw bytes of ``path``'s version pointer (``None`` when there is none)."""
    return _read_pointer(Path(path))


def open_published(path: Path, pseudonymizer: Pseudonymizer | None = None) -> Published:
    """:func:`open_model` with the checked manifest and the version it came from."""
    path = Path(path)
    ps = pseudonymizer or Pseudonymizer.from_env()
    for attempt in range(3):
        before = _read_pointer(path)
        try:
            vdir, manifest = _open_checked(path, ps)
            model = _load(vdir, manifest, ps)
            return Published(
                model, ps if manifest.pseudonymized else None, manifest, vdir.name, before
            )
        except ArtifactError:
            if attempt == 2 or _read_pointer(path) == before:
                raise
    raise AssertionError("unreachable")  # pragma: no cover


def load_model(path: Path, *, pseudonymizer: Pseudonymizer | None = None) -> FittedModel:
    """The published model of ``path`` as a :class:`FittedModel` (see :func:`open_model`)."""
    return open_model(path, pseudonymizer)[0]


def _load(vdir: Path, manifest: Manifest, ps: Pseudonymizer) -> FittedModel:
    where = vdir / MANIFEST
    if manifest.pseudonymized != (manifest.key_id is not None):
        raise ManifestError(f"{where}: pseudonymized and key_id disagree")
    if manifest.pseudonymized and manifest.key_id != ps.key_id:
        raise KeyMismatchError(
            f"{where}: the pseudonymization key differs from the one this model was trained with"
        )
    try:
        config = RecommenderConfig.model_validate(manifest.config)
        policy = Policy.model_validate(manifest.policy)
    except ValidationError as exc:
        raise ManifestError(f"{where}: invalid configuration: {_one_line(exc)}") from None
    except ConfigError as exc:
        raise ManifestError(f"{where}: invalid configuration: {exc}") from None
    f = vdir / ARRAYS
    try:
        with f.open("rb") as fh:  # hashed and read through one handle: what is checked is read
            if _sha256_of(fh) != manifest.files[ARRAYS]:
                raise ArtifactIntegrityError(f"{f}: modified since it was saved (SHA-256 mismatch)")
            fh.seek(0)
            with np.load(fh, allow_pickle=False) as z:
                a = {k: z[k] for k in z.files}
        model = _model(manifest, config, policy, a)
        if manifest.index is not None:
            model.ctx.collab.index_ = _load_index(vdir, manifest, model)
        return model
    except ArtifactError:
        raise
    except OSError as exc:
        raise ArtifactError(f"{f}: cannot be read: {exc}") from None
    except (KeyError, ValueError, IndexError, TypeError) as exc:
        raise ArtifactError(f"{vdir}: inconsistent model arrays: {exc!r}") from None


def _load_index(vdir: Path, manifest: Manifest, model: FittedModel) -> AnnIndex:
    """The retrieval index, from a private copy of the very bytes whose SHA-256 was checked
    (hnswlib reads a path: the file in the model directory could change in between)."""
    f = vdir / INDEX
    info = manifest.index or {}
    try:
        raw = f.read_bytes()
    except OSError as exc:
        raise ArtifactError(f"{f}: cannot be read: {exc}") from None
    if hashlib.sha256(raw).hexdigest() != manifest.files[INDEX]:
        raise ArtifactIntegrityError(f"{f}: modified since it was saved (SHA-256 mismatch)")
    factors = model.ctx.collab.item_factors_
    if info.get("kind") != "hnsw" or info.get("dim") != factors.shape[1]:
        raise ManifestError(f"{vdir / MANIFEST}: index {info} does not fit the item factors")
    with tempfile.TemporaryDirectory(prefix="recsys-index-") as tmp:
        copy = Path(tmp) / INDEX
        copy.write_bytes(raw)
        try:
            index = AnnIndex.load(copy, factors.shape[1], len(factors), int(info["ef"]))
        except (RuntimeError, ValueError, KeyError, TypeError) as exc:
            raise ArtifactError(f"{f}: not a readable index: {exc}") from None
        except ImportError as exc:
            raise ArtifactError(f"{f}: {exc}") from None
    if len(index) != info.get("items"):
        raise ArtifactIntegrityError(f"{f}: holds {len(index)} items, the manifest states {info}")
    return index


def data_fingerprint(arrays: dict[str, np.ndarray]) -> str:
    """SHA-256 over the arrays of the minimized data (ids, history, catalogue), in name order."""
    h = hashlib.sha256()
    for name in sorted(arrays):
        if name.startswith(("item_", "user_ids", "history_")):
            a = np.ascontiguousarray(arrays[name])
            h.update(f"{name}:{a.dtype.str}:{a.shape}".encode())
            h.update(a.tobytes())
    return h.hexdigest()


def policy_hash(policy: Policy) -> str:
    text = json.dumps(policy.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def _model(
    manifest: Manifest, config: RecommenderConfig, policy: Policy, a: dict[str, np.ndarray]
) -> FittedModel:
    items = pd.DataFrame(
        {
            "item_id": a["item_ids"].astype(object),
            "title": a["item_title"].astype(object),
            "category": a["item_category"].astype(object),
            "in_stock": a["item_in_stock"],
        }
    )
    if "item_brand" in a:
        items["brand"] = a["item_brand"].astype(object)
    if "item_price" in a:
        items["price"] = a["item_price"]
    if "item_seller" in a:
        items["seller_id"] = a["item_seller"].astype(object)
    if "item_created" in a:
        items["created_at"] = pd.to_datetime(a["item_created"], unit="s", utc=True).as_unit("s")
    for name in sorted(n for n in a if n.startswith(ATTR)):
        col = a[name]
        items[name.removeprefix(ATTR)] = col.astype(object) if col.dtype.kind == "U" else col
    catalog = Catalog.from_frame(items)
    history = History(
        Vocabulary(a["user_ids"].astype(object)), catalog.items, a["history_indptr"],
        a["history_item"], a["history_ts"], a["history_event"], a["history_value"],
    )  # fmt: skip
    collab = ImplicitModel.from_arrays(manifest.collaborative_params, a)
    shop = ShopStats.from_arrays(a) if "shop_meta" in a else None
    seen = None
    if "seen_indptr" in a:
        ind = a["seen_indices"]
        seen = sp.csr_matrix(
            (np.ones(len(ind), np.int8), ind, a["seen_indptr"]),
            shape=(len(history.users), len(catalog.items)),
        )
    ctx = FeatureContext(history, catalog, collab, Cooccurrence.from_arrays(a), shop, seen)
    return FittedModel(
        config=config,
        policy=policy,
        purpose=manifest.purpose,
        ctx=ctx,
        feature_names=tuple(manifest.features),
        ranker=AdditiveModel.from_arrays(manifest.features, a),
        key_id=manifest.key_id,
        minimization=manifest.minimization,
        training=manifest.training,
    )


# --- saving --------------------------------------------------------------------------------------
def _manifest_body(model: FittedModel, signer: Pseudonymizer) -> dict[str, Any]:
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "versions": _versions(),
        "purpose": model.purpose,
        "config": model.config.model_dump(mode="json"),
        "policy": model.policy.model_dump(mode="json"),
        "features": list(model.feature_names),
        "collaborative_params": model.ctx.collab.get_params(),
        "training": model.training,
        "pseudonymized": model.key_id is not None,
        "key_id": model.key_id,
        "signing_key_id": signer.key_id,
        "data_cutoff": str(np.datetime64(model.cutoff, "s")),
        "minimization": model.minimization,
    }


def _check_target(path: Path) -> None:
    if path.is_symlink() or (path.exists() and not path.is_dir()):
        raise ArtifactError(f"{path}: exists and is not a directory; refusing to write a model")
    if path.is_dir() and any(path.iterdir()):
        ours = (POINTER, VERSIONS, MANIFEST, LOCK)
        if not any((path / n).exists() for n in ours):
            raise ArtifactError(
                f"{path}: not empty and not a recsys model directory; refusing to write into it"
            )


def _current(path: Path) -> str | None:
    """The published version's name, when the pointer is intact."""
    with contextlib.suppress(ArtifactError):
        raw = _read_pointer(path)
        if raw is not None:
            return _parse_pointer(path, raw)[0]
    return None


def _legacy_siblings(path: Path) -> list[Path]:
    """What the directory-swap saves of format 1 left beside ``path`` when killed."""
    out = []
    for p in path.parent.glob(f".{glob.escape(path.name)}.*"):
        if (
            p.is_dir()
            and not p.is_symlink()
            and {q.name for q in p.iterdir()} <= {ARRAYS, MANIFEST}
        ):
            out.append(p)
    return out


def clean(path: Path, keep: str | None) -> list[Path]:
    """Delete what is not the published version ``keep``: killed saves' temporary directories
    and pointer files, older versions, and (once a pointer exists) a plain layout's files."""
    versions = path / VERSIONS
    doomed = [p for p in versions.iterdir() if p.name != keep] if versions.is_dir() else []
    doomed += atomic.leftovers(path, POINTER) + _legacy_siblings(path)
    if keep is not None:
        doomed += [path / n for n in (ARRAYS, MANIFEST) if (path / n).is_file()]
    for p in doomed:
        atomic.remove(p)
    return doomed


def _next_name(versions: Path, current: str | None) -> str:
    taken = [int(p.name) for p in versions.iterdir() if _VERSION_RE.fullmatch(p.name)]
    if current is not None:
        taken.append(int(current))
    return f"{max(taken, default=0) + 1:06d}"


_ANY: Any = object()


def save_model(
    model: FittedModel, path: Path, *, signer: Pseudonymizer | None, expect: Any = _ANY
) -> Path:
    """Publish ``model`` as a new version of the model directory ``path`` (see the module
    docstring); ``signer`` is the shop's key, which authenticates the manifest. ``expect``: the
    version pointer the model's changes were made to (:func:`pointer_of`); when another save
    has published since, nothing is saved and :class:`StaleModelError` says so (a served
    model's events or erasure never roll back a newer training)."""
    if model.key_id is None and model.purpose != "evaluation":
        raise ArtifactError(
            "refusing to save raw user ids: fit with a Pseudonymizer (RECSYS_PSEUDONYM_KEY) so the "
            "artifact holds pseudonyms only"
        )
    if signer is None:
        raise ArtifactError(
            "refusing to save without the shop's key: it authenticates the manifest (fit or load "
            "with a Pseudonymizer)"
        )
    if model.key_id is not None and model.key_id != signer.key_id:
        raise KeyMismatchError(
            "the key given to save differs from the one the model was trained with"
        )
    path = Path(path)
    _check_target(path)
    arrays = model_arrays(model)
    body = _manifest_body(model, signer)
    index = model.ctx.collab.index_
    body["data_fingerprint"] = data_fingerprint(arrays)
    body["policy_hash"] = policy_hash(model.policy)
    body["index"] = (
        None
        if index is None
        else {"kind": "hnsw", "dim": index.dim, "items": len(index), "ef": index.ef}
    )
    atomic.make_dir(path)
    with atomic.exclusive_lock(path / LOCK):
        if expect is not _ANY and _read_pointer(path) != expect:
            raise StaleModelError(
                f"{path}: version {_current(path)} was published after the one these changes "
                "were made to; nothing saved (apply them to the newest version)"
            )
        current = _current(path)
        versions = path / VERSIONS
        atomic.make_dir(versions)
        clean(path, current)
        tmp = atomic.make_temp_dir(versions, ".tmp-")
        try:
            # uncompressed on purpose: what is stored can be searched byte for byte (erasure)
            atomic.write_file(tmp / ARRAYS, lambda p: np.savez(p, **arrays))
            files = {ARRAYS: sha256(tmp / ARRAYS)}
            if index is not None:
                atomic.write_file(tmp / INDEX, index.save)
                files[INDEX] = sha256(tmp / INDEX)
            text = sign_manifest({**body, "files": files}, signer)
            atomic.write_file(tmp / MANIFEST, lambda p: p.write_bytes(text))
            atomic.fsync(tmp)
            name = _next_name(versions, current)
            atomic.replace(tmp, versions / name)
        except BaseException:
            with contextlib.suppress(OSError):
                atomic.remove(tmp)
            raise
        atomic.fsync(versions)
        pointer = f"{name} {hashlib.sha256(text).hexdigest()}\n".encode()
        atomic.write_bytes_atomic(path / POINTER, pointer)
        clean(path, name)
    return path
