"""Model directories: plain arrays and JSON, never pickle, so loading can never execute code.

A model directory holds ``arrays.npz`` (read with ``allow_pickle=False``) and ``manifest.json``
(versions, configuration, feature names, and the SHA-256 of every file, checked on load). A save
is atomic: the new directory replaces the old in one rename, so a server hot-swapping models never
sees half a model.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from recsys import __version__
from recsys.candidates.implicit_adapter import ImplicitModel
from recsys.config import RecommenderConfig
from recsys.data.schema import CATEGORY_SEP
from recsys.errors import ArtifactError, ConfigError
from recsys.features.context import FeatureContext
from recsys.features.history import Catalog, History, Vocabulary
from recsys.features.stats import Cooccurrence
from recsys.model.fitted import FittedModel
from recsys.privacy.policy import Policy
from recsys.privacy.pseudonym import Pseudonymizer
from recsys.ranking.additive import AdditiveModel

FORMAT = "recsys-model"
FORMAT_VERSION = 1
ARRAYS = "arrays.npz"
MANIFEST = "manifest.json"


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
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
    if cat.brand is not None:
        arrays["item_brand"] = _text(cat.brand)
    if cat.price is not None:
        arrays["item_price"] = cat.price
    if cat.seller is not None:
        arrays["item_seller"] = _text(cat.seller)
    if cat.created is not None:
        arrays["item_created"] = cat.created.astype(float)
    return arrays


def save_model(model: FittedModel, path: Path) -> Path:
    if model.key_id is None and model.purpose != "evaluation":
        raise ArtifactError(
            "refusing to save raw user ids: fit with a Pseudonymizer (RECSYS_PSEUDONYM_KEY) so the "
            "artifact holds pseudonyms only"
        )
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    try:
        # uncompressed on purpose: what is stored can be searched byte for byte (erasure checks)
        np.savez(tmp / ARRAYS, **model_arrays(model))
        manifest: dict[str, Any] = {
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
            "data_cutoff": str(np.datetime64(model.cutoff, "s")),
            "minimization": model.minimization,
            "files": {ARRAYS: sha256(tmp / ARRAYS)},
        }
        (tmp / MANIFEST).write_text(
            json.dumps(manifest, indent=2, sort_keys=True, default=str) + "\n"
        )
        _replace_dir(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return path


def _replace_dir(new: Path, target: Path) -> None:
    if not target.exists():
        os.replace(new, target)
        return
    old = target.with_name(f".{target.name}.old")
    shutil.rmtree(old, ignore_errors=True)
    os.replace(target, old)
    os.replace(new, target)
    shutil.rmtree(old, ignore_errors=True)


def read_manifest(path: Path) -> dict[str, Any]:
    mf = Path(path) / MANIFEST
    if not mf.exists():
        raise ArtifactError(f"{path}: not a recsys model directory (no {MANIFEST})")
    try:
        manifest = json.loads(mf.read_text())
    except json.JSONDecodeError as exc:
        raise ArtifactError(f"{mf}: corrupt manifest: {exc}") from exc
    if manifest.get("format") != FORMAT or manifest.get("format_version") != FORMAT_VERSION:
        raise ArtifactError(
            f"{mf}: format {manifest.get('format')!r} v{manifest.get('format_version')}, "
            f"expected {FORMAT!r} v{FORMAT_VERSION}"
        )
    for name, digest in manifest["files"].items():
        f = Path(path) / name
        if not f.exists() or sha256(f) != digest:
            raise ArtifactError(f"{f}: missing or modified since it was saved (SHA-256 mismatch)")
    return manifest


def open_model(
    path: Path, pseudonymizer: Pseudonymizer | None = None
) -> tuple[FittedModel, Pseudonymizer | None]:
    """A checked model directory, and the key to use with it: ``pseudonymizer``, else the
    environment's key for a pseudonymized model (``None`` for a model with raw ids)."""
    manifest = read_manifest(path)
    ps = None
    if manifest["pseudonymized"]:
        ps = pseudonymizer or Pseudonymizer.from_env()
    return _load(path, manifest, ps), ps


def load_model(path: Path, *, pseudonymizer: Pseudonymizer | None = None) -> FittedModel:
    """A checked model directory as a :class:`FittedModel` (``pseudonymizer``, when given, must
    hold the key the model was trained with)."""
    return _load(path, read_manifest(path), pseudonymizer)


def _load(path: Path, manifest: dict[str, Any], pseudonymizer: Pseudonymizer | None) -> FittedModel:
    if (
        manifest["pseudonymized"]
        and pseudonymizer is not None
        and pseudonymizer.key_id != manifest["key_id"]
    ):
        raise ConfigError(
            f"{path}: the pseudonymization key differs from the one this model was trained with"
        )
    with np.load(Path(path) / ARRAYS, allow_pickle=False) as z:
        a = {k: z[k] for k in z.files}
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
    catalog = Catalog.from_frame(items)
    history = History(
        Vocabulary(a["user_ids"].astype(object)), catalog.items, a["history_indptr"],
        a["history_item"], a["history_ts"], a["history_event"], a["history_value"],
    )  # fmt: skip
    collab = ImplicitModel.from_arrays(manifest["collaborative_params"], a)
    ctx = FeatureContext(history, catalog, collab, Cooccurrence.from_arrays(a))
    return FittedModel(
        config=RecommenderConfig.model_validate(manifest["config"]),
        policy=Policy.model_validate(manifest["policy"]),
        purpose=manifest["purpose"],
        ctx=ctx,
        feature_names=tuple(manifest["features"]),
        ranker=AdditiveModel.from_arrays(manifest["features"], a),
        key_id=manifest["key_id"],
        minimization=manifest.get("minimization"),
        training=manifest.get("training", {}),
    )
