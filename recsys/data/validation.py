"""Validation of raw tables against their contracts.

Bad rows are never dropped silently: in the default mode they go to a quarantine with the file, row,
column and reason, and are counted per reason; in strict mode the first bad row raises
:class:`~recsys.errors.DataValidationError`. A bad *optional* cell of an item or user (a price of
``abc``) empties that field and is counted instead of rejecting the row, so one typo does not
reject an item and, by cascade, its interactions. Rows that refer to a rejected item or user are
counted as a cascade, so a report can say why they went.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime

import numpy as np
import pandas as pd

from recsys.data.schema import CATEGORY_SEP, EVENTS, RATING_SCALE, TableSchema
from recsys.errors import DataValidationError

ROW = "_row"
"""Internal column carrying each row's position in its source file, as an editor shows it."""

FILE = "_file"
"""Internal column carrying each row's source file (a table may come from several files)."""

REASONS: dict[str, str] = {
    "empty_id": "id is empty",
    "empty_value": "required value is empty",
    "bad_timestamp": "timestamp cannot be parsed",
    "timestamp_unit": "number is too large for seconds since the epoch",
    "timestamp_out_of_range": "timestamp is not a plausible date (infinite or absurdly large)",
    "early_timestamp": "timestamp lies before the earliest plausible date",
    "future_timestamp": "timestamp lies in the future",
    "unknown_event": "event type is not known",
    "bad_number": "value is not a number",
    "negative_value": "value is negative",
    "rating_out_of_range": "rating lies outside the rating scale",
    "bad_bool": "value is not a yes/no flag",
    "duplicate_row": "row repeats an earlier row",
    "duplicate_key": "id repeats an earlier row's id",
    "unknown_item": "item id is not in the items table",
    "unknown_user": "user id is not in the users table",
    "rejected_item": "item id belongs to a rejected items row",
    "rejected_user": "user id belongs to a rejected users row",
    "bad_optional_value": "optional value is not valid; the field was emptied, the row kept",
    "consent_conflict": "the user's rows disagree on consent; the more restrictive value was kept",
}

CORRECTIONS = ("bad_optional_value", "consent_conflict")
"""Reasons that change a cell but keep the row (counted apart from rejections)."""

_TRUE = {"true", "t", "yes", "y", "1", "1.0"}
_FALSE = {"false", "f", "no", "n", "0", "0.0"}
MAX_EXAMPLES = 20

TIME_UNITS: dict[str, float] = {"s": 1.0, "ms": 1e3, "us": 1e6, "ns": 1e9}
"""Units of numeric epoch timestamps a mapping can declare (besides ``iso``)."""

_UNIT_NAMES = {"ms": "milliseconds", "us": "microseconds", "ns": "nanoseconds"}
_MAX_SECONDS = 9.0e9  # about the year 2255: beyond it no epoch-seconds value is a shop event
_NUMBER = r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?|[+-]?(?:inf|infinity)"
_OFFSET = r"\d{2}:\d{2}(?::\d{2}(?:[.,]\d+)?)?\s*(?:[zZ]|[+-]\d{2}(?::?\d{2})?)$"


@dataclass(frozen=True)
class SourceOptions:
    """How the cells of one source file are read (set by the mapping).

    ``timestamp_unit``: ``None`` reads ISO-8601 or Unix seconds; ``s``/``ms``/``us``/``ns``
    read numbers in that unit; ``iso`` reads ISO-8601 only. ``timezone``: the zone of date-times
    without an offset (default UTC). ``rating_scale``: allowed values of ``rating`` events.
    """

    timestamp_unit: str | None = None
    timezone: str | None = None
    rating_scale: tuple[float, float] = RATING_SCALE


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


@dataclass(frozen=True)
class Cascade:
    """Rows of one table rejected because they refer to rejected rows of another."""

    table: str
    rows: int
    ref_table: str
    refs: int
    """Distinct rejected ``ref_table`` ids these rows refer to."""
    ref_rejected: int
    """All rejected ``ref_table`` ids."""

    def text(self) -> str:
        return (
            f"{self.rows:,} {self.table} refer to {self.refs:,} of the {self.ref_rejected:,} "
            f"rejected {self.ref_table}"
        )


