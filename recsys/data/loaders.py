"""Read shop data (CSV or Parquet, with a column mapping) and MovieLens-100K into a :class:`Dataset`.

Every loader validates: rows that break the contract are quarantined and counted (or, in strict
mode, raise with file, row and column).
"""

from __future__ import annotations

import codecs
import re
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd

from recsys.data.dataset import Dataset
from recsys.data.mapping import DataMapping, SourceMapping, as_mapping
from recsys.data.schema import AUDIT, CATEGORY_SEP, INTERACTIONS, ITEMS, SCHEMAS, USERS
from recsys.data.validation import (
    FILE,
    ROW,
    Cascade,
    SourceOptions,
    ValidationReport,
    dedupe_table,
    reject_rows,
    validate_table,
)
from recsys.errors import ConfigError, DataValidationError

TABLES = ("interactions", "items", "users", "audit")
ColumnMapping = Mapping[str, Mapping[str, str]]
"""Per table, source column name -> canonical column name (the older mapping form)."""

SAMPLE_ROWS = 10_000
"""Rows of a large CSV file checked before the rest is read (see :data:`GARBAGE_SHARE`)."""
GARBAGE_SHARE = 0.5
"""When more than this share of the first :data:`SAMPLE_ROWS` rows is unusable, reading stops."""

Source = str | Path | pd.DataFrame


def read_table(
    path: str | Path,
    mapping: Mapping[str, str] | None = None,
    *,
    encoding: str = "utf-8",
    delimiter: str | None = None,
    nrows: int | None = None,
) -> pd.DataFrame:
    """Read a CSV or Parquet file as raw cells, renaming columns by ``mapping``.

    Adds ``_row``: the row as an editor shows it (CSV: the line the record starts on, header =
    1, also when quoted fields hold line breaks; Parquet: 1-based row index). Blank lines are
    skipped; ``df.attrs["blank_lines"]`` counts them. A file that is not in ``encoding`` is an
    error naming the byte offset and line, with a guess at the real encoding.
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
            sep = delimiter or ("\t" if suffix == ".tsv" else ",")
            df = pd.read_csv(
                path, sep=sep, dtype=str, keep_default_na=False, na_filter=False,
                skip_blank_lines=False, encoding=encoding, nrows=nrows,
            )  # fmt: skip
            df = _number_lines(df, path, whole=nrows is None)
        else:
            raise DataValidationError(
                f"unsupported file type {suffix!r}", file=str(path), expected=".csv or .parquet"
            )
    except DataValidationError:
        raise
    except UnicodeError as exc:
        raise _encoding_error(path, encoding) from exc
    except Exception as exc:  # parser errors from pandas/pyarrow carry their own position
        fields = re.search(r"Expected (\d+) fields in line (\d+), saw (\d+)", str(exc))
        if fields:
            want, line, got = (int(g) for g in fields.groups())
            raise DataValidationError(
                f"the line has {got} fields, the header {want}",
                file=str(path),
                row=line,
                expected=f"{want} fields per line (quote fields that contain the delimiter)",
            ) from exc
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


def _number_lines(df: pd.DataFrame, path: Path, *, whole: bool) -> pd.DataFrame:
    """Set ``_row`` to each record's first line and drop blank lines (counted in attrs)."""
    n = len(df)
    simple = False
    if whole:  # one pass over the bytes: no embedded line breaks when lines == records + 1
        lines, last = 0, b"\n"
        with path.open("rb") as f:
            while chunk := f.read(1 << 24):
                lines += chunk.count(b"\n")
                last = chunk[-1:]
        lines += last != b"\n"
        simple = lines == n + 1
    if simple or n == 0:
        rows = np.arange(2, n + 2)
    else:
        breaks = np.zeros(n, dtype=np.int64)
        for c in df.columns:
            breaks += df[c].str.count("\n").to_numpy(dtype=np.int64)
        rows = 2 + np.concatenate([[0], np.cumsum(1 + breaks)[:-1]])
    blank = (df == "").all(axis=1).to_numpy() if len(df.columns) else np.zeros(n, bool)
    df = df.loc[~blank].copy()
    df[ROW] = rows[~blank]
    df.attrs["blank_lines"] = int(blank.sum())
    return df


