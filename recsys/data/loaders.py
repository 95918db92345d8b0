"""Read shop data (CSV or Parquet, with a column mapping) and MovieLens-100K into a :class:`Dataset`.

Every loader validates: rows that break the contract are quarantined and counted (or, in strict
mode, raise with file, row and column).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd

from recsys.data.dataset import Dataset
from recsys.data.schema import AUDIT, CATEGORY_SEP, INTERACTIONS, ITEMS, SCHEMAS, USERS
from recsys.data.validation import ROW, ValidationReport, reject_rows, validate_table
from recsys.errors import DataValidationError

TABLES = ("interactions", "items", "users", "audit")
ColumnMapping = Mapping[str, Mapping[str, str]]
"""Per table, source column name -> canonical column name."""


def read_table(path: str | Path, mapping: Mapping[str, str] | None = None) -> pd.DataFrame:
    """Read a CSV or Parquet file as raw cells, renaming columns by ``mapping``.

    Adds ``_row``: the row as a spreadsheet or editor shows it (CSV: line number, header = 1;
    Parquet: 1-based row index).
    """
    path = Path(path)
    if not path.exists():
        raise DataValidationError("file not found", file=str(path))
    suffix = path.suffix.lower()
    try:
        if suffix in (".parquet", ".pq"):
            df = pd.read_parquet(path)
            df[ROW] = np.arange(1, len(df) + 1)
        elif suffix in (".csv", ".tsv", ".txt"):
            sep = "\t" if suffix == ".tsv" else ","
            df = pd.read_csv(path, sep=sep, dtype=str, keep_default_na=False, na_filter=False)
            df[ROW] = np.arange(2, len(df) + 2)
        else:
            raise DataValidationError(
                f"unsupported file type {suffix!r}", file=str(path), expected=".csv or .parquet"
            )
    except DataValidationError:
        raise
    except Exception as exc:  # parser errors from pandas/pyarrow carry their own position
        raise DataValidationError(f"cannot be read: {exc}", file=str(path)) from exc
    df.columns = [str(c).strip() for c in df.columns]
    if mapping:
        unknown = [src for src in mapping if src not in df.columns]
        if unknown:
            raise DataValidationError(
                f"column mapping names source column(s) {unknown} that the file does not have; "
                f"columns present: {[c for c in df.columns if c != ROW]}",
                file=str(path),
                column=unknown[0],
            )
        df = df.rename(columns=dict(mapping))
    return df


def load_dataset(
    interactions: str | Path | pd.DataFrame,
    items: str | Path | pd.DataFrame,
    users: str | Path | pd.DataFrame | None = None,
    audit: str | Path | pd.DataFrame | None = None,
    *,
    mapping: ColumnMapping | None = None,
    strict: bool = False,
    now: datetime | None = None,
    assume_consent: bool = False,
) -> Dataset:
    """Load and validate the tables of a shop.

    Without a users table, every user seen in the interactions gets consent flags equal to
    ``assume_consent`` (default: no consent, the conservative choice), and the report says so.
    """
    mapping = mapping or {}
    report = ValidationReport()
    raw: dict[str, tuple[pd.DataFrame, str]] = {}
    for name, src in (
        ("interactions", interactions),
        ("items", items),
        ("users", users),
        ("audit", audit),
    ):
        if src is None:
            continue
        if isinstance(src, pd.DataFrame):
            df, file = src.rename(columns=dict(mapping.get(name, {}))), f"<{name} DataFrame>"
        else:
            df, file = read_table(src, mapping.get(name)), str(src)
        raw[name] = (df, file)
    return _validate_all(raw, report, strict=strict, now=now, assume_consent=assume_consent)


def _validate_all(
    raw: dict[str, tuple[pd.DataFrame, str]],
    report: ValidationReport,
    *,
    strict: bool,
    now: datetime | None,
    assume_consent: bool,
    source: str = "",
) -> Dataset:
    tables: dict[str, pd.DataFrame] = {}
    files: dict[str, str] = {}
    for name in TABLES:
        if name in raw:
            df, file = raw[name]
            files[name] = file
            tables[name] = validate_table(
                df, SCHEMAS[name], file=file, report=report, strict=strict, now=now
            )
    inter = tables["interactions"]
    known_items = pd.Index(tables["items"]["item_id"])
    inter = reject_rows(
        inter,
        ~inter["item_id"].isin(known_items),
        schema=INTERACTIONS,
        column="item_id",
        reason="unknown_item",
        file=files["interactions"],
        report=report,
        strict=strict,
    )
    if "users" in tables:
        inter = reject_rows(
            inter,
            ~inter["user_id"].isin(pd.Index(tables["users"]["user_id"])),
            schema=INTERACTIONS,
            column="user_id",
            reason="unknown_user",
            file=files["interactions"],
            report=report,
            strict=strict,
        )
        users = tables["users"]
    else:
        ids = pd.unique(inter["user_id"])
        users = pd.DataFrame(
            {
                "user_id": pd.Series(ids, dtype=str),
                "consent_personalization": assume_consent,
                "consent_email": assume_consent,
            }
        )
        report.notes.append(
            f"no users table: {len(ids):,} users taken from the interactions with consent "
            f"flags set to {assume_consent}"
        )
    inter = inter.sort_values(["user_id", "timestamp", ROW], kind="stable")
    audit = tables.get("audit")
    return Dataset(
        interactions=_drop_row(inter),
        items=_drop_row(tables["items"]),
        users=_drop_row(users),
        audit=None if audit is None else _drop_row(audit),
        report=report,
        source=source,
    )


def _drop_row(df: pd.DataFrame) -> pd.DataFrame:
    return df.drop(columns=[ROW], errors="ignore").reset_index(drop=True)


def _find(directory: Path, name: str) -> Path | None:
    for ext in (".parquet", ".csv"):
        p = directory / f"{name}{ext}"
        if p.exists():
            return p
    return None


def load_dir(
    path: str | Path,
    *,
    format: str = "auto",
    mapping: ColumnMapping | None = None,
    strict: bool = False,
    now: datetime | None = None,
    assume_consent: bool = False,
) -> Dataset:
    """Load a data directory: ``interactions``, ``items``, ``users`` and ``audit`` as Parquet or
    CSV (what ``recsys data synth`` writes), or MovieLens-100K in its GroupLens layout."""
    directory = Path(path)
    if not directory.is_dir():
        raise DataValidationError("not a directory", file=str(directory))
    if format == "movielens" or (format == "auto" and (directory / "u.data").exists()):
        return load_movielens(directory, strict=strict, now=now)
    if format not in ("auto", "recsys"):
        raise DataValidationError(
            f"unknown format {format!r}", expected="auto, recsys or movielens"
        )
    files = {name: _find(directory, name) for name in TABLES}
    for name in ("interactions", "items"):
        if files[name] is None:
            raise DataValidationError(
                f"no {name}.parquet or {name}.csv in this directory", file=str(directory)
            )
    return load_dataset(
        files["interactions"],  # type: ignore[arg-type]
        files["items"],  # type: ignore[arg-type]
        files["users"],
        files["audit"],
        mapping=mapping,
        strict=strict,
        now=now,
        assume_consent=assume_consent,
    )


ML_AGE_BANDS = [(0, 18, "<18"), (18, 25, "18-24"), (25, 35, "25-34"), (35, 45, "35-44"),
                (45, 56, "45-55"), (56, 200, "56+")]  # fmt: skip


def _ml_read(path: Path, sep: str, names: list[str]) -> pd.DataFrame:
    if not path.exists():
        raise DataValidationError("MovieLens file not found", file=str(path))
    df = pd.read_csv(
        path, sep=sep, header=None, names=names, dtype=str, keep_default_na=False,
        na_filter=False, encoding="latin-1", engine="python" if len(sep) > 1 else "c",
    )  # fmt: skip
    df[ROW] = np.arange(1, len(df) + 1)  # no header: row = line number
    return df


def load_movielens(
    path: str | Path, *, strict: bool = False, now: datetime | None = None
) -> Dataset:
    """Read MovieLens-100K in the GroupLens layout (``u.data``, ``u.item``, ``u.user``, ``u.genre``).

    Ratings become ``rating`` events with the rating as value, genres become categories, and the
    demographics go to the audit table only. Every user is taken to have consented to
    personalization and e-mail (the data set was collected for research with that consent).
    """
    d = Path(path)
    genres_raw = _ml_read(d / "u.genre", "|", ["name", "idx"])
    genres = [g for g in genres_raw["name"].tolist() if g]
    data = _ml_read(d / "u.data", "\t", ["user_id", "item_id", "value", "timestamp"])
    data["event"] = "rating"
    item_cols = ["item_id", "title", "release_date", "video_release_date", "url", *genres]
    item = _ml_read(d / "u.item", "|", item_cols)
    flags = item[genres].to_numpy() == "1"
    item["category"] = [
        CATEGORY_SEP.join(g for g, f in zip(genres, row, strict=True) if f) for row in flags
    ]
    released = pd.to_datetime(item["release_date"], format="%d-%b-%Y", errors="coerce", utc=True)
    unparsed = released.isna() & (item["release_date"] != "")
    item["created_at"] = released.dt.strftime("%Y-%m-%dT%H:%M:%SZ").where(
        ~unparsed, item["release_date"]
    )
    item["created_at"] = item["created_at"].fillna("")
    item = item[["item_id", "title", "category", "created_at", ROW]]
    user = _ml_read(d / "u.user", "|", ["user_id", "age", "gender", "occupation", "zip_code"])
    users = pd.DataFrame(
        {"user_id": user["user_id"], "consent_personalization": "true", "consent_email": "true",
         ROW: user[ROW]}
    )  # fmt: skip
    age = pd.to_numeric(user["age"], errors="coerce")
    band = pd.Series("unknown", index=user.index, dtype=object)
    for lo, hi, label in ML_AGE_BANDS:
        band[(age >= lo) & (age < hi)] = label
    audit = pd.DataFrame(
        {"user_id": user["user_id"], "gender": user["gender"], "age_band": band,
         "occupation": user["occupation"], "region": user["zip_code"].str[:1], ROW: user[ROW]}
    )  # fmt: skip
    report = ValidationReport()
    return _validate_all(
        {
            "interactions": (data, str(d / "u.data")),
            "items": (item, str(d / "u.item")),
            "users": (users, str(d / "u.user")),
            "audit": (audit, str(d / "u.user")),
        },
        report,
        strict=strict,
        now=now,
        assume_consent=True,
        source=str(d),
    )


def write_dataset(ds: Dataset, out: str | Path, *, fmt: str = "parquet") -> list[Path]:
    """Write the tables of a data set to ``out`` (Parquet or CSV)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name in TABLES:
        df = getattr(ds, name)
        if df is None:
            continue
        p = out / f"{name}.{fmt}"
        if fmt == "parquet":
            df.to_parquet(p, index=False)
        else:
            df.to_csv(p, index=False)
        written.append(p)
    return written


__all__ = [
    "AUDIT",
    "ITEMS",
    "USERS",
    "ColumnMapping",
    "load_dataset",
    "load_dir",
    "load_movielens",
    "read_table",
    "write_dataset",
]