@dataclass
class TableReport:
    """Counts for one table: rows received, accepted, rejected per reason, cells corrected."""

    table: str
    file: str
    received: int = 0
    accepted: int = 0
    rejected: Counter[str] = field(default_factory=Counter)
    corrected: Counter[str] = field(default_factory=Counter)
    """Rows kept with a cell changed: ``bad_optional_value``, ``consent_conflict``."""
    examples: list[Rejection] = field(default_factory=list)
    rejected_keys: set[str] = field(default_factory=set)
    """Ids of rejected rows of a keyed table (items, users) that no accepted row has."""

    @property
    def n_rejected(self) -> int:
        return sum(self.rejected.values())

    @property
    def n_corrected(self) -> int:
        return sum(self.corrected.values())

    def add_file(self, file: str) -> None:
        if file not in self.file.split(", "):
            self.file = f"{self.file}, {file}" if self.file else file


REQUIRED_TABLES = ("interactions", "items")
"""Tables whose losses :meth:`ValidationReport.over_threshold` checks."""


@dataclass
class ValidationReport:
    """What validation saw across all tables of a data set; nothing rejected goes uncounted."""

    tables: dict[str, TableReport] = field(default_factory=dict)
    quarantine: list[pd.DataFrame] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    cascades: list[Cascade] = field(default_factory=list)

    def table(self, name: str, file: str) -> TableReport:
        if name not in self.tables:
            self.tables[name] = TableReport(name, file)
        else:
            self.tables[name].add_file(file)
        return self.tables[name]

    def note(self, text: str) -> None:
        if text not in self.notes:
            self.notes.append(text)

    @property
    def n_rejected(self) -> int:
        return sum(t.n_rejected for t in self.tables.values())

    @property
    def n_corrected(self) -> int:
        return sum(t.n_corrected for t in self.tables.values())

    def rejected_share(self, table: str) -> float:
        t = self.tables.get(table)
        return t.n_rejected / t.received if t is not None and t.received else 0.0

    def over_threshold(
        self, max_share: float, tables: tuple[str, ...] = REQUIRED_TABLES
    ) -> list[str]:
        """One message per required table that lost more than ``max_share`` of its rows.

        A caller stops (exit code 2) when the list is not empty: a shop whose items mostly fail
        validation should not train a model on what is left. Cascades are named.
        """
        out = []
        for name in tables:
            t = self.tables.get(name)
            if t is None or not t.received:
                continue
            share = t.n_rejected / t.received
            if share <= max_share:
                continue
            top = ", ".join(f"{r} {n:,}" for r, n in t.rejected.most_common(3))
            msg = (
                f"{name}: {t.n_rejected:,} of {t.received:,} rows rejected ({share:.1%}, more "
                f"than the allowed {max_share:.1%}; {top})"
            )
            msg += "".join(f"; {c.text()}" for c in self.cascades if c.table == name)
            out.append(msg)
        return out

    def cascade_text(self) -> str:
        """Rows rejected only because a row they refer to was rejected, one line per cascade."""
        return "\n".join(c.text() for c in self.cascades)

    def quarantined(self) -> pd.DataFrame:
        """Every rejected row and corrected cell: table, file, row, column, reason, value,
        action (``rejected``, ``nulled`` or ``restricted``) and what was expected."""
        cols = ["table", "file", "row", "column", "reason", "value", "action", "expected"]
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
                "corrected_by_reason": dict(sorted(t.corrected.items())),
            }
            for name, t in self.tables.items()
        } | {
            "cascades": [c.__dict__ for c in self.cascades],
            "notes": list(self.notes),
        }

    def to_text(self) -> str:
        lines = []
        for name, t in self.tables.items():
            lines.append(
                f"{name:<13} {t.accepted:>10,} accepted  {t.n_rejected:>8,} rejected"
                f"  of {t.received:,} rows  ({t.file})"
            )
            for reason, n in sorted(t.rejected.items()):
                lines.append(f"    {reason:<22} {n:>8,}  {REASONS[reason]}")
            for reason, n in sorted(t.corrected.items()):
                lines.append(f"    {reason:<22} {n:>8,}  {REASONS[reason]} (row kept)")
            for ex in t.examples[:5]:
                lines.append(f"    e.g. {ex.message()}")
        lines.extend(f"cascade: {c.text()}" for c in self.cascades)
        lines.extend(f"note: {n}" for n in self.notes)
        lines.append(f"total rejected: {self.n_rejected:,}")
        return "\n".join(lines)