def _encoding_error(path: Path, encoding: str) -> DataValidationError:
    """Where a file stops being ``encoding``, and what it probably is instead."""
    decoder = codecs.getincrementaldecoder(encoding)()
    offset, line = 0, 1
    pos, byte = None, b""
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            try:
                decoder.decode(chunk)
            except UnicodeDecodeError as exc:
                start = max(exc.start - (len(exc.object) - len(chunk)), 0)
                pos = offset + start
                line += chunk[:start].count(b"\n")
                byte = chunk[start : start + 1]
                break
            offset += len(chunk)
            line += chunk.count(b"\n")
    if pos is None:
        pos, byte = offset, b""
    with path.open("rb") as f:
        head = f.read(1 << 20)
    hint = "re-save it as UTF-8 or set encoding in the mapping"
    if b"\x00" in head or sum(b < 9 or 13 < b < 32 for b in head[:65536]) > len(head[:65536]) // 20:
        hint = "it looks like a binary file, not CSV text"
    elif encoding.replace("-", "").lower() in ("utf8", "utf8sig"):
        hint = (
            'it looks like Latin-1/cp1252: re-save it as UTF-8 or set encoding = "cp1252" in '
            "the mapping"
        )
    return DataValidationError(
        f"not valid {encoding} at byte {pos:,} (line {line}, byte {byte.hex() or '?'}); {hint}",
        file=str(path),
        row=line,
    )


def _read_source(
    src: Source, table: str, spec: SourceMapping, mapping: DataMapping, now: datetime | None
) -> tuple[pd.DataFrame, str]:
    """Read one source file and apply its mapping; a mostly unusable large file stops early."""
    if isinstance(src, pd.DataFrame):
        file = f"<{table} DataFrame>"
        return mapping.apply(src, table, spec, file), file
    path, file = Path(src), str(src)
    opts = {"encoding": spec.encoding, "delimiter": spec.delimiter}
    if path.suffix.lower() in (".parquet", ".pq"):
        return mapping.apply(read_table(path, **opts), table, spec, file), file
    sample = read_table(path, nrows=SAMPLE_ROWS, **opts)
    df = mapping.apply(sample, table, spec, file)
    scratch = ValidationReport()
    validate_table(df, SCHEMAS[table], file=file, report=scratch, now=now,
                   options=spec.options(), dedupe=False)  # fmt: skip
    if len(sample) + sample.attrs.get("blank_lines", 0) < SAMPLE_ROWS:
        return df, file  # the sample was the whole file
    t = scratch.tables[table]
    if t.received and t.n_rejected / t.received > GARBAGE_SHARE:
        first = t.examples[0]
        top = ", ".join(f"{r} {n:,}" for r, n in t.rejected.most_common(3))
        hints = "".join(f"; {n}" for n in scratch.notes)
        raise DataValidationError(
            f"{t.n_rejected:,} of the first {t.received:,} rows cannot be used ({top}), so the "
            f"rest of the file was not read: is this the {table} file, with the right mapping?"
            f" First bad row: {first.reason}, got {first.value!r}{hints}",
            file=file,
            row=first.row,
            column=first.column,
            expected=first.expected,
        )
    return mapping.apply(read_table(path, **opts), table, spec, file), file


def load_dataset(
    interactions: Source | None,
    items: Source | None,
    users: Source | None = None,
    audit: Source | None = None,
    *,
    mapping: ColumnMapping | DataMapping | None = None,
    strict: bool = False,
    now: datetime | None = None,
    assume_consent: bool = False,
) -> Dataset:
    """Load and validate the tables of a shop.

    A file given here replaces the files a :class:`DataMapping` names for that table (its
    options still apply); tables given as None come from the mapping's files. Without a users
    table, every user seen in the interactions gets consent flags equal to ``assume_consent``
    (default: no consent, the conservative choice), and the report says so.
    """
    dm = as_mapping(mapping)  # type: ignore[arg-type]
    given = {"interactions": interactions, "items": items, "users": users, "audit": audit}
    plan: dict[str, list[tuple[Source, SourceMapping]]] = {}
    for name in TABLES:
        specs = dm.sources(name)
        src = given[name]
        if src is not None:
            if len(specs) > 1:
                raise ConfigError(
                    f"{dm.name}: [{name}] names {len(specs)} source files; give the files in "
                    "the mapping only, or use a mapping with one source for this table"
                )
            plan[name] = [(src, specs[0] if specs else SourceMapping())]
        elif specs:
            nameless = [i + 1 for i, s in enumerate(specs) if not s.file]
            if nameless:
                raise ConfigError(
                    f'{dm.name}: [{name}] source {nameless[0]} has no file; add file = "..." '
                    f"or give the {name} file on the command line"
                )
            plan[name] = [(dm.resolve(s), s) for s in specs]
    for name in ("interactions", "items"):
        if name not in plan:
            raise DataValidationError(
                f"no {name} table given",
                expected=f"an {name} file, or a mapping with a [[{name}]] file",
            )
    report = ValidationReport()
    raw: dict[str, list[tuple[pd.DataFrame, str, SourceOptions]]] = {}
    for name, sources in plan.items():
        for src, spec in sources:
            df, file = _read_source(src, name, spec, dm, now)
            if df.attrs.get("blank_lines"):
                report.note(f"{file}: {df.attrs['blank_lines']:,} blank line(s) skipped")
            raw.setdefault(name, []).append((df, file, spec.options()))
    return _validate_all(raw, report, strict=strict, now=now, assume_consent=assume_consent)


