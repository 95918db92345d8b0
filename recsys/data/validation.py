"""Validation of raw tables against their contracts.

Bad rows are never dropped silently: in the default mode they go to a quarantine with the file, row,
column and reason, and are counted per reason; in strict mode the first bad row raises
:class:`~recsys.errors.DataValidationError`.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime

import numpy as np
import pandas as pd

from recsys.data.schema import CATEGORY_SEP, EVENTS, TableSchema
from recsys.errors import DataValidationError

ROW = "_row"
"""Internal column carrying each row's 1-based position in its source file (header excluded)."""

REASONS: dict[str, str] = {
    "empty_id": "id is empty",
    "empty_value": "required value is empty",
    "bad_timestamp": "timestamp cannot be parsed",
    "future_timestamp": "timestamp lies in the future",
    "unknown_event": "event type is not known",
    "bad_number": "value is not a number",
    "negative_value": "value is negative",
    "bad_bool": "value is not a yes/no flag",
    "duplicate_row": "row repeats an earlier row",
    "duplicate_key": "id repeats an earlier row's id",
    "unknown_item": "item id is not in the items table",
    "unknown_user": "user id is not in the users table",
}

_TRUE = {"true", "t", "yes", "y", "1", "1.0"}
_FALSE = {"false", "f", "no", "n", "0", "0.0"}
MAX_EXAMPLES = 20


@dataclass(frozen=True)
class Rejection:
    """One quarantined row: where it was, which column failed and why."""

    table: str
    file: str
    row: int
    column: str
    reason: str
    value: str
    expected: str

    def message(self) -> str:
        return (
            f"{self.file}, row {self.row}, column {self.column!r}: {REASONS[self.reason]}, "
            f"got {self.value!r} (expected {self.expected})"
        )


@dataclass
class TableReport:
    """Counts for one table: rows received, accepted, and rejected per reason."""

    table: str
    file: str
    received: int = 0
    accepted: int = 0
    rejected: Counter[str] = field(default_factory=Counter)
    examples: list[Rejection] = field(default_factory=list)

    @property
    def n_rejected(self) -> int:
        return sum(self.rejected.values())


@dataclass
class ValidationReport:
    """What validation saw across all tables of a data set; nothing rejected goes uncounted."""

    tables: dict[str, TableReport] = field(default_factory=dict)
    quarantine: list[pd.DataFrame] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def table(self, name: str, file: str) -> TableReport:
        if name not in self.tables:
            self.tables[name] = TableReport(name, file)
        return self.tables[name]

    @property
    def n_rejected(self) -> int:
        return sum(t.n_rejected for t in self.tables.values())

    def quarantined(self) -> pd.DataFrame:
        """All rejected rows: table, file, row, column, reason, value."""
        cols = ["table", "file", "row", "column", "reason", "value"]
        if not self.quarantine:
            return pd.DataFrame(columns=cols)
        return pd.concat(self.quarantine, ignore_index=True)[cols]

    def to_dict(self) -> dict[str, object]:
        return {
            name: {
                "file": t.file,
                "received": t.received,
                "accepted": t.accepted,
                "rejected": t.n_rejected,
                "rejected_by_reason": dict(sorted(t.rejected.items())),
            }
            for name, t in self.tables.items()
        } | {"notes": list(self.notes)}

    def to_text(self) -> str:
        lines = []
        for name, t in self.tables.items():
            lines.append(
                f"{name:<13} {t.accepted:>10,} accepted  {t.n_rejected:>8,} rejected"
                f"  of {t.received:,} rows  ({t.file})"
            )
            for reason, n in sorted(t.rejected.items()):
                lines.append(f"    {reason:<18} {n:>8,}  {REASONS[reason]}")
            for ex in t.examples[:5]:
                lines.append(f"    e.g. {ex.message()}")
        lines.extend(f"note: {n}" for n in self.notes)
        lines.append(f"total rejected: {self.n_rejected:,}")
        return "\n".join(lines)


def _as_text(s: pd.Series) -> pd.Series:
    """Cells as stripped strings; missing values become ''."""
    if pd.api.types.is_float_dtype(s):
        # ids read from Parquet as float (because of NaN) should not gain a '.0'
        whole = s.notna() & (s == np.floor(s.fillna(0)))
        out = s.astype(object).where(~whole, s[whole].astype("Int64").astype(str))
        return out.where(s.notna(), "").astype(str).str.strip()
    return s.astype(object).where(s.notna(), "").astype(str).str.strip()


