"""What each CLI command does; parsing lives in :mod:`recsys.cli.main`."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pandas as pd

from recsys.cli.data_args import load_from_args
from recsys.data import Dataset, load_dir
from recsys.data.synthetic import ShopSpec, make_shop, write_shop


def data_synth(args: argparse.Namespace) -> int:
    spec = ShopSpec(n_users=args.users, n_items=args.items, seed=args.seed)
    counts = write_shop(spec, args.out, fmt="csv" if args.csv else "parquet")
    for name, n in counts.items():
        print(f"{name:<13} {n:>12,} rows")
    print(f"written to {args.out}")
    return 0


def data_validate(args: argparse.Namespace) -> int:
    datasets: list[Dataset] = []
    for path in args.paths:
        datasets.append(
            load_dir(
                path, format=args.format, strict=args.strict, assume_consent=args.assume_consent
            )
        )
    if args.data or args.interactions:
        datasets.append(load_from_args(args))
    if not datasets:
        print("recsys data validate: give a data directory or --interactions/--items files")
        return 2
    quarantined = []
    for ds in datasets:
        if args.json:
            print(json.dumps(ds.report.to_dict(), indent=2))
        else:
            print(ds.report.to_text())
            print(f"=> {ds.summary()}")
        quarantined.append(ds.report.quarantined())
    if args.quarantine:
        pd.concat(quarantined).to_csv(args.quarantine, index=False)
        print(f"rejected rows written to {args.quarantine}")
    return 0


def demo(args: argparse.Namespace) -> int:
    from recsys.candidates import PopularityCandidates

    spec = ShopSpec(n_users=args.users, n_items=args.items, seed=args.seed)
    ds = make_shop(spec)
    print(f"synthetic shop (seed {spec.seed}): {ds.summary()}")
    pop = PopularityCandidates().fit(ds.interactions, ds.items)
    titles = ds.items.set_index("item_id")["title"]
    rows = []
    bought = ds.interactions[ds.interactions["event"] == "purchase"].groupby("user_id")["item_id"]
    bought_sets = {u: set(v) for u, v in bought}
    for user in ds.users["user_id"]:
        cands = pop.candidates(args.k, exclude=bought_sets.get(user, set()))
        for rank, (item, score) in enumerate(zip(cands.ids, cands.scores, strict=True), 1):
            rows.append((user, item, rank, score, pop.reason(item).text))
    out = pd.DataFrame(rows, columns=["user_id", "item_id", "rank", "score", "reason"])
    for user in ds.users["user_id"][: args.show]:
        print(f"\nuser {user}")
        for r in out[out["user_id"] == user].itertuples():
            print(f"  {r.rank}. {titles[r.item_id]} ({r.item_id})\n     {r.reason}")
    Path(args.out).mkdir(parents=True, exist_ok=True)
    path = Path(args.out) / "recommendations.csv"
    out.to_csv(path, index=False)
    print(
        f"\n{len(out):,} recommendations for {out['user_id'].nunique():,} users written to {path}"
    )
    return 0
