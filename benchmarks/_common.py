"""Helpers every benchmark shares: peak memory, machine and checkout facts, and the bare
``implicit`` ALS peer set up with recsys's own collaborative settings."""

from __future__ import annotations

import atexit
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import scipy
import scipy.sparse as sp
from threadpoolctl import threadpool_info, threadpool_limits

if "RECSYS_STATE_DIR" not in os.environ:
    # a benchmark's shops are not the user's: a Recommender without a consent store of its own
    # keeps consent in the state directory, so every run gets a fresh one, removed at exit (its
    # phases in subprocesses inherit it)
    _state = tempfile.mkdtemp(prefix="recsys-bench-")
    os.environ["RECSYS_STATE_DIR"] = _state
    atexit.register(shutil.rmtree, _state, True)

ROOT = Path(__file__).resolve().parents[1]
PSEUDONYM_KEY = b"bench-key-0123456789abcdef"
EVENT_WEIGHTS = {"view": 1.0, "cart": 2.0, "purchase": 4.0, "rating": 1.0}


# --- measurement helpers ----------------------------------------------------------------------
def peak_rss_mib() -> float:
    """Process-wide peak resident set size so far (ru_maxrss: KiB on Linux, bytes on macOS)."""
    r = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return r / 2**20 if sys.platform == "darwin" else r / 1024


def percentile_ms(seconds: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(seconds), q) * 1000.0)


def git_facts(path: Path) -> dict[str, Any]:
    """Commit and cleanliness of the checkout that holds the measured ``recsys`` package."""

    def run(*args: str) -> str | None:
        try:
            out = subprocess.run(
                ["git", "-C", str(path), *args], capture_output=True, text=True, timeout=30
            )
        except (OSError, subprocess.SubprocessError):
            return None
        return out.stdout.strip() if out.returncode == 0 else None

    status = run("status", "--porcelain", "--", "recsys")
    return {
        "commit": run("rev-parse", "HEAD"),
        "recsys_package_modified": None if status is None else bool(status),
    }


def machine_facts() -> dict[str, Any]:
    import implicit
    import sklearn

    try:
        affinity = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        affinity = None
    with threadpool_limits(1):
        pools_limited = threadpool_info()
    return {
        "platform": platform.platform(),
        "machine": platform.machine(),
        "processor": platform.processor(),
        "python": platform.python_version(),
        "cpu_count": os.cpu_count(),
        "cpus_available": affinity,
        "loadavg_at_start": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        "numpy": np.__version__,
        "scipy": scipy.__version__,
        "pandas": pd.__version__,
        "scikit_learn": sklearn.__version__,
        "implicit": implicit.__version__,
        "OPENBLAS_NUM_THREADS": os.environ.get("OPENBLAS_NUM_THREADS"),
        "threadpools": threadpool_info(),
        "threadpools_during_benchmark": pools_limited,
    }


# --- the peer: bare implicit -------------------------------------------------------------------
def als_settings() -> dict[str, Any]:
    """The collaborative model's settings, read from recsys's ``CollaborativeConfig`` defaults."""
    from recsys.candidates.implicit_adapter import CollaborativeConfig

    cfg = CollaborativeConfig()
    algorithm = getattr(cfg, "algorithm", "als")
    if algorithm != "als":
        raise SystemExit(f"recsys's default collaborative model is {algorithm!r}, not ALS")
    # ``None`` means "the algorithm's default", which for ALS is 10 and 15 in recsys
    reg = cfg.regularization if cfg.regularization is not None else 10.0
    iters = cfg.iterations if cfg.iterations is not None else 15
    return {
        "factors": int(cfg.factors),
        "regularization": float(reg),
        "alpha": float(cfg.alpha),
        "iterations": int(iters),
        "random_state": int(getattr(cfg, "random_state", 0)),
        "num_threads": 1,
    }


def fit_peer(user_items):
    """Bare ``implicit`` ALS with recsys's settings fitted on ``user_items``: the model, its
    settings and the fit's seconds (the peer of the speed benchmarks)."""
    import time

    from implicit.cpu.als import AlternatingLeastSquares

    settings = als_settings()
    model = AlternatingLeastSquares(**settings)
    t = time.perf_counter()
    model.fit(user_items, show_progress=False)
    return model, settings, time.perf_counter() - t


def confidence_matrix(ds, kind: str) -> tuple[sp.csr_matrix, dict[str, int]]:
    """Consenting users x all items, from the raw interactions (no other minimization)."""
    users = ds.users
    consenting = users.loc[users["consent_personalization"].astype(bool), "user_id"].astype(str)
    inter = ds.interactions
    inter = inter[inter["user_id"].astype(str).isin(set(consenting))]
    user_ids = np.sort(inter["user_id"].astype(str).unique())
    item_ids = ds.items["item_id"].astype(str).to_numpy()
    rows = pd.Index(user_ids).get_indexer(inter["user_id"].astype(str))
    cols = pd.Index(item_ids).get_indexer(inter["item_id"].astype(str))
    events = inter["event"].astype(str)
    unknown = sorted(set(events.unique()) - set(EVENT_WEIGHTS))
    if unknown:
        raise SystemExit(f"unknown event types {unknown}")
    if (cols < 0).any():
        raise SystemExit("interactions name items missing from the items table")
    w = events.map(EVENT_WEIGHTS).to_numpy(dtype=np.float32)
    m = sp.csr_matrix((w, (rows, cols)), shape=(len(user_ids), len(item_ids)), dtype=np.float32)
    m.sum_duplicates()
    if kind == "binary":
        m.data[:] = 1.0
    m.sort_indices()
    return m, {"user_ids": user_ids, "interactions": len(inter)}


# --- the two data sets the defaults are measured on --------------------------------------------
def quality_datasets(movielens: str | Path) -> dict[str, Any]:
    """MovieLens-100K and the synthetic shop the defaults were chosen on (3,000 x 800, seed 42)."""
    from recsys.data import load_movielens
    from recsys.data.synthetic import ShopSpec, make_shop

    return {
        "ml-100k": load_movielens(movielens),
        "synthetic shop (3,000 x 800, seed 42)": make_shop(ShopSpec(3000, 800, seed=42)),
    }
