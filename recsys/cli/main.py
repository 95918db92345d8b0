"""Entry point of the ``recsys`` command."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from recsys import __version__
from recsys.cli import accountability, commands, offers, serve, tune
from recsys.cli.data_args import add_data_args, add_key_arg
from recsys.errors import RecsysError


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="recsys", description="Explainable, data-minimizing recommendations"
    )
    p.add_argument("--version", action="version", version=f"recsys {__version__}")
    sub = p.add_subparsers(dest="command", required=True)

    d = sub.add_parser("data", help="generate or validate data")
    dsub = d.add_subparsers(dest="data_command", required=True)
    s = dsub.add_parser("synth", help="write the synthetic shop's tables")
    s.add_argument("--users", type=int, default=2_000)
    s.add_argument("--items", type=int, default=600)
    s.add_argument("--seed", type=int, default=42)
    s.add_argument("--out", required=True, metavar="DIR")
    s.add_argument("--csv", action="store_true", help="write CSV instead of Parquet")
    s.set_defaults(func=commands.data_synth)
    v = dsub.add_parser("validate", help="validate data and print the report")
    v.add_argument("paths", nargs="*", metavar="PATH", help="data directories")
    add_data_args(v, required=False)
    v.add_argument("--quarantine", metavar="FILE", help="write rejected rows to this CSV")
    v.add_argument("--json", action="store_true", help="print the report as JSON")
    v.add_argument(
        "--max-rejected",
        type=float,
        default=0.05,
        metavar="SHARE",
        help="exit with code 2 when interactions or items lose more than this share of their "
        "rows (default 0.05)",
    )
    v.set_defaults(func=commands.data_validate)

    t = sub.add_parser("train", help="fit a model and save it to a directory")
    add_data_args(t)
    add_key_arg(t)
    t.add_argument("--out", required=True, metavar="DIR", help="model directory to write")
    t.add_argument("--config", metavar="TOML", help="pipeline configuration (RecommenderConfig)")
    t.add_argument("--policy", metavar="TOML", help="purpose policy (default: the shipped policy)")
    t.add_argument(
        "--now", metavar="DATE", help="reference time of the retention window (default: now)"
    )
    t.set_defaults(func=commands.train)

    r = sub.add_parser("recommend", help="recommend for one user or every user in a file")
    add_key_arg(r)
    r.add_argument("--model", required=True, metavar="DIR")
    who = r.add_mutually_exclusive_group(required=True)
    who.add_argument("--user", metavar="ID")
    who.add_argument("--users", metavar="FILE", help="CSV or Parquet with a user_id column")
    r.add_argument("--k", type=int, default=10)
    r.add_argument("--out", metavar="FILE", help="CSV or Parquet (by suffix); default: print")
    r.add_argument("--exclude", nargs="*", default=[], metavar="ITEM", help="item ids to leave out")
    r.add_argument(
        "--no-profiling", action="store_true", help="non-personalized list (DSA Art. 38)"
    )
    r.add_argument("--no-rerank", action="store_true", help="ranker order: no diversity/fairness")
    r.add_argument("--json", action="store_true", help="print the structured result as JSON")
    accountability.add_overrides_arg(r, audit=True)
    r.set_defaults(func=commands.recommend)

    f = sub.add_parser(
        "forget",
        help="erase a user from the model, the data and future training",
        epilog="exit codes: 0 erased, 3 unknown id (nothing found; the tombstone is still "
        "recorded), 2 error (the tombstone, recorded first, stays)",
    )
    add_key_arg(f)
    f.add_argument("user_id", metavar="USER_ID")
    f.add_argument("--model", metavar="DIR", help="model directory to erase the user from")
    add_data_args(f, required=False)  # the stored files to rewrite without the user's rows
    f.set_defaults(func=commands.forget)

    x = sub.add_parser("export", help="everything stored about a user (GDPR Art. 15)")
    add_key_arg(x)
    x.add_argument("user_id", metavar="USER_ID")
    x.add_argument("--model", metavar="DIR")
    add_data_args(x, required=False)
    x.set_defaults(func=commands.export)

    ev = sub.add_parser("evaluate", help="offline evaluation: all systems, all metrics, a report")
    add_data_args(ev)
    ev.add_argument("--config", metavar="TOML", help="evaluation configuration (EvaluationConfig)")
    ev.add_argument("--policy", metavar="TOML", help="purpose policy (default: the shipped one)")
    ev.add_argument("--seed", type=int, help="overrides the configuration's seed")
    ev.add_argument("--out", required=True, metavar="DIR")
    ev.add_argument(
        "--baseline-recs",
        metavar="FILE",
        help="the shop's current recommendations (CSV or Parquet: user_id, item_id, rank), scored "
        "under the same rules and used as the reference of the paired tests",
    )
    ev.add_argument("--minimization", action="store_true",
                    help="also measure the data minimization curve (history caps, retention)")  # fmt: skip
    ev.add_argument("--workers", type=int, default=2, help="processes for the minimization curve")
    ev.add_argument("--minimization-seeds", type=int, default=3, help="seeds averaged per setting")
    accountability.add_overrides_arg(ev)  # the report gets the effect of the overrides
    ev.set_defaults(func=commands.evaluate)

    pol = sub.add_parser("policy", help="show or check a purpose policy")
    psub = pol.add_subparsers(dest="policy_command", required=True)
    show = psub.add_parser("show", help="print the policy (default: the shipped one) as TOML")
    show.add_argument("file", nargs="?", metavar="TOML")
    show.set_defaults(func=commands.policy_show)
    chk = psub.add_parser("check", help="validate a policy file")
    chk.add_argument("file", metavar="TOML")
    chk.set_defaults(func=commands.policy_check)

    offers.add_parser(sub)

    tune.add_parser(sub)  # recsys tune (issue #12)

    accountability.register(sub)  # audit, feedback, monitor

    serve.register(sub)  # the HTTP service (issue #13)

    demo = sub.add_parser("demo", help="run the main job on the embedded synthetic shop")
    add_key_arg(demo)
    demo.add_argument("--out", default="demo-output", metavar="DIR")
    demo.add_argument("--users", type=int, default=2_000)
    demo.add_argument("--items", type=int, default=600)
    demo.add_argument("--seed", type=int, default=42)
    demo.add_argument("--show", type=int, default=3, help="users to print")
    demo.add_argument("--k", type=int, default=5)
    demo.set_defaults(func=commands.demo)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except RecsysError as exc:
        print(f"recsys: error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # e.g. piped into head
        return 0


if __name__ == "__main__":
    sys.exit(main())
