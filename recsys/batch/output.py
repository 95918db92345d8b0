"""Offer files: Parquet, JSONL or CSV by extension, streamed chunk by chunk, published atomically."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from recsys import atomic
from recsys.batch.chunk import OFFER_SCHEMA
from recsys.errors import ConfigError

FORMATS = {".parquet": "parquet", ".pq": "parquet", ".jsonl": "jsonl", ".csv": "csv"}


def check_format(path: Path) -> str:
    """The output format for ``path``'s extension; anything else is an error up front."""
    fmt = FORMATS.get(Path(path).suffix.lower())
    if fmt is None:
        raise ConfigError(
            f"{path}: unknown output format {Path(path).suffix!r} (expected one of "
            f"{', '.join(FORMATS)})"
        )
    return fmt


def write_offers(path: Path, tables: Iterable[pa.Table]) -> int:
    """Write ``tables`` in order to ``path`` (one at a time in memory); returns the row count."""
    fmt = check_format(path)
    rows = 0

    def write(tmp: Path) -> None:
        nonlocal rows
        if fmt == "parquet":
            with pq.ParquetWriter(tmp, OFFER_SCHEMA) as w:
                for t in tables:
                    w.write_table(t.cast(OFFER_SCHEMA))
                    rows += t.num_rows
        elif fmt == "csv":
            with pacsv.CSVWriter(tmp, OFFER_SCHEMA) as w:
                for t in tables:
                    w.write_table(t.cast(OFFER_SCHEMA))
                    rows += t.num_rows
        else:
            with tmp.open("w", encoding="utf-8") as f:
                for t in tables:
                    for row in t.to_pylist():
                        f.write(json.dumps(row, ensure_ascii=False) + "\n")
                    rows += t.num_rows

    Path(path).parent.mkdir(parents=True, exist_ok=True)
    atomic.write_atomic(Path(path), write)
    return rows
