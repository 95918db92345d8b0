"""Which ANN library serves recsys's collaborative retrieval: hnswlib or faiss-cpu (issue #13).

Both build an HNSW graph over the same item factors (from an ALS fit on the synthetic shop, so
the norms and the spectrum are a real model's) for maximum inner product search, one thread:

- inner-product space directly (hnswlib ``space="ip"``, faiss ``METRIC_INNER_PRODUCT``);
- L2 space over the augmented vectors ``[y, sqrt(M^2 - |y|^2)]`` (queries ``[x, 0]``), the
  standard reduction of maximum inner product search to nearest neighbours.

Reported: build seconds, single-query median microseconds and recall@200 against exact top-200
(numpy), at the same ``M`` / ``ef_construction`` / ``ef_search``.

    OPENBLAS_NUM_THREADS=1 .venv/bin/python benchmarks/ann_choice.py --items 100000 --users 20000
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse
import time

import numpy as np


def factors(n_users: int, n_items: int) -> tuple[np.ndarray, np.ndarray]:
    """ALS factors of the synthetic shop (users, items)."""
    from recsys.candidates.implicit_adapter import ImplicitModel
    from recsys.data.synthetic import END, ShopSpec, make_shop
    from recsys.features.history import Catalog, History, Vocabulary
    from recsys.privacy.minimize import minimize
    from recsys.privacy.policy import Policy

    ds = make_shop(ShopSpec(n_users=n_users, n_items=n_items, seed=1))
    md = minimize(ds, Policy.default(), "recommendations", now=END)
    cat = Catalog.from_frame(md.items)
    users = Vocabulary(np.sort(md.interactions["user_id"].unique()).astype(object))
    h = History.from_frame(md.interactions, users, cat.items)
    m = ImplicitModel().fit(h.matrix())
    return m.user_factors_[np.diff(h.matrix().indptr) > 0], m.item_factors_


def augment(y: np.ndarray) -> np.ndarray:
    n2 = (y.astype(np.float64) ** 2).sum(1)
    extra = np.sqrt(np.maximum(n2.max() - n2, 0.0))
    return np.hstack([y, extra[:, None]]).astype(np.float32)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--items", type=int, default=100_000)
    ap.add_argument("--users", type=int, default=20_000)
    ap.add_argument("--queries", type=int, default=300)
    ap.add_argument("--m", type=int, default=16)
    ap.add_argument("--ef-construction", type=int, default=200)
    ap.add_argument("--ef", type=int, default=512)
    a = ap.parse_args()
    print(f"load average: {os.getloadavg()}")
    U, Y = factors(a.users, a.items)
    rng = np.random.default_rng(0)
    Q = U[rng.choice(len(U), a.queries, replace=False)]
    exact = [set(np.argpartition(-(Y @ q), 200)[:200].tolist()) for q in Q]
    live = np.flatnonzero(np.linalg.norm(Y, axis=1) > 0)  # items never chosen have zero factors
    print(f"{len(live)} of {len(Y)} items have non-zero factors (only those are indexed)")
    Ya = augment(Y[live])
    Qa = np.hstack([Q, np.zeros((len(Q), 1), np.float32)])
    rows = []

    def timed(name: str, build_s: float, search) -> None:
        times, rec = [], []
        for q, qa, ex in zip(Q, Qa, exact, strict=True):
            t = time.perf_counter_ns()
            found = search(q, qa)
            times.append(time.perf_counter_ns() - t)
            rec.append(len(ex & set(found.tolist())) / 200)
        rows.append((name, build_s, np.median(times) / 1e3, np.mean(rec)))

    import faiss
    import hnswlib

    faiss.omp_set_num_threads(1)
    for space, data in (("ip", Y[live]), ("l2-augmented", Ya)):
        t = time.perf_counter()
        h = hnswlib.Index(space="ip" if space == "ip" else "l2", dim=data.shape[1])
        h.init_index(
            max_elements=len(data), M=a.m, ef_construction=a.ef_construction, random_seed=0
        )
        h.set_num_threads(1)
        h.add_items(np.ascontiguousarray(data), live)
        h.set_ef(a.ef)
        b = time.perf_counter() - t
        qcol = 0 if space == "ip" else 1
        timed(f"hnswlib {space}", b,
              lambda q, qa, h=h, c=qcol: h.knn_query((qa if c else q)[None], k=200)[0][0])  # fmt: skip
        t = time.perf_counter()
        metric = faiss.METRIC_INNER_PRODUCT if space == "ip" else faiss.METRIC_L2
        f = faiss.IndexHNSWFlat(data.shape[1], a.m, metric)
        f.hnsw.efConstruction = a.ef_construction
        f.add(np.ascontiguousarray(data))
        f.hnsw.efSearch = a.ef
        b = time.perf_counter() - t
        timed(f"faiss-cpu {space}", b,
              lambda q, qa, f=f, c=qcol: live[f.search((qa if c else q)[None], 200)[1][0]])  # fmt: skip

    times = []
    for q in Q:
        t = time.perf_counter_ns()
        np.argpartition(-(Y @ q), 200)[:200]
        times.append(time.perf_counter_ns() - t)
    rows.append(("exact (numpy)", 0.0, np.median(times) / 1e3, 1.0))

    print(f"{len(Y)} items x {Y.shape[1]} factors, M={a.m}, ef_construction={a.ef_construction}")
    print(f"ef_search={a.ef}, {len(Q)} queries, one thread\n")
    print("| library | build s | query p50 us | recall@200 |")
    print("| --- | ---: | ---: | ---: |")
    for name, b, q, r in rows:
        print(f"| {name} | {b:.1f} | {q:.0f} | {r:.3f} |")


if __name__ == "__main__":
    main()
