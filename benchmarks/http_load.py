"""HTTP load test (issue #13): ``recsys serve`` on loopback under locust (headless), with a hot
swap half-way through; throughput, p50/p99 and errors from locust's own statistics.

A model of the synthetic shop is trained and saved, the server starts with ``--workers`` worker
processes (watching ``CURRENT`` every 0.5 s), locust runs ``benchmarks/locustfile.py`` for
``--seconds`` with ``--clients`` concurrent clients (GET page views of known customers, and POSTs
of new visitors with 3 recent events), and after half the time a new model version is published
into the served directory. Bounded in time; the server is stopped at the end.

    OPENBLAS_NUM_THREADS=1 .venv/bin/python benchmarks/http_load.py --seconds 30 --workers 2
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse
import csv
import json
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
KEY = "bench-key-0123456789abcdef"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--users", type=int, default=2_000)
    ap.add_argument("--items", type=int, default=600)
    ap.add_argument("--seconds", type=int, default=30)
    ap.add_argument("--clients", type=int, default=16)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="recsys-load-"))
    os.environ["RECSYS_STATE_DIR"] = str(tmp / "state")
    os.environ["RECSYS_PSEUDONYM_KEY"] = KEY

    from recsys.data.synthetic import END, ShopSpec, make_shop
    from recsys.privacy import Pseudonymizer
    from recsys.recommender import Recommender

    ds = make_shop(ShopSpec(n_users=args.users, n_items=args.items, seed=7))
    rec = Recommender(pseudonymizer=Pseudonymizer(KEY.encode())).fit(ds, now=END)
    model = rec.save(tmp / "model")
    port = free_port()
    env = {
        **os.environ,
        "LOAD_USERS": ",".join(ds.users["user_id"].astype(str).head(500)),
        "LOAD_ITEMS": ",".join(ds.items["item_id"].astype(str).head(300)),
        "LOAD_NOW": str(int(END.timestamp())),
    }
    server = subprocess.Popen(
        [sys.executable, "-m", "recsys.cli.main", "serve", "--model", str(model), "--port",
         str(port), "--workers", str(args.workers), "--watch", "0.5", "--log-level", "warning"],
        env=env,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            try:
                if httpx.get(f"{base}/ready", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        else:
            raise SystemExit("server did not become ready")
        load1 = os.getloadavg()
        swap_at = {}

        def swap() -> None:
            time.sleep(args.seconds / 2)
            swap_at["t"] = time.time()
            rec.save(model)  # version 2, published while the load runs

        threading.Thread(target=swap, daemon=True).start()
        prefix = tmp / "locust"
        subprocess.run(
            [shutil.which("locust") or str(Path(sys.executable).with_name("locust")),
             "-f", str(ROOT / "benchmarks" / "locustfile.py"), "--headless", "-u",
             str(args.clients), "-r", str(args.clients), "-t", f"{args.seconds}s", "--host",
             base, "--csv", str(prefix), "--only-summary", "--loglevel", "WARNING"],
            env=env, check=False, timeout=args.seconds + 120,
        )  # fmt: skip
        after = {httpx.get(f"{base}/health").headers["x-model-version"] for _ in range(8)}
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
    with (tmp / "locust_stats.csv").open() as f:
        rows = {r["Name"]: r for r in csv.DictReader(f)}
    agg = rows["Aggregated"]
    result = {
        "command": "OPENBLAS_NUM_THREADS=1 .venv/bin/python benchmarks/http_load.py "
        + " ".join(sys.argv[1:]),
        "shop": {"users": args.users, "items": args.items},
        "workers": args.workers,
        "clients": args.clients,
        "seconds": args.seconds,
        "loadavg_at_start": load1,
        "loadavg_at_end": os.getloadavg(),
        "requests": int(agg["Request Count"]),
        "failures": int(agg["Failure Count"]),
        "throughput_rps": float(agg["Requests/s"]),
        "p50_ms": float(agg["50%"]),
        "p99_ms": float(agg["99%"]),
        "per_endpoint": {
            n: {
                "requests": int(r["Request Count"]),
                "p50_ms": float(r["50%"]),
                "p99_ms": float(r["99%"]),
            }
            for n, r in rows.items()
            if n != "Aggregated"
        },
        "hot_swap_published": "t" in swap_at,
        "versions_after": sorted(after),
    }
    print(json.dumps(result, indent=1))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "http_load.json").write_text(json.dumps(result, indent=1))
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
