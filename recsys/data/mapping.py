"""Mapping files: how a shop's own exports become the canonical tables.

A mapping is a TOML file. Each table (``interactions``, ``items``, ``users``, ``audit``) has one
or more sources; each source names a file (relative to the mapping file), renames its columns
(source = canonical), sets constants and converts what the export writes differently. A full
example, for a shop that exports orders and page views separately, with millisecond timestamps
in local time, category paths and a stock quantity::

    # shop-mapping.toml -- recsys data validate --mapping shop-mapping.toml
    [[interactions]]
    file = "orders.csv"
    columns = { customer = "user_id", sku = "item_id", ordered_at = "timestamp", qty = "value" }
    constants = { event = "purchase" }
    timestamp_unit = "ms"          # "s", "ms", "us", "ns" since the epoch, or "iso"
    timezone = "Europe/Berlin"     # for date-times written without an offset

    [[interactions]]
    file = "pageviews.csv"
    columns = { visitor = "user_id", product = "item_id", seen = "timestamp", kind = "event" }
    events = { pageview = "view", basket = "cart" }   # the export's event names -> recsys's
    timestamp_unit = "iso"
    timezone = "Europe/Berlin"

    [items]
    file = "products.csv"
    columns = { sku = "item_id", name = "title", path = "category", maker = "brand",
                price_eur = "price", vendor = "seller_id", launched = "created_at" }
    category_separator = "/"       # "Kitchen/Coffee/Grinders" -> "Kitchen > Coffee > Grinders"
    in_stock_from_quantity = "stock_qty"   # in stock when the quantity is above 0
    encoding = "cp1252"            # the file is not UTF-8

    [users]
    file = "customers.csv"
    columns = { customer = "user_id", opt_in = "consent_personalization",
                newsletter = "consent_email" }
    true_values = ["J"]            # flags written J/N (y/n, yes/no, true/false, 1/0 always work)
    false_values = ["N"]

Options: ``file``, ``columns``, ``constants``, ``timestamp_unit``, ``timezone``, ``encoding``,
``delimiter``, ``true_values``/``false_values``; for interactions also ``events`` and
``rating_scale = [1, 10]`` (default 1 to 5); for items also ``category_separator`` and
``in_stock_from_quantity``. ``[[table]]`` adds one more source to a table; ``[table]`` is a
table with one source. The older form ``[interactions] customer = "user_id"`` (a plain column
renaming, with the files given on the command line) still works.
"""

from __future__ import annotations

import codecs
import tomllib
import zoneinfo
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from recsys.data.schema import CATEGORY_PATH_SEP, CATEGORY_SEP, EVENTS, RATING_SCALE, SCHEMAS
from recsys.data.validation import ROW, SourceOptions, _as_text
from recsys.errors import ConfigError, DataValidationError

TABLES = ("interactions", "items", "users", "audit")
_SOURCE_KEYS = {
    "file", "columns", "constants", "timestamp_unit", "timezone", "encoding", "delimiter",
    "category_separator", "in_stock_from_quantity", "true_values", "false_values", "events",
    "rating_scale",
}  # fmt: skip
_ONLY = {
    "events": "interactions",
    "rating_scale": "interactions",
    "category_separator": "items",
    "in_stock_from_quantity": "items",
}


