"""Canonical table contracts: column names, which are required, and what each must hold.

Every loader maps its source onto these names; everything downstream relies on them.
"""

from __future__ import annotations

from dataclasses import dataclass

EVENTS: tuple[str, ...] = ("view", "cart", "purchase", "rating")
"""Allowed interaction event types, weakest signal first."""

CATEGORY_SEP = "|"
"""Separator of a multi-valued category cell (``Coffee|Gifts``)."""

CATEGORY_PATH_SEP = " > "
"""Separator of levels in a category path (``Grocery > Coffee``)."""

RATING_SCALE: tuple[float, float] = (1.0, 5.0)
"""Allowed values of ``rating`` events unless a mapping declares another scale."""

EARLIEST_EVENT = "1970-01-01"
"""Interactions and sign-ups before the Unix epoch are not plausible shop data."""

EARLIEST_DATE = "1800-01-01"
"""Item dates (``created_at``: e.g. a film's release) may be old, but not absurdly so."""


@dataclass(frozen=True)
class Column:
    """One canonical column.

    ``null_if_bad``: a bad cell empties this (optional) field and is counted, instead of
    rejecting the row; for items and users, rejecting the row would also reject, by cascade,
    every interaction that refers to it. ``earliest``: the earliest plausible timestamp.
    """

    name: str
    kind: str  # "id" | "text" | "timestamp" | "number" | "bool" | "event" | "category"
    required: bool
    expected: str
    null_if_bad: bool = False
    earliest: str = EARLIEST_EVENT


@dataclass(frozen=True)
class TableSchema:
    name: str
    columns: tuple[Column, ...]
    key: tuple[str, ...] = ()

    @property
    def required(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns if c.required)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)

    def column(self, name: str) -> Column:
        for c in self.columns:
            if c.name == name:
                return c
        raise KeyError(name)


INTERACTIONS = TableSchema(
    "interactions",
    (
        Column("user_id", "id", True, "a non-empty user id"),
        Column("item_id", "id", True, "a non-empty item id"),
        Column(
            "timestamp",
            "timestamp",
            True,
            "ISO-8601 date-time or Unix seconds (other units declared in the mapping), "
            "from 1970 on, not in the future",
        ),
        Column("event", "event", True, "one of " + "|".join(EVENTS)),
        Column("value", "number", False, "a non-negative number (quantity or rating)"),
    ),
)

ITEMS = TableSchema(
    "items",
    (
        Column("item_id", "id", True, "a unique, non-empty item id"),
        Column("title", "text", True, "a non-empty title"),
        Column("category", "category", True, "one or more categories separated by '|'"),
        Column("brand", "text", False, "a brand name or empty"),
        Column("price", "number", False, "a non-negative price or empty", null_if_bad=True),
        Column("seller_id", "text", False, "a seller id or empty"),
        Column("in_stock", "bool", False, "true/false, yes/no, 1/0 or empty", null_if_bad=True),
        Column(
            "created_at",
            "timestamp",
            False,
            "ISO-8601 date-time, Unix seconds or empty",
            null_if_bad=True,
            earliest=EARLIEST_DATE,
        ),
    ),
    key=("item_id",),
)

USERS = TableSchema(
    "users",
    (
        Column("user_id", "id", True, "a unique, non-empty user id"),
        Column("consent_personalization", "bool", True, "true/false, yes/no or 1/0"),
        Column("consent_email", "bool", True, "true/false, yes/no or 1/0"),
        Column(
            "signup_at",
            "timestamp",
            False,
            "ISO-8601 date-time, Unix seconds or empty",
            null_if_bad=True,
        ),
    ),
    key=("user_id",),
)

AUDIT = TableSchema(
    "audit",
    (Column("user_id", "id", True, "a unique, non-empty user id"),),
    key=("user_id",),
)
"""Protected attributes (gender, age band, region ...). Any extra column is kept as text.

Only the fairness audit may read this table; model code never receives it.
"""

SCHEMAS: dict[str, TableSchema] = {s.name: s for s in (INTERACTIONS, ITEMS, USERS, AUDIT)}
