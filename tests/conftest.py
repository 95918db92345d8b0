from __future__ import annotations

from pathlib import Path

import pytest

from recsys.data.synthetic import ShopSpec, make_shop
from recsys.privacy.consent import SQLiteConsentStore

ML100K = Path(__file__).resolve().parents[1].parent / "shared" / "datasets" / "ml-100k"


@pytest.fixture(scope="session", autouse=True)
def state_dir(tmp_path_factory) -> Path:
    """Every test session keeps its key and consent records in a directory of its own."""
    import os

    path = tmp_path_factory.mktemp("state")
    os.environ["RECSYS_STATE_DIR"] = str(path)
    return path


@pytest.fixture(scope="session")
def ml100k_path() -> Path:
    if not (ML100K / "u.data").exists():
        pytest.skip(f"MovieLens-100K not found at {ML100K}")
    return ML100K


@pytest.fixture(scope="session")
def small_shop():
    """A small synthetic shop shared by tests (read-only)."""
    return make_shop(ShopSpec(n_users=400, n_items=150, seed=3))


KEY = b"test-key-0123456789abcdef"


@pytest.fixture(scope="session")
def pseudonymizer():
    from recsys.privacy import Pseudonymizer

    return Pseudonymizer(KEY)


@pytest.fixture(scope="session")
def fitted(small_shop, pseudonymizer, tmp_path_factory):
    """A recommender fitted on the small shop (read-only: tests must not mutate it)."""
    from recsys.data.synthetic import END
    from recsys.privacy.consent import SQLiteConsentStore
    from recsys.recommender import Recommender

    store = SQLiteConsentStore(tmp_path_factory.mktemp("fitted") / "state.sqlite")
    return Recommender(pseudonymizer=pseudonymizer, consent=store).fit(small_shop, now=END)


@pytest.fixture(scope="session")
def served_dir(small_shop, pseudonymizer, tmp_path_factory) -> tuple[Path, Path]:
    """(model directory, consent database) of a model trained with ``collaborative.ann =
    "hnsw"``; tests copy it before changing it."""
    from recsys.config import RecommenderConfig
    from recsys.data.synthetic import END
    from recsys.privacy.consent import SQLiteConsentStore
    from recsys.recommender import Recommender

    root = tmp_path_factory.mktemp("served")
    db = root / "state.sqlite"
    cfg = RecommenderConfig.model_validate({"collaborative": {"ann": "hnsw"}})
    rec = Recommender(cfg, pseudonymizer=pseudonymizer, consent=SQLiteConsentStore(db))
    rec.fit(small_shop, now=END).save(root / "model")
    return root / "model", db


@pytest.fixture
def model_copy(served_dir, tmp_path) -> tuple[Path, SQLiteConsentStore]:
    """A private copy of the served model directory and of its consent database."""
    import shutil
    import sqlite3

    model, db = served_dir
    shutil.copytree(model, tmp_path / "model")
    src, dst = sqlite3.connect(db), sqlite3.connect(tmp_path / "state.sqlite")
    with dst:
        src.backup(dst)  # WAL mode: a file copy could miss the newest records
    src.close()
    dst.close()
    return tmp_path / "model", SQLiteConsentStore(tmp_path / "state.sqlite")