def parse_timestamps(s: pd.Series) -> tuple[pd.Series, pd.Series]:
    """Parse ISO-8601 strings, Unix seconds or datetimes to UTC seconds; returns (values, bad)."""
    if pd.api.types.is_datetime64_any_dtype(s):
        out = s.dt.tz_localize("UTC") if s.dt.tz is None else s.dt.tz_convert("UTC")
        return out.dt.as_unit("s"), pd.Series(False, index=s.index)
    if pd.api.types.is_numeric_dtype(s):
        num = pd.to_numeric(s, errors="coerce")
        text = pd.Series("", index=s.index, dtype=object)
    else:
        text = _as_text(s)
        num = pd.to_numeric(text.where(text.str.fullmatch(r"-?\d+(\.\d+)?"), None), errors="coerce")
    out = pd.Series(pd.NaT, index=s.index, dtype="datetime64[s, UTC]")
    has_num = num.notna()
    if has_num.any():
        out[has_num] = pd.to_datetime(num[has_num], unit="s", utc=True).dt.as_unit("s")
    rest = ~has_num & (text != "")
    if rest.any():
        parsed = pd.to_datetime(text[rest], format="ISO8601", utc=True, errors="coerce")
        out[rest] = parsed.dt.as_unit("s")
    bad = out.isna() & (has_num | (text != ""))
    return out, bad


def parse_bools(s: pd.Series) -> tuple[pd.Series, pd.Series]:
    if pd.api.types.is_bool_dtype(s):
        return s.astype(bool), pd.Series(False, index=s.index)
    text = _as_text(s).str.lower()
    ok = text.isin(_TRUE | _FALSE)
    return text.isin(_TRUE), ~ok


class _RowChecker:
    """Collects per-row failures for one table; the first failure of a row is the one counted."""

    def __init__(self, df: pd.DataFrame, schema: TableSchema, file: str) -> None:
        self.df = df
        self.schema = schema
        self.file = file
        self.reason = pd.Series("", index=df.index, dtype=object)
        self.column = pd.Series("", index=df.index, dtype=object)
        self.value = pd.Series("", index=df.index, dtype=object)

    def fail(self, mask: pd.Series, column: str, reason: str, raw: pd.Series) -> None:
        new = mask & (self.reason == "")
        if new.any():
            self.reason[new] = reason
            self.column[new] = column
            self.value[new] = _as_text(raw[new])

    @property
    def bad(self) -> pd.Series:
        return self.reason != ""


def validate_table(
    raw: pd.DataFrame,
    schema: TableSchema,
    *,
    file: str,
    report: ValidationReport,
    strict: bool = False,
    now: datetime | None = None,
) -> pd.DataFrame:
    """Check and type one raw table; returns the accepted rows with canonical dtypes.

    ``raw`` must already carry canonical column names (loaders apply the column mapping) and may
    carry the ``_row`` column with source row numbers. Missing required columns always raise.
    """
    missing = [c for c in schema.required if c not in raw.columns]
    if missing:
        present = ", ".join(repr(c) for c in raw.columns if c != ROW) or "none"
        col = schema.column(missing[0])
        raise DataValidationError(
            f"missing required column(s) {', '.join(repr(m) for m in missing)} for the "
            f"{schema.name} table; columns present: {present}. Map source columns with a "
            "column mapping if they are named differently",
            file=file,
            column=missing[0],
            expected=col.expected,
        )
    df = raw.copy()
    if ROW not in df.columns:
        df[ROW] = np.arange(1, len(df) + 1)
    df = df.reset_index(drop=True)
    chk = _RowChecker(df, schema, file)
    out = pd.DataFrame({ROW: df[ROW].to_numpy()})
    now_ts = pd.Timestamp(now or datetime.now(UTC))
    if now_ts.tzinfo is None:
        now_ts = now_ts.tz_localize("UTC")

    for col in schema.columns:
        if col.name not in df.columns:
            continue
        s = df[col.name]
        if col.kind == "id":
            text = _as_text(s)
            chk.fail(text == "", col.name, "empty_id", s)
            out[col.name] = text.astype(str)
        elif col.kind == "text":
            text = _as_text(s)
            if col.required:
                chk.fail(text == "", col.name, "empty_value", s)
            out[col.name] = text.astype(str)
        elif col.kind == "category":
            text = _as_text(s)
            parts = text.str.split(CATEGORY_SEP, regex=False)
            text = parts.map(lambda ps: CATEGORY_SEP.join(p.strip() for p in ps if p.strip()))
            chk.fail(text == "", col.name, "empty_value", s)
            out[col.name] = text.astype(str)
        elif col.kind == "event":
            text = _as_text(s).str.lower()
            chk.fail(~text.isin(EVENTS), col.name, "unknown_event", s)
            out[col.name] = text.astype(str)
        elif col.kind == "timestamp":
            ts, bad = parse_timestamps(s)
            chk.fail(bad, col.name, "bad_timestamp", s)
            if col.required:
                chk.fail(ts.isna(), col.name, "bad_timestamp", s)
                chk.fail(ts > now_ts, col.name, "future_timestamp", s)
            out[col.name] = ts
        elif col.kind == "number":
            if pd.api.types.is_numeric_dtype(s):
                num = pd.to_numeric(s, errors="coerce").astype(float)
                bad = pd.Series(False, index=s.index)
            else:
                text = _as_text(s)
                num = pd.to_numeric(text.where(text != "", None), errors="coerce").astype(float)
                bad = num.isna() & (text != "")
            chk.fail(bad, col.name, "bad_number", s)
            chk.fail(num < 0, col.name, "negative_value", s)
            out[col.name] = num
        elif col.kind == "bool":
            flags, bad = parse_bools(s)
            if col.required:
                chk.fail(bad, col.name, "bad_bool", s)
            else:
                chk.fail(bad & (_as_text(s) != ""), col.name, "bad_bool", s)
            out[col.name] = flags.astype(bool)

    if schema.name == "audit":  # protected attributes: keep every extra column as text
        for c in df.columns:
            if c not in out.columns:
                out[c] = _as_text(df[c]).astype(str)

    data_cols = [c for c in schema.names if c in out.columns]
    if schema.key:
        dup = out.duplicated(list(schema.key), keep="first") & ~chk.bad
        chk.fail(dup, schema.key[0], "duplicate_key", out[schema.key[0]])
    else:
        dup = out.duplicated(data_cols, keep="first") & ~chk.bad
        chk.fail(dup, data_cols[0], "duplicate_row", out[data_cols[0]])

    return _finish(out, chk, schema, file, report, strict)


