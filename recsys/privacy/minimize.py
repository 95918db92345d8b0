"""Data minimization: the only way data reaches model code.

:func:`minimize` applies a purpose's policy (fields, consent, retention window, history cap) and
pseudonymizes user ids; it returns :class:`MinimizedData`, the only input type that training
accepts, and a report of what was removed.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import pandas as pd

from recsys.data.dataset import Dataset
from recsys.data.splits import by_user_and_time
from recsys.privacy.policy import MODEL_PURPOSES, Policy, ProtectedAttributeError
from recsys.privacy.pseudonym import Pseudonymizer


@dataclass(frozen=True)
class MinimizationReport:
    purpose: str
    fields_dropped: dict[str, list[str]]
    rows_received: int
    removed_by_consent: int
    removed_by_erasure: int
    removed_by_min_rating: int
    removed_by_retention: int
    removed_by_history_cap: int
    rows_kept: int
    cells_received: int
    cells_kept: int
    users_without_consent: int
    pseudonymized: bool
    rows_retained: int = 0
    """Rows kept for shop-wide numbers and the seen-item memory (before cap and min_rating)."""

    def to_dict(self) -> dict[str, object]:
        return dict(self.__dict__)

    def to_text(self) -> str:
        dropped = ", ".join(f"{t}.{c}" for t, cs in self.fields_dropped.items() for c in cs)
        share = self.cells_kept / self.cells_received if self.cells_received else 0.0
        return "\n".join(
            [
                f"purpose: {self.purpose}",
                f"fields dropped: {dropped or 'none'}",
                f"interactions received: {self.rows_received:,}",
                f"  removed by consent:       {self.removed_by_consent:,}"
                f" ({self.users_without_consent:,} users without consent)",
                f"  removed by erasure:       {self.removed_by_erasure:,}",
                f"  removed as weak ratings:  {self.removed_by_min_rating:,}",
                f"  removed by retention:     {self.removed_by_retention:,}",
                f"  removed by history cap:   {self.removed_by_history_cap:,}",
                f"interactions kept: {self.rows_kept:,}"
                f" (retained for shop-wide numbers and seen items: {self.rows_retained:,})",
                f"cells kept: {self.cells_kept:,} of {self.cells_received:,} ({share:.1%})",
                f"user ids pseudonymized: {'yes' if self.pseudonymized else 'no'}",
            ]
        )


@dataclass(frozen=True)
class MinimizedData:
    """Interactions, items and users reduced to what one purpose may read.

    There is no audit table here and no column a policy calls protected: construction fails if
    one slips in, so a protected attribute cannot reach a model by any path.
    """

    interactions: pd.DataFrame
    items: pd.DataFrame
    users: pd.DataFrame
    purpose: str
    as_of: pd.Timestamp
    """Reference time of the retention window (the request or training time)."""
    protected: frozenset[str] = frozenset()
    report: MinimizationReport | None = field(default=None, compare=False)
    shop: pd.DataFrame | None = field(default=None, compare=False)
    """Every interaction the purpose retains (consent, erasure and retention applied, but not
    the history cap or ``min_rating``): shop-wide numbers in reasons are counted over these, and
    the customer's memory of items already seen comes from them. ``None``: the same as
    ``interactions``."""

    @property
    def retained(self) -> pd.DataFrame:
        """The rows shop-wide statistics and the seen-item memory are computed from."""
        return self.interactions if self.shop is None else self.shop

    def __post_init__(self) -> None:
        for name in ("interactions", "items", "users"):
            cols = getattr(self, name).columns
            leaked = sorted(c for c in cols if c.lower() in self.protected)
            if leaked:
                raise ProtectedAttributeError(
                    f"protected attribute(s) {leaked} in the {name} table: model code never "
                    "receives protected attributes (only the fairness audit reads them)"
                )


def cap_history(inter: pd.DataFrame, cap: int) -> pd.Series:
    """Which events to keep so that each user has at most their ``cap`` newest (a mask)."""
    ordered, pos, n = by_user_and_time(inter)
    return pd.Series(n - 1 - pos < cap, index=ordered.index).reindex(inter.index)


def weak_ratings(inter: pd.DataFrame, min_rating: float) -> pd.Series:
    """Rating events below ``min_rating`` (a mask); other events are never weak."""
    return (inter["event"] == "rating") & (inter["value"] < min_rating)


def minimize(
    data: Dataset,
    policy: Policy,
    purpose: str,
    *,
    now: datetime | pd.Timestamp | None = None,
    pseudonymizer: Pseudonymizer | None = None,
    erased: Iterable[str] = (),
) -> MinimizedData:
    """Reduce ``data`` to what ``purpose`` may read under ``policy``.

    Order: fields, consent, erasure (``erased`` holds the tombstones: pseudonyms, or raw ids
    when no pseudonymizer is used), retention window (relative to ``now``, default the current
    time), per-user history cap (newest events kept), then pseudonymous user ids.
    """
    if purpose not in MODEL_PURPOSES:
        raise ProtectedAttributeError(
            f"purpose {purpose!r} is not a model purpose; model data can only be minimized for "
            f"{list(MODEL_PURPOSES)}"
        )
    pp = policy.purpose(purpose)
    as_of = pd.Timestamp(now if now is not None else datetime.now(UTC))
    if as_of.tzinfo is None:
        as_of = as_of.tz_localize("UTC")
    protected = frozenset(p.lower() for p in policy.protected_attributes)

    dropped: dict[str, list[str]] = {}
    tables: dict[str, pd.DataFrame] = {}
    cells_in = 0
    for name in ("interactions", "items", "users"):
        df: pd.DataFrame = getattr(data, name)
        cells_in += df.size
        keep = [c for c in df.columns if pp.allows(name, c) and c.lower() not in protected]
        gone = [c for c in df.columns if c not in keep]
        if gone:
            dropped[name] = gone
        tables[name] = df[keep]
    if data.audit is not None:
        cells_in += data.audit.size
        dropped["audit"] = list(data.audit.columns)

    inter = tables["interactions"]
    users = tables["users"]
    received = len(inter)
    no_consent = pd.Index([], dtype=object)
    if pp.consent:
        flag = data.users[pp.consent].to_numpy(dtype=bool)
        no_consent = pd.Index(data.users.loc[~flag, "user_id"])
    mask = inter["user_id"].isin(no_consent)
    removed_consent = int(mask.sum())
    inter = inter.loc[~mask]
    erased = set(erased)
    removed_erasure = 0
    if erased:
        key = pseudonymizer.many(inter["user_id"]) if pseudonymizer else inter["user_id"].to_numpy()
        gone = pd.Series(pd.Index(key).isin(erased), index=inter.index)
        removed_erasure = int(gone.sum())
        inter = inter.loc[~gone]
        ukey = (
            pseudonymizer.many(users["user_id"]) if pseudonymizer else users["user_id"].to_numpy()
        )
        users = users.loc[~pd.Index(ukey).isin(erased)]
    removed_retention = 0
    if pp.retention_days is not None:
        old = inter["timestamp"] < as_of - pd.Timedelta(days=pp.retention_days)
        removed_retention = int(old.sum())
        inter = inter.loc[~old]
    shop = inter  # every retained row: shop-wide numbers and the seen-item memory
    removed_weak = 0
    if pp.min_rating is not None and "value" in inter:
        weak = weak_ratings(inter, pp.min_rating)
        removed_weak = int(weak.sum())
        inter = inter.loc[~weak]
    removed_cap = 0
    if pp.history_cap is not None and len(inter):
        keep = cap_history(inter, pp.history_cap)
        removed_cap = int((~keep).sum())
        inter = inter.loc[keep]
    if pseudonymizer is not None:
        keyed = pd.Series(pseudonymizer.many(shop["user_id"]), index=shop.index)
        shop = shop.assign(user_id=keyed)
        inter = inter.assign(user_id=keyed.loc[inter.index])
        users = users.assign(user_id=pseudonymizer.many(users["user_id"]))
    inter = inter.reset_index(drop=True)
    shop = shop.reset_index(drop=True)
    items = tables["items"].reset_index(drop=True)
    users = users.reset_index(drop=True)
    cells_kept = inter.size + items.size + users.size
    report = MinimizationReport(
        purpose=purpose,
        fields_dropped=dropped,
        rows_received=received,
        removed_by_consent=removed_consent,
        removed_by_erasure=removed_erasure,
        removed_by_min_rating=removed_weak,
        removed_by_retention=removed_retention,
        removed_by_history_cap=removed_cap,
        rows_kept=len(inter),
        cells_received=cells_in,
        cells_kept=cells_kept,
        users_without_consent=len(no_consent),
        pseudonymized=pseudonymizer is not None,
        rows_retained=len(shop),
    )
    return MinimizedData(inter, items, users, purpose, as_of, protected, report, shop=shop)