def _as_text(s: pd.Series) -> pd.Series:
    """Cells as stripped strings; missing values become ''."""
    if pd.api.types.is_float_dtype(s):
        # ids read from Parquet as float (because of NaN) should not gain a '.0'
        finite = np.isfinite(s.to_numpy(dtype=float, na_value=np.nan))
        whole = pd.Series(finite, index=s.index) & (s == np.floor(s.where(finite, 0).fillna(0)))
        whole &= s.abs() < 2**53
        out = s.astype(object).where(~whole, s[whole].astype("Int64").astype(str))
        return out.where(s.notna(), "").astype(str).str.strip()
    return s.astype(object).where(s.notna(), "").astype(str).str.strip()


def ids_as_text(s: pd.Series) -> pd.Series:
    """Ids as every loader stores them: stripped text, whole floats without ``.0`` (Parquet
    reads an id column with gaps as float). Erasure matches ids with this, not a copy of it."""
    return _as_text(s)


def _utc(ts: pd.Series, tz: str | None) -> pd.Series:
    if ts.dt.tz is None:
        ts = ts.dt.tz_localize(tz or "UTC", ambiguous="NaT", nonexistent="NaT")
    return ts.dt.tz_convert("UTC").dt.as_unit("s")


def classify_timestamps(
    s: pd.Series, unit: str | None = None, timezone: str | None = None
) -> tuple[pd.Series, pd.Series]:
    """Parse timestamps to UTC seconds; returns (values, problem) with problem '' when fine.

    Problems: ``bad_timestamp``, ``timestamp_out_of_range`` (inf, 1e308) and
    ``timestamp_unit:ms`` (``us``/``ns``) when numbers read as seconds would lie centuries
    ahead but fit that unit. Nothing here raises on any input.
    """
    problem = pd.Series("", index=s.index, dtype=object)
    out = pd.Series(pd.NaT, index=s.index, dtype="datetime64[s, UTC]")
    if pd.api.types.is_datetime64_any_dtype(s):
        out = _utc(s, timezone)
        problem[s.notna() & out.isna()] = "bad_timestamp"
        return out, problem
    if pd.api.types.is_numeric_dtype(s) and not pd.api.types.is_bool_dtype(s):
        num = pd.to_numeric(s, errors="coerce").astype(float)
        text = pd.Series("", index=s.index, dtype=object)
    else:
        text = _as_text(s)
        is_num = text.str.fullmatch(_NUMBER, case=False)
        num = pd.to_numeric(text.where(is_num, None), errors="coerce").astype(float)
    has_num = num.notna()
    if unit == "iso":
        problem[has_num] = "bad_timestamp"
        has_num[:] = False
    if has_num.any():
        values = num.to_numpy(dtype=float, na_value=np.nan)
        finite = pd.Series(np.isfinite(values), index=s.index) & has_num
        problem[has_num & ~finite] = "timestamp_out_of_range"
        secs = num / TIME_UNITS[unit or "s"]
        ok = finite & (secs.abs() <= _MAX_SECONDS)
        big = finite & ~ok
        if unit is None:
            mag = num.abs()
            for guess, lo, hi in (("ms", 1e11, 1e14), ("us", 1e14, 1e17), ("ns", 1e17, 1e20)):
                problem[big & (mag >= lo) & (mag < hi)] = f"timestamp_unit:{guess}"
        problem[big & (problem == "")] = "timestamp_out_of_range"
        if ok.any():
            whole = np.round(secs[ok].to_numpy()).astype("int64")
            out[ok] = pd.to_datetime(whole, unit="s", utc=True).as_unit("s")
    rest = ~has_num & (text != "") & (problem == "")
    if rest.any():
        t = text[rest]
        if timezone is None:
            parsed = pd.to_datetime(t, format="ISO8601", utc=True, errors="coerce")
            out[rest] = parsed.dt.as_unit("s")
        else:
            aware = t.str.contains(_OFFSET, regex=True)
            if aware.any():
                p = pd.to_datetime(t[aware], format="ISO8601", utc=True, errors="coerce")
                out[p.index] = p.dt.as_unit("s")
            if (~aware).any():
                p = pd.to_datetime(t[~aware], format="ISO8601", errors="coerce")
                if p.dt.tz is None:
                    p = _utc(p, timezone)
                out[p.index] = p.dt.tz_convert("UTC").dt.as_unit("s")
        problem[rest & out.isna()] = "bad_timestamp"
    return out, problem


