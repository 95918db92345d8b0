"""``recsys tune``: search the pipeline's settings on the shop's own data within a time budget."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from recsys.cli.data_args import add_data_args, load_from_args


def add_parser(sub: Any) -> None:
    """Register ``recsys tune`` on the top-level subparsers."""
    t = sub.add_parser(
        "tune",
        help="search the pipeline's settings on a temporal validation split (Optuna)",
        description="Holds out each customer's newest 20 percent of events and fits the pipeline "
        "on the rest with settings Optuna proposes, in three steps: the collaborative model on "
        "its own top-10, the ranker and candidate counts inside the whole pipeline, then the "
        "re-ranking under a minimum long-tail exposure. Writes a pipeline config for "
        "`recsys train --config` and a short report of what it tried.",
        epilog="exit codes: 0 done, 2 bad input (data, config, budget, output path)",
    )
    add_data_args(t)
    t.add_argument("--out", required=True, metavar="TOML", help="the chosen pipeline config")
    t.add_argument("--report", metavar="FILE", help="Markdown report (default: OUT with .md)")
    t.add_argument("--budget", default="10m", help="time budget: 90s, 10m, 1.5h (default 10m)")
    t.add_argument("--config", metavar="TOML", help="base pipeline config (default: the defaults)")
    t.add_argument("--policy", metavar="TOML", help="purpose policy (default: the shipped one)")
    t.add_argument(
        "--min-long-tail", type=float, default=0.15,
        help="re-ranking must give the long tail at least this share of top-10 exposure, plus "
        "a margin of 0.02 on validation (default 0.15; 0 to 1)",
    )  # fmt: skip
    t.add_argument("--keep-rerank", action="store_true", help="leave the re-ranking as configured")
    t.add_argument("--max-trials", type=int, help="at most this many trials in each step")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--no-progress", action="store_true", help="no progress bar")
    t.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from recsys import atomic
    from recsys.cli.commands import now_hint, read_toml_model
    from recsys.config import RecommenderConfig
    from recsys.errors import ConfigError
    from recsys.evaluation.tuning import parse_budget, report, tune_pipeline
    from recsys.privacy.policy import Policy

    try:
        budget = parse_budget(args.budget)
    except ValueError as exc:
        raise ConfigError(f"--budget: {exc}".replace("--budget: budget", "--budget")) from None
    if not 0 <= args.min_long_tail < 1:
        raise ConfigError(f"--min-long-tail {args.min_long_tail}: expected a share in [0, 1)")
    if args.max_trials is not None and args.max_trials < 1:
        raise ConfigError(f"--max-trials {args.max_trials}: expected at least 1")
    out = Path(args.out)
    rep = Path(args.report) if args.report else out.with_suffix(".md")
    for path in (out, rep):
        if not path.parent.is_dir():
            raise ConfigError(f"{path}: no directory {path.parent} to write into")
    base = read_toml_model(RecommenderConfig, args.config)
    policy = read_toml_model(Policy, args.policy)
    ds = load_from_args(args)
    print(f"data: {ds.summary()}; budget {budget:.0f}s")
    result = tune_pipeline(
        ds.interactions, ds.items, ds.users, base, policy, budget_s=budget,
        min_long_tail=None if args.keep_rerank else args.min_long_tail,
        max_trials=args.max_trials, seed=args.seed,
        progress=not args.no_progress and sys.stderr.isatty(),
    )  # fmt: skip
    atomic.write_bytes_atomic(out, result.config.to_toml().encode())
    atomic.write_bytes_atomic(rep, report(result).encode())
    for m in result.phases:
        n = f"{len(m.trials)} trial{'' if len(m.trials) == 1 else 's'}"
        if m.name == "rerank":
            print(f"{m.name}: {n}, NDCG@10 {m.ndcg:.4f}, long tail {(m.long_tail or 0):.1%}")
        else:
            print(f"{m.name}: {n}, validation NDCG@10 {m.base_ndcg or 0:.4f} (base) -> "
                  f"{m.ndcg:.4f}")  # fmt: skip
    for w in result.warnings():
        print(f"note: {w}")
    print(f"used {result.seconds:.0f}s; config written to {out}, report to {rep}")
    print(f"next: recsys train --config {out} ...{now_hint(ds, None, flag_only=True)}")
    return 0
