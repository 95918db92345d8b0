"""``recsys offers``: the weekly personalized e-mail offers of one campaign (recsys.batch)."""

from __future__ import annotations

import argparse
import hashlib
from pathlib import Path
from typing import Any

from recsys.cli.data_args import add_key_arg, pseudonymizer_from_args, state_from_args


def add_parser(sub: Any) -> None:
    """Register ``recsys offers`` on the top-level subparsers (``argparse`` sub-commands)."""
    o = sub.add_parser(
        "offers",
        help="personalized e-mail offers for every eligible customer (resumable, local or Dask)",
        epilog="exit codes: 0 done, 2 bad input (campaign file, model, output name). Killed or "
        "interrupted, rerun the same command: finished chunks are kept.",
    )
    add_key_arg(o)
    o.add_argument("--model", required=True, metavar="DIR")
    o.add_argument("--campaign", required=True, metavar="TOML", help="the campaign file")
    o.add_argument("--out", required=True, metavar="FILE", help=".parquet, .jsonl or .csv")
    o.add_argument(
        "--customers", metavar="FILE",
        help="CSV or Parquet with a user_id (shop ids) or pseudonym column: the audience "
        "(default: every customer with a consent record or a history)",
    )  # fmt: skip
    o.add_argument("--engine", choices=["local", "dask"], default="local")
    o.add_argument(
        "--scheduler", metavar="ADDRESS", help="join this Dask scheduler (default: a local cluster)"
    )
    o.add_argument("--workers", type=int, default=2, help="workers of the local Dask cluster")
    o.add_argument("--chunk-size", type=int, default=1000, help="customers per checkpoint")
    o.add_argument("--restart", action="store_true", help="discard a killed run's checkpoints")
    o.add_argument(
        "--no-record", action="store_true", help="do not record the send in the send log"
    )
    o.add_argument("--preview-samples", type=int, default=5, help="sample e-mails (0: none)")
    o.add_argument("--no-progress", action="store_true", help="no progress bar")
    o.set_defaults(func=run)


def _audience(path: str, pseudonymizer) -> list[str]:
    from recsys.batch.offers import read_suppression

    return sorted(read_suppression(Path(path), pseudonymizer))  # the same id file format


def run(args: argparse.Namespace) -> int:
    from recsys.batch.campaign import Campaign
    from recsys.batch.engines import DaskEngine, LocalEngine
    from recsys.batch.offers import OffersJob
    from recsys.batch.sendlog import SendLog
    from recsys.model.artifacts import open_model, read_manifest
    from recsys.privacy.consent import SQLiteConsentStore

    campaign = Campaign.from_file(args.campaign)  # a bad file fails before the model loads
    ps = pseudonymizer_from_args(args)
    model, ps_model = open_model(Path(args.model), ps)
    manifest = read_manifest(Path(args.model), ps).model_dump_json()
    state = state_from_args(args)
    engine = (
        DaskEngine(args.scheduler, workers=args.workers) if args.engine == "dask" else LocalEngine()
    )
    job = OffersJob(
        model, campaign, Path(args.out), SQLiteConsentStore(state.database),
        SendLog(state.database), pseudonymizer=ps_model,
        model_id=hashlib.sha256(manifest.encode()).hexdigest(),
        audience=_audience(args.customers, ps_model) if args.customers else None,
        engine=engine, chunk_size=args.chunk_size, record=not args.no_record,
        preview_samples=args.preview_samples, progress=not args.no_progress,
    )  # fmt: skip
    if args.restart:
        job.restart()
    report = job.run()
    print(report.to_text())
    return 0