def parse_timestamps(s: pd.Series) -> tuple[pd.Series, pd.Series]:
    """Parse ISO-8601 strings, Unix seconds or datetimes to UTC seconds; returns (values, bad)."""
    out, problem = classify_timestamps(s)
    return out, problem != ""


def unit_hint(unit: str) -> str:
    """What to do about epoch numbers that look like ``unit`` (ms, us or ns)."""
    factor = f"{TIME_UNITS[unit]:,.0f}"
    return (
        f"values look like {_UNIT_NAMES[unit]} since the epoch; divide by {factor} or declare "
        f'the unit in the mapping (timestamp_unit = "{unit}")'
    )


def parse_bools(s: pd.Series) -> tuple[pd.Series, pd.Series]:
    if pd.api.types.is_bool_dtype(s):
        return s.astype(bool), pd.Series(False, index=s.index)
    text = _as_text(s).str.lower()
    ok = text.isin(_TRUE | _FALSE)
    return text.isin(_TRUE), ~ok


class _RowChecker:
    """Collects per-row failures for one table; the first failure of a row is the one counted.

    Bad optional cells that may be emptied are collected apart (:meth:`null`): the row stays.
    """

    def __init__(self, df: pd.DataFrame, schema: TableSchema, file: str) -> None:
        self.df = df
        self.schema = schema
        self.file = file
        self.reason = pd.Series("", index=df.index, dtype=object)
        self.column = pd.Series("", index=df.index, dtype=object)
        self.value = pd.Series("", index=df.index, dtype=object)
        self.expected = pd.Series("", index=df.index, dtype=object)
        self.nulled: list[tuple[pd.Series, str, pd.Series]] = []

    def fail(
        self, mask: pd.Series, column: str, reason: str, raw: pd.Series, expected: str = ""
    ) -> None:
        new = mask & (self.reason == "")
        if new.any():
            self.reason[new] = reason
            self.column[new] = column
            self.value[new] = _as_text(raw[new])
            if expected:
                self.expected[new] = expected

    def check(self, mask: pd.Series, column: str, reason: str, raw: pd.Series) -> pd.Series:
        """Fail the rows, or for a ``null_if_bad`` column note the cells; returns ``mask``."""
        if self.schema.column(column).null_if_bad:
            if mask.any():
                self.nulled.append((mask.copy(), column, _as_text(raw[mask])))
        else:
            self.fail(mask, column, reason, raw)
        return mask

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
    options: SourceOptions | None = None,
    dedupe: bool = True,
) -> pd.DataFrame:
    """Check and type one raw table; returns the accepted rows with canonical dtypes.

    ``raw`` must already carry canonical column names (loaders apply the column mapping) and may
    carry the ``_row`` column with source row numbers. Missing required columns always raise.
    ``dedupe=False`` leaves duplicate checks to the caller (a table read from several files is
    checked once all are read: :func:`dedupe_table`).
    """
    opts = options or SourceOptions()
    missing = [c for c in schema.required if c not in raw.columns]
    if missing:
        present = ", ".join(repr(c) for c in raw.columns if c not in (ROW, FILE)) or "none"
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
    out[FILE] = pd.Categorical([file] * len(df))
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
            out[col.name] = _check_timestamps(s, col.name, chk, report, opts, now_ts)
        elif col.kind == "number":
            if pd.api.types.is_numeric_dtype(s):
                num = pd.to_numeric(s, errors="coerce").astype(float)
                bad = pd.Series(~np.isfinite(num.fillna(0).to_numpy()), index=s.index)
            else:
                text = _as_text(s)
                num = pd.to_numeric(text.where(text != "", None), errors="coerce").astype(float)
                bad = (num.isna() & (text != "")) | ~np.isfinite(num.fillna(0))
            bad = chk.check(bad, col.name, "bad_number", s)
            neg = chk.check(num < 0, col.name, "negative_value", s)
            out[col.name] = num.where(~(bad | neg))
        elif col.kind == "bool":
            flags, bad = parse_bools(s)
            if not col.required:
                bad &= _as_text(s) != ""
            chk.check(bad, col.name, "bad_bool", s)
            out[col.name] = flags.astype(bool)

    if "event" in out.columns and "value" in out.columns:
        lo, hi = opts.rating_scale
        rating = (out["event"] == "rating") & out["value"].notna()
        outside = rating & ((out["value"] < lo) | (out["value"] > hi))
        chk.fail(
            outside, "value", "rating_out_of_range", df["value"],
            expected=f"a rating from {lo:g} to {hi:g} (declare rating_scale in the mapping "
            "for another scale)",
        )  # fmt: skip

    if schema.name == "audit":  # protected attributes: keep every extra column as text
        for c in df.columns:
            if c not in out.columns:
                out[c] = _as_text(df[c]).astype(str)
    if schema.name == "items":  # a shop's own attributes: the policy decides who reads them
        for c in df.columns:
            if c not in out.columns and not str(c).startswith("_"):
                out[c] = df[c] if pd.api.types.is_numeric_dtype(df[c]) else _as_text(df[c])

    accepted = _finish(out, chk, schema, file, report, strict)
    return dedupe_table(accepted, schema, report, strict=strict) if dedupe else accepted


