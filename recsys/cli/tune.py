"""``recsys tune``: search the pipeline's settings on the shop's own data within a time budget."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from recsys.cli.data_args import add_data_args, load_from_args


def add_parser(sub: Any) -> None:
    """Register ``recsys tune`` on the top-level subparsers."""
    t = sub.add_parser(
        "tune",
        help="search the pipeline's settings on a temporal validation split (Optuna)",
        description="Holds out each customer's newest 20%% of events, fits the pipeline on the "
        "rest with settings Optuna proposes and keeps those with the best NDCG@10, first for the "
        "model, then for the re-ranking under a minimum long-tail exposure. Writes a pipeline "
        "config for `recsys train --config` and a short report of what it tried.",
        epilog="exit codes: 0 done, 2 bad input (data, config, budget)",
    )
    add_data_args(t)
    t.add_argument("--out", required=True, metavar="TOML", help="the chosen pipeline config")
    t.add_argument("--report", metavar="FILE", help="Markdown report (default: OUT with .md)")
    t.add_argument("--budget", default="10m", help="time budget: 90s, 10m, 1.5h (default 10m)")
    t.add_argument("--config", metavar="TOML", help="base pipeline config (default: the defaults)")
    t.add_argument("--policy", metavar="TOML", help="purpose policy (default: the shipped one)")
    t.add_argument(
        "--min-long-tail", type=float, default=0.15,
        help="re-ranking must give the long tail at least this share of top-10 exposure "
        "(default 0.15; a negative value leaves re-ranking as configured)",
    )  # fmt: skip
    t.add_argument("--max-trials", type=int, help="stop after this many model trials")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--no-progress", action="store_true", help="no progress bar")
    t.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from recsys import atomic
    from recsys.cli.commands import read_toml_model
    from recsys.config import RecommenderConfig
    from recsys.errors import ConfigError
    from recsys.evaluation.tuning import parse_budget, report, tune_pipeline
    from recsys.privacy.policy import Policy

    try:
        budget = parse_budget(args.budget)
    except ValueError as exc:
        raise ConfigError(f"--budget: {exc}") from None
    base = read_toml_model(RecommenderConfig, args.config)
    policy = read_toml_model(Policy, args.policy)
    ds = load_from_args(args)
    print(f"data: {ds.summary()}; budget {budget:.0f}s")
    result = tune_pipeline(
        ds.interactions, ds.items, ds.users, base, policy, budget_s=budget,
        min_long_tail=None if args.min_long_tail < 0 else args.min_long_tail,
        max_trials=args.max_trials, seed=args.seed, progress=not args.no_progress,
    )  # fmt: skip
    out = Path(args.out)
    rep = Path(args.report) if args.report else out.with_suffix(".md")
    atomic.write_bytes_atomic(out, result.config.to_toml().encode())
    atomic.write_bytes_atomic(rep, report(result).encode())
    for m in result.phases[:2]:
        print(
            f"{m.name}: {len(m.trials)} trials, validation NDCG@10 {m.base_ndcg or 0:.4f} "
            f"(base) -> {m.ndcg:.4f}"
        )
    if result.rerank is not None:
        r = result.rerank
        print(f"re-ranking: {len(r.trials)} trials, NDCG@10 {r.ndcg:.4f}, long tail "
              f"{(r.long_tail or 0):.1%}")  # fmt: skip
    print(f"config written to {out}, report to {rep}; next: recsys train --config {out} ...")
    return 0
