"""Entry point of the ``recsys`` command."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from recsys import __version__
from recsys.cli import commands
from recsys.cli.data_args import add_data_args
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
    v.set_defaults(func=commands.data_validate)

    demo = sub.add_parser("demo", help="run the main job on the embedded synthetic shop")
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


def print_json(obj: object) -> None:
    print(json.dumps(obj, indent=2, default=str))


if __name__ == "__main__":
    sys.exit(main())
