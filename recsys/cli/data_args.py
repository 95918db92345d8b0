"""Options shared by every command that reads data."""

from __future__ import annotations

import argparse
import tomllib
from pathlib import Path

from recsys.data import Dataset, load_dataset, load_dir
from recsys.errors import ConfigError, DataValidationError


def add_data_args(p: argparse.ArgumentParser, *, required: bool = True) -> None:
    g = p.add_argument_group("data (a directory, or explicit files)")
    g.add_argument(
        "--data", metavar="DIR", help="data directory (recsys tables or MovieLens layout)"
    )
    g.add_argument("--format", choices=["auto", "recsys", "movielens"], default="auto")
    g.add_argument("--interactions", metavar="FILE", help="interactions CSV or Parquet")
    g.add_argument("--items", metavar="FILE", help="items CSV or Parquet")
    g.add_argument("--users", dest="users_file", metavar="FILE", help="users CSV or Parquet")
    g.add_argument("--audit", metavar="FILE", help="audit attributes CSV or Parquet")
    g.add_argument(
        "--mapping",
        metavar="TOML",
        help="column mapping: [interactions] customer = 'user_id' ... (source = canonical)",
    )
    g.add_argument("--strict", action="store_true", help="fail on the first bad row")
    g.add_argument(
        "--assume-consent",
        action="store_true",
        help="without a users table, treat every user as consenting (default: no consent)",
    )
    p.set_defaults(_data_required=required)


def read_mapping(path: str | None) -> dict[str, dict[str, str]]:
    if not path:
        return {}
    try:
        raw = tomllib.loads(Path(path).read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read column mapping: {exc}") from exc
    bad = [k for k in raw if k not in ("interactions", "items", "users", "audit")]
    if bad:
        raise ConfigError(
            f"{path}: unknown table(s) {bad}; expected interactions, items, users, audit"
        )
    return {k: {str(s): str(c) for s, c in v.items()} for k, v in raw.items()}


def load_from_args(args: argparse.Namespace) -> Dataset:
    mapping = read_mapping(args.mapping)
    if args.data:
        return load_dir(
            args.data, format=args.format, mapping=mapping, strict=args.strict,
            assume_consent=args.assume_consent,
        )  # fmt: skip
    if args.interactions and args.items:
        return load_dataset(
            args.interactions, args.items, args.users_file, args.audit, mapping=mapping,
            strict=args.strict, assume_consent=args.assume_consent,
        )  # fmt: skip
    raise DataValidationError(
        "no data given", expected="--data DIR, or --interactions FILE and --items FILE"
    )


DEFAULT_KEY_FILE = Path(".recsys") / "pseudonym.key"
DEFAULT_TOMBSTONES = Path(".recsys") / "tombstones.txt"


def add_key_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--key-file",
        metavar="FILE",
        help="pseudonymization key (default: $RECSYS_PSEUDONYM_KEY, $RECSYS_PSEUDONYM_KEY_FILE, "
        f"or {DEFAULT_KEY_FILE})",
    )


def pseudonymizer_from_args(args: argparse.Namespace, *, create: bool = False):
    """The key from --key-file, the environment, or the default file (created for training)."""
    import os

    from recsys.privacy.pseudonym import ENV_KEY, ENV_KEY_FILE, Pseudonymizer, new_key_file

    if args.key_file:
        return Pseudonymizer.from_file(args.key_file)
    if os.environ.get(ENV_KEY) or os.environ.get(ENV_KEY_FILE):
        return Pseudonymizer.from_env()
    if not DEFAULT_KEY_FILE.exists():
        if not create:
            return Pseudonymizer.from_env()  # raises the explanatory error
        new_key_file(DEFAULT_KEY_FILE)
        print(
            f"created a pseudonymization key at {DEFAULT_KEY_FILE}: keep it out of model "
            "directories; every process that serves this model needs it"
        )
    return Pseudonymizer.from_file(DEFAULT_KEY_FILE)
