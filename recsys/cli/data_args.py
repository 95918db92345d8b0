"""Options shared by every command that reads data."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from recsys.data import Dataset, load_dataset, load_dir
from recsys.data.loaders import load_mapped
from recsys.data.mapping import DataMapping
from recsys.errors import ConfigError, DataValidationError
from recsys.privacy.pseudonym import ENV_KEY, ENV_KEY_FILE, Pseudonymizer, new_key_file
from recsys.state import ENV_STATE_DIR, StateDir


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
        help="mapping file: the source files of each table, column names (source = canonical), "
        "constants, units (see recsys.data.mapping); alone it is enough when it names the files",
    )
    g.add_argument("--strict", action="store_true", help="fail on the first bad row")
    g.add_argument(
        "--assume-consent",
        action="store_true",
        help="without a users table, treat every user as consenting (default: no consent)",
    )
    p.set_defaults(_data_required=required)


def read_mapping(path: str | None) -> DataMapping:
    """The mapping file named by --mapping (an empty mapping without one)."""
    return DataMapping.from_file(path) if path else DataMapping()


def load_from_args(args: argparse.Namespace) -> Dataset:
    """The data named by --data, --interactions/--items/..., or a --mapping that names files."""
    mapping = read_mapping(args.mapping)
    if args.data:
        return load_dir(
            args.data, format=args.format, mapping=mapping, strict=args.strict,
            assume_consent=args.assume_consent,
        )  # fmt: skip
    explicit = (args.interactions, args.items, args.users_file, args.audit)
    if (args.interactions and args.items) or (mapping.has_files and any(explicit)):
        return load_dataset(
            *explicit, mapping=mapping, strict=args.strict, assume_consent=args.assume_consent
        )
    if mapping.has_files:
        return load_mapped(mapping, strict=args.strict, assume_consent=args.assume_consent)
    raise DataValidationError(
        "no data given",
        expected="--data DIR, --interactions FILE and --items FILE, or --mapping FILE naming "
        "the files",
    )


DEFAULT_KEY_FILE = Path(".recsys") / "pseudonym.key"
"""Deprecated: the key now lives in the state directory (:class:`recsys.state.StateDir`)."""
DEFAULT_TOMBSTONES = Path(".recsys") / "tombstones.txt"
"""Deprecated: kept for callers that have not moved to the state directory yet."""


def add_key_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--key-file",
        metavar="FILE",
        help=f"pseudonymization key (default: ${ENV_KEY}, ${ENV_KEY_FILE}, "
        "or pseudonym.key in the state directory)",
    )
    p.add_argument(
        "--state-dir",
        metavar="DIR",
        help=f"where recsys keeps its key and state (default: ${ENV_STATE_DIR}, "
        "$XDG_STATE_HOME/recsys or ~/.local/state/recsys)",
    )


def state_from_args(args: argparse.Namespace) -> StateDir:
    """The state directory named by --state-dir, else by the environment (see recsys.state)."""
    return StateDir.resolve(getattr(args, "state_dir", None))


def pseudonymizer_from_args(args: argparse.Namespace, *, create: bool = False) -> Pseudonymizer:
    """The key from --key-file, the environment, or the state directory's key file.

    Only ``create=True`` (training) makes a new key file; every other command needs the key the
    model was trained with, and says where it looked when there is none.
    """
    if getattr(args, "key_file", None):
        return Pseudonymizer.from_file(args.key_file)
    if os.environ.get(ENV_KEY) or os.environ.get(ENV_KEY_FILE):
        return Pseudonymizer.from_env()
    state = state_from_args(args)
    key_file = state.key_file
    if not key_file.exists():
        if not create:
            raise ConfigError(
                f"no pseudonymization key: {key_file} does not exist and neither {ENV_KEY} nor "
                f"{ENV_KEY_FILE} is set; pass --key-file FILE or --state-dir DIR (the one "
                "`recsys train` used: it creates the key there)"
            )
        new_key_file(key_file)
        print(
            f"created a pseudonymization key at {key_file}: keep it out of model "
            "directories; every process that serves this model needs it"
        )
    return Pseudonymizer.from_file(key_file)
