"""Data contracts, validating loaders and the embedded synthetic shop."""

from recsys.data.dataset import Dataset
from recsys.data.loaders import (
    load_dataset,
    load_dir,
    load_mapped,
    load_movielens,
    read_table,
    write_dataset,
)
from recsys.data.mapping import DataMapping, SourceMapping
from recsys.data.schema import AUDIT, EVENTS, INTERACTIONS, ITEMS, USERS
from recsys.data.validation import ValidationReport

__all__ = [
    "AUDIT",
    "EVENTS",
    "INTERACTIONS",
    "ITEMS",
    "USERS",
    "DataMapping",
    "Dataset",
    "SourceMapping",
    "ValidationReport",
    "load_dataset",
    "load_dir",
    "load_mapped",
    "load_movielens",
    "read_table",
    "write_dataset",
]