def _check_timestamps(
    s: pd.Series,
    name: str,
    chk: _RowChecker,
    report: ValidationReport,
    opts: SourceOptions,
    now: pd.Timestamp,
) -> pd.Series:
    col = chk.schema.column(name)
    ts, problem = classify_timestamps(s, opts.timestamp_unit, opts.timezone)
    for code in sorted(set(problem.unique()) - {""}):
        mask = problem == code
        if code.startswith("timestamp_unit:"):
            unit = code.split(":", 1)[1]
            hint = unit_hint(unit)
            if not col.null_if_bad:
                chk.fail(mask, name, "timestamp_unit", s, expected=hint)
            else:
                chk.check(mask, name, "timestamp_unit", s)
            report.note(f"{chk.file}, column {name!r}: {int(mask.sum()):,} {hint}")
        else:
            chk.check(mask, name, code, s)
    early = ts < pd.Timestamp(col.earliest, tz="UTC")
    chk.check(early, name, "early_timestamp", s)
    if col.required:
        chk.fail(ts.isna() & (problem == ""), name, "bad_timestamp", s)
        chk.fail(ts > now, name, "future_timestamp", s)
    return ts.where(~early & (problem == ""))


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
        expected = chk.expected[i] or (schema.column(col).expected if col in schema.names else None)
        raise DataValidationError(
            f"{REASONS[chk.reason[i]]}, got {chk.value[i]!r}; {int(bad.sum())} bad row(s) in all",
            file=file,
            row=int(out.at[i, ROW]),
            column=col,
            expected=expected,
        )
    tr.received += len(out)
    tr.accepted += int((~bad).sum())
    expected = chk.expected.where(
        chk.expected != "",
        chk.column.map(lambda c: schema.column(c).expected if c in schema.names else ""),
    )
    _record(report, tr, schema, out.loc[bad], chk.column[bad], chk.reason[bad], chk.value[bad],
            expected[bad])  # fmt: skip
    if schema.key:
        keys = set(out.loc[bad, schema.key[0]]) - {""}
        tr.rejected_keys |= keys - set(out.loc[~bad, schema.key[0]])
    for mask, column, values in chk.nulled:
        kept = mask & ~bad
        if not kept.any():
            continue
        c = schema.column(column)
        out.loc[kept, column] = False if c.kind == "bool" else np.nan
        n = int(kept.sum())
        _record(report, tr, schema, out.loc[kept], pd.Series([column] * n),
                pd.Series(["bad_optional_value"] * n), values[kept[mask]],
                pd.Series([c.expected] * n), action="nulled")  # fmt: skip
    return out.loc[~bad].reset_index(drop=True)


