"""Request latency with and without the audit trail, in the same run (issue #17).

A page view is one ``Recommender.recommend`` call (k = 10, re-ranked, reasons rendered). The
same customers are served in alternating rounds with the SQLite audit trail attached and
detached, so both settings see the same machine load; the median per-request time of each and
their ratio are reported, plus the same for blocks of 128 (``recommend_many``).

    OPENBLAS_NUM_THREADS=1 .venv/bin/python benchmarks/audit.py
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

from recsys.audit import SQLiteAuditTrail, attach
from recsys.data.synthetic import END, ShopSpec, make_shop
from recsys.privacy import Pseudonymizer
from recsys.privacy.consent import SQLiteConsentStore
from recsys.recommender import Recommender

ROUNDS = 6
PER_ROUND = 150


def main() -> None:
    tmp = Path(tempfile.mkdtemp())
    ds = make_shop(ShopSpec(n_users=2000, n_items=600, seed=42))
    rec = Recommender(
        pseudonymizer=Pseudonymizer(b"benchmark-key-0123456789"),
        consent=SQLiteConsentStore(tmp / "state.sqlite"),
    ).fit(ds, now=END)
    trail = SQLiteAuditTrail(tmp / "state.sqlite")
    users = ds.users.loc[ds.users["consent_personalization"], "user_id"].tolist()
    for u in users[:30]:  # warm-up
        rec.recommend(u, 10)
    page: dict[bool, list[float]] = {False: [], True: []}
    block: dict[bool, list[float]] = {False: [], True: []}
    for r in range(ROUNDS):
        chunk = users[(r * PER_ROUND) % len(users) :][:PER_ROUND]
        for audited in (r % 2 == 0, r % 2 == 1):
            attach(rec, sink=trail if audited else None)
            for u in chunk:
                t0 = time.perf_counter()
                rec.recommend(u, 10)
                page[audited].append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            rec.recommend_many(chunk[:128], 10)
            block[audited].append((time.perf_counter() - t0) / 128)
    attach(rec)
    rows = []
    for name, d in (("page view (1 user)", page), ("block of 128 users", block)):
        off, on = statistics.median(d[False]), statistics.median(d[True])
        rows.append(f"| {name} | {off * 1e3:.2f} ms | {on * 1e3:.2f} ms | {on / off:.3f} |")
    table = "\n".join(
        ["| request | without audit trail | with audit trail | ratio |",
         "| --- | ---: | ---: | ---: |", *rows]
    )  # fmt: skip
    text = (
        f"Synthetic shop (2,000 customers, 600 items, seed 42), k = 10; median per-user latency "
        f"over {ROUNDS} alternating rounds of {PER_ROUND} page views (and one block of 128 per "
        f"round); {trail.count():,} lists recorded.\n\n{table}\n"
    )
    print(text)
    out = Path(__file__).parent / "results" / "audit.md"
    out.parent.mkdir(exist_ok=True)
    out.write_text(text)


if __name__ == "__main__":
    main()