def load_mapped(
    mapping: DataMapping | str | Path,
    *,
    strict: bool = False,
    now: datetime | None = None,
    assume_consent: bool = False,
) -> Dataset:
    """Load every table from the files a mapping names (relative to the mapping file)."""
    dm = mapping if isinstance(mapping, DataMapping) else DataMapping.from_file(mapping)
    return load_dataset(None, None, mapping=dm, strict=strict, now=now,
                        assume_consent=assume_consent)  # fmt: skip


def _reject_references(
    inter: pd.DataFrame,
    column: str,
    table: str,
    known: pd.Index,
    reason: str,
    file: str,
    report: ValidationReport,
    strict: bool,
) -> pd.DataFrame:
    """Reject interactions whose id is unknown, naming the cascade from rejected rows apart."""
    unknown = ~inter[column].isin(known)
    tr = report.tables.get(table)
    rejected = tr.rejected_keys if tr is not None else set()
    if rejected and unknown.any():
        cascade = unknown & inter[column].isin(rejected)
        if cascade.any():
            report.cascades.append(
                Cascade("interactions", int(cascade.sum()), table,
                        int(inter.loc[cascade, column].nunique()), len(rejected))
            )  # fmt: skip
            inter = reject_rows(inter, cascade, schema=INTERACTIONS, column=column,
                                reason=f"rejected_{reason}", file=file, report=report,
                                strict=strict)  # fmt: skip
            unknown = ~inter[column].isin(known)
    return reject_rows(inter, unknown, schema=INTERACTIONS, column=column,
                       reason=f"unknown_{reason}", file=file, report=report,
                       strict=strict)  # fmt: skip


def _validate_all(
    raw: dict[str, list[tuple[pd.DataFrame, str, SourceOptions]]],
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
        if name not in raw:
            continue
        parts = raw[name]
        files[name] = ", ".join(file for _, file, _ in parts)
        schema = SCHEMAS[name]
        done = []
        for df, file, opts in parts:
            done.append(
                validate_table(df, schema, file=file, report=report, strict=strict, now=now,
                               options=opts, dedupe=len(parts) == 1)
            )  # fmt: skip
        if len(done) == 1:
            tables[name] = done[0]
        else:
            merged = pd.concat(done, ignore_index=True)
            merged[FILE] = merged[FILE].astype(str)
            tables[name] = dedupe_table(merged, schema, report, strict=strict)
    inter = tables["interactions"]
    inter = _reject_references(inter, "item_id", "items", pd.Index(tables["items"]["item_id"]),
                               "item", files["interactions"], report, strict)  # fmt: skip
    if "users" in tables:
        inter = _reject_references(inter, "user_id", "users",
                                   pd.Index(tables["users"]["user_id"]), "user",
                                   files["interactions"], report, strict)  # fmt: skip
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
    return df.drop(columns=[ROW, FILE], errors="ignore").reset_index(drop=True)


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
    mapping: ColumnMapping | DataMapping | None = None,
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
            "interactions": [(data, str(d / "u.data"), SourceOptions())],
            "items": [(item, str(d / "u.item"), SourceOptions())],
            "users": [(users, str(d / "u.user"), SourceOptions())],
            "audit": [(audit, str(d / "u.user"), SourceOptions())],
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
    "load_mapped",
    "load_movielens",
    "read_table",
    "write_dataset",
]