def _record(
    report: ValidationReport,
    tr: TableReport,
    schema: TableSchema,
    rows: pd.DataFrame,
    columns: pd.Series,
    reasons: pd.Series,
    values: pd.Series,
    expected: pd.Series,
    *,
    action: str = "rejected",
) -> None:
    """Append quarantine entries for ``rows`` (which carry ``_row`` and ``_file``) and count them."""
    if len(rows) == 0:
        return
    q = pd.DataFrame(
        {
            "table": schema.name,
            "file": rows[FILE].astype(str).to_numpy(),
            "row": rows[ROW].to_numpy(),
            "column": columns.to_numpy(),
            "reason": reasons.to_numpy(),
            "value": values.astype(str).to_numpy(),
            "action": action,
            "expected": expected.to_numpy(),
        }
    )
    report.quarantine.append(q)
    counts = q["reason"].value_counts().to_dict()
    (tr.rejected if action == "rejected" else tr.corrected).update(counts)
    if action != "rejected":
        return
    for r in q.head(MAX_EXAMPLES - len(tr.examples)).itertuples(index=False):
        tr.examples.append(
            Rejection(schema.name, r.file, int(r.row), r.column, r.reason, r.value, r.expected)
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
    """Quarantine rows that fail a cross-row check (e.g. an unknown item); returns the rest.

    Rows carrying ``_file`` are reported under their own file, else under ``file``.
    """
    mask = mask.reindex(df.index, fill_value=False)
    if not mask.any():
        return df
    rows = df.loc[mask]
    if FILE not in rows.columns:
        rows = rows.assign(**{FILE: file})
    if strict:
        i = mask.idxmax()
        raise DataValidationError(
            f"{REASONS[reason]}, got {df.at[i, column]!r}; {int(mask.sum())} such row(s) in all",
            file=str(rows[FILE].iloc[0]),
            row=int(df.at[i, ROW]),
            column=column,
            expected=schema.column(column).expected,
        )
    tr = report.table(schema.name, file)
    n = int(mask.sum())
    tr.accepted -= n
    if schema.key and column == schema.key[0] and reason != "duplicate_key":
        tr.rejected_keys |= set(rows[column]) - set(df.loc[~mask, column])
    _record(report, tr, schema, rows, pd.Series([column] * n), pd.Series([reason] * n),
            rows[column].astype(str), pd.Series([schema.column(column).expected] * n))  # fmt: skip
    return df.loc[~mask].reset_index(drop=True)


def dedupe_table(
    df: pd.DataFrame, schema: TableSchema, report: ValidationReport, *, strict: bool = False
) -> pd.DataFrame:
    """Reject repeated keys (items, users) or repeated rows (interactions) after the first.

    Users repeated with different consent flags keep the more restrictive value: any 'no'
    among a user's rows wins, and each such user is counted as ``consent_conflict``.
    """
    if df.empty:
        return df
    file = str(df[FILE].iloc[0]) if FILE in df.columns else ""
    if schema.name == "users":
        df = _restrict_consent(df, schema, report)
    if schema.key:
        key = schema.key[0]
        dup = df.duplicated(list(schema.key), keep="first")
        return reject_rows(df, dup, schema=schema, column=key, reason="duplicate_key",
                           file=file, report=report, strict=strict)  # fmt: skip
    data_cols = [c for c in schema.names if c in df.columns]
    dup = df.duplicated(data_cols, keep="first")
    return reject_rows(df, dup, schema=schema, column=data_cols[0], reason="duplicate_row",
                       file=file, report=report, strict=strict)  # fmt: skip


CONSENT_FLAGS = ("consent_personalization", "consent_email")


def _restrict_consent(
    df: pd.DataFrame, schema: TableSchema, report: ValidationReport
) -> pd.DataFrame:
    flags = [c for c in CONSENT_FLAGS if c in df.columns]
    repeated = df["user_id"].duplicated(keep=False)
    if not flags or not repeated.any():
        return df
    df = df.copy()
    grouped = df.loc[repeated].groupby("user_id", sort=False)
    conflict = pd.Series(False, index=df.index)
    for c in flags:
        strictest = grouped[c].transform("all")
        changed = strictest != df.loc[repeated, c]
        conflict[changed[changed].index] = True
        df.loc[repeated, c] = strictest
    users = df.loc[conflict, "user_id"].unique()
    if len(users) == 0:
        return df
    first = df.loc[df["user_id"].isin(users) & ~df["user_id"].duplicated(keep="first")]
    n = len(first)
    tr = report.table(schema.name, str(first[FILE].iloc[0]) if FILE in first else "")
    _record(report, tr, schema, first, pd.Series(["consent_personalization"] * n),
            pd.Series(["consent_conflict"] * n), first["user_id"].astype(str),
            pd.Series(["one consent value per user"] * n), action="restricted")  # fmt: skip
    return df