def _finish(
    out: pd.DataFrame,
    chk: _RowChecker,
    schema: TableSchema,
    file: str,
    report: ValidationReport,
    strict: bool,
) -> pd.DataFrame:
    tr = report.table(schema.name, file)
    bad = chk.bad
    if strict and bad.any():
        i = bad.idxmax()
        col = chk.column[i]
        raise DataValidationError(
            f"{REASONS[chk.reason[i]]}, got {chk.value[i]!r}; {int(bad.sum())} bad row(s) in all",
            file=file,
            row=int(out.at[i, ROW]),
            column=col,
            expected=schema.column(col).expected if col in schema.names else None,
        )
    tr.received += len(out)
    tr.accepted += int((~bad).sum())
    _record(
        report,
        tr,
        schema,
        file,
        out.loc[bad, ROW],
        chk.column[bad],
        chk.reason[bad],
        chk.value[bad],
    )
    return out.loc[~bad].reset_index(drop=True)


def _record(
    report: ValidationReport,
    tr: TableReport,
    schema: TableSchema,
    file: str,
    rows: pd.Series,
    columns: pd.Series,
    reasons: pd.Series,
    values: pd.Series,
) -> None:
    if len(rows) == 0:
        return
    q = pd.DataFrame(
        {
            "table": schema.name,
            "file": file,
            "row": rows.to_numpy(),
            "column": columns.to_numpy(),
            "reason": reasons.to_numpy(),
            "value": values.to_numpy(),
        }
    )
    report.quarantine.append(q)
    tr.rejected.update(q["reason"].value_counts().to_dict())
    for r in q.head(MAX_EXAMPLES - len(tr.examples)).itertuples(index=False):
        exp = schema.column(r.column).expected if r.column in schema.names else ""
        tr.examples.append(
            Rejection(schema.name, file, int(r.row), r.column, r.reason, str(r.value), exp)
        )


def reject_rows(
    df: pd.DataFrame,
    mask: pd.Series,
    *,
    schema: TableSchema,
    column: str,
    reason: str,
    file: str,
    report: ValidationReport,
    strict: bool = False,
) -> pd.DataFrame:
    """Quarantine rows that fail a cross-table check (e.g. an unknown item); returns the rest."""
    mask = mask.reindex(df.index, fill_value=False)
    if not mask.any():
        return df
    if strict:
        i = mask.idxmax()
        raise DataValidationError(
            f"{REASONS[reason]}, got {df.at[i, column]!r}; {int(mask.sum())} such row(s) in all",
            file=file,
            row=int(df.at[i, ROW]),
            column=column,
            expected=schema.column(column).expected,
        )
    tr = report.table(schema.name, file)
    tr.accepted -= int(mask.sum())
    n = int(mask.sum())
    _record(
        report,
        tr,
        schema,
        file,
        df.loc[mask, ROW],
        pd.Series([column] * n),
        pd.Series([reason] * n),
        df.loc[mask, column].astype(str),
    )
    return df.loc[~mask].reset_index(drop=True)