class SourceMapping(BaseModel):
    """One source file of a table and how to read it (see the module docstring)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    file: str | None = None
    columns: dict[str, str] = Field(default_factory=dict)
    """Source column name -> canonical column name."""
    constants: dict[str, str | int | float | bool] = Field(default_factory=dict)
    """Canonical column -> the value every row of this file gets (``event = "purchase"``)."""
    timestamp_unit: Literal["s", "ms", "us", "ns", "iso"] | None = None
    timezone: str | None = None
    encoding: str = "utf-8"
    delimiter: str | None = None
    category_separator: str | None = None
    in_stock_from_quantity: str | None = None
    true_values: list[str] = Field(default_factory=list)
    false_values: list[str] = Field(default_factory=list)
    events: dict[str, str] = Field(default_factory=dict)
    rating_scale: tuple[float, float] | None = None

    @field_validator("timezone")
    @classmethod
    def _zone(cls, v: str | None) -> str | None:
        if v is not None:
            try:
                zoneinfo.ZoneInfo(v)
            except (zoneinfo.ZoneInfoNotFoundError, ValueError) as exc:
                raise ValueError(
                    f"unknown time zone {v!r} (expected e.g. 'Europe/Berlin')"
                ) from exc
        return v

    @field_validator("encoding")
    @classmethod
    def _encoding(cls, v: str) -> str:
        try:
            codecs.lookup(v)
        except LookupError as exc:
            raise ValueError(f"unknown encoding {v!r} (expected e.g. 'utf-8', 'cp1252')") from exc
        return v

    @field_validator("rating_scale")
    @classmethod
    def _scale(cls, v: tuple[float, float] | None) -> tuple[float, float] | None:
        if v is not None and not v[0] < v[1]:
            raise ValueError(f"rating_scale must be [lowest, highest], got {list(v)}")
        return v

    def options(self) -> SourceOptions:
        return SourceOptions(
            timestamp_unit=self.timestamp_unit,
            timezone=self.timezone,
            rating_scale=self.rating_scale or RATING_SCALE,
        )


class _MappingFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    interactions: list[SourceMapping] = Field(default_factory=list)
    items: list[SourceMapping] = Field(default_factory=list)
    users: list[SourceMapping] = Field(default_factory=list)
    audit: list[SourceMapping] = Field(default_factory=list)


def _normalize(raw: Any) -> Any:
    """``[table]`` -> one source; the older ``[table] source = "canonical"`` -> ``columns``."""
    if not isinstance(raw, dict):
        return raw
    out: dict[str, Any] = {}
    for table, value in raw.items():
        if isinstance(value, dict):
            legacy = value and all(isinstance(v, str) for v in value.values())
            legacy = legacy and not (set(value) & _SOURCE_KEYS)
            out[table] = [{"columns": value} if legacy else value]
        else:
            out[table] = value
    return out


@dataclass(frozen=True)
class DataMapping:
    """A validated mapping; ``path`` is the mapping file (source files are relative to it)."""

    tables: dict[str, tuple[SourceMapping, ...]] = field(default_factory=dict)
    path: Path | None = None

    @property
    def name(self) -> str:
        return str(self.path) if self.path else "<mapping>"

    # --- reading ---------------------------------------------------------------------------
    @classmethod
    def from_file(cls, path: str | Path) -> DataMapping:
        path = Path(path)
        try:
            raw = tomllib.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{path}: cannot read the mapping: {exc}") from exc
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: the mapping is not valid TOML: {exc}") from exc
        return cls.from_dict(raw, path=path)

    @classmethod
    def from_dict(cls, raw: dict[str, Any], *, path: Path | None = None) -> DataMapping:
        name = str(path) if path else "<mapping>"
        bad = [k for k in raw if k not in TABLES]
        if bad:
            raise ConfigError(f"{name}: unknown table(s) {bad}; expected {', '.join(TABLES)}")
        try:
            model = _MappingFile.model_validate(_normalize(raw))
        except ValidationError as exc:
            msgs = "; ".join(_where(e["loc"]) + f": {e['msg']}" for e in exc.errors())
            raise ConfigError(f"{name}: invalid mapping: {msgs}") from exc
        tables = {t: tuple(getattr(model, t)) for t in TABLES if getattr(model, t)}
        mapping = cls(tables, path)
        mapping.check()
        return mapping

    def check(self) -> None:
        for table, sources in self.tables.items():
            valid = SCHEMAS[table].names
            for i, s in enumerate(sources):
                where = f"{self.name}: [{table}]" + (f" source {i + 1}" if len(sources) > 1 else "")
                targets = [*s.columns.values(), *s.constants]
                if s.in_stock_from_quantity:
                    targets.append("in_stock")
                if table != "audit":
                    for src, target in [*s.columns.items(), *((k, k) for k in s.constants)]:
                        if target not in valid:
                            raise ConfigError(
                                f"{where} maps {src!r} to unknown column {target!r}; valid "
                                f"names for {table}: {', '.join(valid)}"
                            )
                twice = sorted({t for t in targets if targets.count(t) > 1})
                if twice:
                    raise ConfigError(f"{where} sets column(s) {twice} more than once")
                for option, only in _ONLY.items():
                    if getattr(s, option) and table != only:
                        raise ConfigError(f"{where}: {option} applies to [{only}] only")
                bad_events = sorted(set(s.events.values()) - set(EVENTS))
                if bad_events:
                    raise ConfigError(f"{where}: events maps to unknown event(s) {bad_events}")

    # --- using -----------------------------------------------------------------------------
    def sources(self, table: str) -> tuple[SourceMapping, ...]:
        return self.tables.get(table, ())

    @property
    def has_files(self) -> bool:
        return any(s.file for sources in self.tables.values() for s in sources)

    def resolve(self, source: SourceMapping) -> Path:
        """The source's file, relative to the mapping file's directory."""
        assert source.file is not None
        p = Path(source.file).expanduser()
        if not p.is_absolute() and self.path is not None:
            p = self.path.parent / p
        return p

    def apply(self, df: pd.DataFrame, table: str, source: SourceMapping, file: str) -> pd.DataFrame:
        """Rename, derive and convert the raw cells of one source file (no validation)."""
        present = [c for c in df.columns if c != ROW]
        wanted = [
            *source.columns,
            *([source.in_stock_from_quantity] if source.in_stock_from_quantity else []),
        ]
        missing = [c for c in wanted if c not in df.columns]
        if missing:
            raise DataValidationError(
                f"the mapping {self.name} names column(s) {missing} that the file does not "
                f"have; columns present: {present}",
                file=file,
                column=missing[0],
            )
        df = df.copy()
        if source.in_stock_from_quantity:
            df["__in_stock"] = _in_stock(df[source.in_stock_from_quantity])
        targets = set(source.columns.values())
        clash = [c for c in df.columns if c in targets and c not in source.columns]
        df = df.drop(columns=clash).rename(columns=source.columns)
        if source.in_stock_from_quantity:
            df = df.drop(columns=["in_stock"], errors="ignore").rename(
                columns={"__in_stock": "in_stock"}
            )
        for col, value in source.constants.items():
            df[col] = str(value).lower() if isinstance(value, bool) else str(value)
        if source.events and "event" in df.columns:
            lookup = {k.strip().lower(): v for k, v in source.events.items()}
            text = _as_text(df["event"])
            df["event"] = text.str.lower().map(lookup).fillna(text)
        if source.true_values or source.false_values:
            flags = {v.strip().lower(): "true" for v in source.true_values}
            flags |= {v.strip().lower(): "false" for v in source.false_values}
            for c in SCHEMAS[table].columns if table in SCHEMAS else ():
                if c.kind == "bool" and c.name in df.columns:
                    text = _as_text(df[c.name])
                    df[c.name] = text.str.lower().map(flags).fillna(text)
        if source.category_separator and "category" in df.columns:
            sep = source.category_separator
            df["category"] = _as_text(df["category"]).map(
                lambda cell: CATEGORY_SEP.join(
                    CATEGORY_PATH_SEP.join(p.strip() for p in part.split(sep) if p.strip())
                    for part in cell.split(CATEGORY_SEP)
                )
            )
        return df


def _in_stock(qty: pd.Series) -> pd.Series:
    """'true' above 0, 'false' at or below 0, '' when empty; other text is kept, so that
    validation counts it as a bad optional value."""
    text = _as_text(qty)
    num = pd.to_numeric(text.where(text != "", None), errors="coerce")
    out = text.copy()
    out[num > 0] = "true"
    out[num <= 0] = "false"
    return out


def _where(loc: tuple[Any, ...]) -> str:
    """A pydantic error location as the TOML a user wrote: ``[[interactions]] 2: timezone``."""
    parts = [str(p) for p in loc]
    if len(parts) >= 2 and parts[0] in TABLES and parts[1].isdigit():
        head = f"[{parts[0]}] source {int(parts[1]) + 1}"
        return ": ".join([head, *parts[2:]]) if parts[2:] else head
    return ".".join(parts) or "(top level)"


def as_mapping(mapping: DataMapping | dict[str, Any] | None) -> DataMapping:
    """A :class:`DataMapping` from a mapping, a plain ``{table: {source: canonical}}`` dict or None."""
    if mapping is None:
        return DataMapping()
    if isinstance(mapping, DataMapping):
        return mapping
    return DataMapping.from_dict({k: dict(v) for k, v in mapping.items()})
