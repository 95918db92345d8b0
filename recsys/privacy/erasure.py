"""The right to erasure and the right of access, for a model directory and a data directory.

Erasure first records a tombstone (the pseudonym only, and the id of the key that made it) in
the consent store, so a failure part-way can never let the next training run re-learn the
customer; then it removes their rows from the stored data tables, their consent record and their
place in the model (history, user factor; the touched items' factors re-solved), and saves the
model as a new version (older versions are deleted). Ids are matched with the loaders' own
normalization (:func:`recsys.data.validation.ids_as_text`). Training refuses to run while
tombstones exist that the key in use cannot match. The only request log is the audit trail
(:mod:`recsys.audit`), in the consent store's database: the customer's records there, and their
feedback, are erased too.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from recsys import atomic
from recsys.data.loaders import TABLES, read_table
from recsys.data.mapping import DataMapping, SourceMapping
from recsys.data.validation import ROW, ids_as_text
from recsys.errors import (
    DataValidationError,
    ErasureError,
    KeyMismatchError,
    RecsysError,
    TombstoneKeyError,
)
from recsys.privacy.consent import RAW_IDS, ConsentStore
from recsys.privacy.pseudonym import Pseudonymizer

if TYPE_CHECKING:
    from recsys.model.fitted import FittedModel

USER_TABLES = ("interactions", "users", "audit")
"""The tables keyed by user: each must have a ``user_id`` column to be erased from."""


@dataclass
class ErasureReport:
    pseudonym: str
    model: dict[str, int] = field(default_factory=dict)
    data_rows: dict[str, int] = field(default_factory=dict)
    tombstone: str | None = None
    state: dict[str, int] = field(default_factory=dict)
    """Rows removed from the state database besides consent: audit records, feedback."""
    logs: str = "no request logs besides the audit trail"

    @property
    def known(self) -> bool:
        """Whether anything about the customer was found (history, factor, consent, rows)."""
        found = (self.model.get(k, 0) for k in ("events", "user_factors", "consent_records"))
        return any(found) or any(self.data_rows.values()) or any(self.state.values())

    def to_text(self) -> str:
        lines = [f"erased user (pseudonym {self.pseudonym})"]
        if not self.known:
            lines = [
                f"unknown user (pseudonym {self.pseudonym}): not in the model, the data or the "
                "consent store; nothing was removed"
            ]
        for k, v in self.model.items():
            lines.append(f"  model: {k.replace('_', ' ')}: {v:,}")
        for f, n in self.data_rows.items():
            lines.append(f"  data: {f}: {n:,} rows removed")
        for k, v in self.state.items():
            lines.append(f"  state database: {k.replace('_', ' ')}: {v:,}")
        if self.tombstone:
            lines.append(f"  tombstone recorded in {self.tombstone}")
        lines.append(f"  logs: {self.logs}")
        return "\n".join(lines)


def normalize_id(user_id: Any) -> str:
    """``user_id`` as the loaders store ids (surrounding spaces dropped, ``12.0`` -> ``12``)."""
    return str(ids_as_text(pd.Series([user_id])).iloc[0])


def key_id_of(pseudonymizer: Pseudonymizer | None) -> str:
    """The key id tombstones made with ``pseudonymizer`` carry (raw ids without one)."""
    return pseudonymizer.key_id if pseudonymizer is not None else RAW_IDS


def tombstones_for(store: ConsentStore, pseudonymizer: Pseudonymizer | None) -> set[str]:
    """The tombstones a training run with ``pseudonymizer`` must apply.

    Raises :class:`TombstoneKeyError` when some were made with another key (or before the
    store recorded keys): this key cannot recognize those customers, so training would learn
    them again."""
    by_key = store.erased_by_key()
    mine = key_id_of(pseudonymizer)
    foreign = {k: len(v) for k, v in by_key.items() if k != mine}
    if foreign:
        raise TombstoneKeyError(
            f"refusing to train: {sum(foreign.values()):,} erased customer(s) were recorded with "
            f"another pseudonymization key (key id {', '.join(sorted(foreign))}) than the one in "
            f"use (key id {mine}); this key cannot recognize them, so they would be learned again. "
            "Train with the key they were made with (--key-file, --state-dir or "
            "RECSYS_PSEUDONYM_KEY)"
        )
    return by_key.get(mine, set())


def erase_accountability(store: ConsentStore, key: str) -> dict[str, int]:
    """Delete the customer's audit records and feedback, kept in the consent store's database
    (a store without a database file keeps neither)."""
    from recsys.audit.feedback import FeedbackStore
    from recsys.audit.trail import SQLiteAuditTrail

    path = getattr(store, "path", None)
    if not isinstance(path, str) or path == ":memory:":
        return {}
    return {
        "audit_records": SQLiteAuditTrail(path).delete_user(key),
        "feedback_records": FeedbackStore(path).delete_user(key),
    }


def erase_in_model(
    model: FittedModel, store: ConsentStore, user_id: str, pseudonymizer: Pseudonymizer | None
) -> tuple[FittedModel, dict[str, int]]:
    """Tombstone first, then the consent record, then a new model without the user (the given
    one is left as it was, for requests in flight). Returns the new model and the counts."""
    uid = normalize_id(user_id)
    key = pseudonymizer(uid) if pseudonymizer is not None else uid
    store.mark_erased(key, key_id_of(pseudonymizer))
    removed_consent = int(store.delete(key))
    state = erase_accountability(store, key)
    new, removed = model.without_user(key)
    return new, {**removed, "consent_records": removed_consent, **state}


@dataclass(frozen=True)
class SourceFile:
    """One stored file that holds customers' rows: where it is, and how its user column is named
    (a mapped export keeps the shop's own column names)."""

    path: Path
    table: str
    user_column: str = "user_id"
    encoding: str = "utf-8"
    delimiter: str | None = None


def _table_files(directory: Path) -> list[Path]:
    if (directory / "u.data").exists():
        raise DataValidationError(
            "MovieLens research data is read-only here; erase from your own copy of the source",
            file=str(directory),
        )
    if not directory.is_dir():
        raise DataValidationError("no such data directory", file=str(directory))
    return [
        directory / f"{t}.{ext}"
        for t in TABLES
        for ext in ("parquet", "csv")
        if (directory / f"{t}.{ext}").exists()
    ]


def _user_column(source: SourceMapping | None) -> str:
    """The source column a mapping renames to ``user_id`` (``user_id`` when none does)."""
    if source is not None:
        for src, canonical in source.columns.items():
            if canonical == "user_id":
                return src
    return "user_id"


def source_files(
    data_dir: str | Path | None = None,
    mapping: DataMapping | None = None,
    files: dict[str, str | Path | None] | None = None,
) -> list[SourceFile]:
    """The stored files of a data set as the loaders read it: a data directory's tables, the
    files a mapping names (several per table), or explicit files per table (which replace the
    mapping's files for that table, as in :func:`recsys.data.load_dataset`)."""
    mapping = mapping or DataMapping()
    given = {t: f for t, f in (files or {}).items() if f is not None}
    out: list[SourceFile] = []
    if data_dir is not None:
        for path in _table_files(Path(data_dir)):
            if path.stem in given:
                continue
            spec = next(iter(mapping.sources(path.stem)), None)
            out.append(SourceFile(path, path.stem, _user_column(spec)))
    for table in TABLES:
        specs = mapping.sources(table)
        if table in given:
            spec = specs[0] if specs else SourceMapping()
            paths = [(Path(given[table]), spec)]  # type: ignore[arg-type]
        elif data_dir is None:
            paths = [(mapping.resolve(s), s) for s in specs if s.file]
        else:
            paths = []
        for path, spec in paths:
            out.append(SourceFile(path, table, _user_column(spec), spec.encoding, spec.delimiter))
    return out


Plan = tuple[SourceFile, pd.DataFrame, int]
"""A file to rewrite, the table without the user's rows, and how many rows go."""


def plan_source_erasure(files: list[SourceFile], user_id: str) -> list[Plan]:
    """Each file that holds the user: the file, its rows without them, rows removed. Reads every
    file before anything is changed, so a corrupt file stops the erasure before it has
    rewritten another. Ids are matched as the loaders normalize them."""
    plans = []
    uid = normalize_id(user_id)
    for src in files:
        df = read_table(src.path, encoding=src.encoding, delimiter=src.delimiter)
        if src.user_column not in df.columns:
            if src.table in USER_TABLES:
                raise DataValidationError(
                    f"no {src.user_column!r} column, so the user's rows cannot be found",
                    file=str(src.path),
                    expected="the user id column the mapping names (or `user_id`)",
                )
            continue
        mask = (ids_as_text(df[src.user_column]) == uid).to_numpy()
        if mask.any():
            plans.append((src, df.loc[~mask].drop(columns=[ROW]), int(mask.sum())))
    return plans


def plan_data_erasure(directory: str | Path, user_id: str) -> list[Plan]:
    """:func:`plan_source_erasure` for the tables of a data directory."""
    return plan_source_erasure(source_files(directory), user_id)


def _write_table(src: SourceFile, df: pd.DataFrame) -> None:
    path = src.path
    if path.suffix.lower() in (".parquet", ".pq"):
        atomic.write_atomic(path, lambda p: df.to_parquet(p, index=False))
    else:
        sep = src.delimiter or ("\t" if path.suffix.lower() == ".tsv" else ",")
        atomic.write_atomic(
            path, lambda p: df.to_csv(p, index=False, sep=sep, encoding=src.encoding)
        )


def apply_data_erasure(plans: list[Plan]) -> dict[str, int]:
    """Write the tables of :func:`plan_source_erasure` (atomic per file, through
    :mod:`recsys.atomic`; leftovers of killed earlier rewrites are deleted first). Returns rows
    removed per file."""
    removed = {}
    for src, rest, n in plans:
        for leftover in atomic.leftovers(src.path.parent, src.path.name):
            atomic.remove(leftover)
        _write_table(src, rest)
        removed[str(src.path)] = n
    return removed


def erase_from_data_dir(directory: str | Path, user_id: str) -> dict[str, int]:
    """Rewrite each table of a data directory without the user's rows (atomic per file)."""
    return apply_data_erasure(plan_data_erasure(directory, user_id))


def forget(
    user_id: str,
    pseudonymizer: Pseudonymizer,
    store: ConsentStore,
    *,
    model_dir: str | Path | None = None,
    data_dir: str | Path | None = None,
    files: list[SourceFile] | None = None,
) -> ErasureReport:
    """Erase ``user_id`` everywhere recsys stores it; the report names only the pseudonym.

    Order: check the model's key (a tombstone under the wrong key would match nobody), record
    the tombstone, read every data table, then rewrite the tables, delete the consent record,
    remove the user from the model and save it. A failure after the tombstone raises
    :class:`ErasureError` and leaves the tombstone, so training still leaves the user out.
    ``report.known`` is false when nothing about the user was found. ``files`` are the stored
    source files to rewrite (:func:`source_files`; a mapped export's files); ``data_dir`` is
    the shorthand for a data directory's tables."""
    from recsys.model.artifacts import load_model, save_model

    uid = normalize_id(user_id)
    report = ErasureReport(pseudonymizer(uid))
    model, failure = None, None
    if model_dir is not None:
        try:
            model = load_model(Path(model_dir), pseudonymizer=pseudonymizer)
        except KeyMismatchError:
            raise
        except RecsysError as exc:
            failure = exc
    store.mark_erased(report.pseudonym, pseudonymizer.key_id)
    report.tombstone = "the consent store"
    try:
        if failure is not None:
            raise failure
        if files is None:
            files = source_files(data_dir) if data_dir is not None else []
        plans = plan_source_erasure(files, uid)
        report.data_rows = apply_data_erasure(plans)
        report.model["consent_records"] = int(store.delete(report.pseudonym))
        report.state = erase_accountability(store, report.pseudonym)
        if model is not None:
            model, removed = model.without_user(report.pseudonym)
            report.model.update(removed)
            save_model(model, Path(model_dir), signer=pseudonymizer)
    except (RecsysError, OSError) as exc:
        raise ErasureError(
            f"erasure incomplete: {exc}; the tombstone is recorded, so training leaves the user "
            "out: fix the problem and run forget again"
        ) from exc
    return report


def export_user(
    user_id: str,
    pseudonymizer: Pseudonymizer | None,
    *,
    model=None,
    data=None,
) -> dict[str, Any]:
    """Everything stored about a user, and the main parameters behind their recommendations."""
    uid = normalize_id(user_id)
    key = pseudonymizer(uid) if pseudonymizer else uid
    out: dict[str, Any] = {"user_id": uid, "pseudonym": key}
    if model is not None:
        ctx = model.model_.ctx
        u = ctx.history.users.get(key)
        events = []
        if u >= 0:
            s = ctx.history.span(u)
            from recsys.data.schema import EVENTS

            for i, ts, ev, val in zip(ctx.history.item[s], ctx.history.ts[s], ctx.history.event[s],
                                      ctx.history.value[s], strict=True):  # fmt: skip
                events.append(
                    {
                        "item_id": str(ctx.catalog.items.ids[i]),
                        "title": str(ctx.catalog.title[i]),
                        "time": str(np.datetime64(int(ts), "s")),
                        "event": EVENTS[int(ev)],
                        **({"value": float(val)} if np.isfinite(val) else {}),
                    }
                )
        seen = [str(ctx.catalog.items.ids[i]) for i in ctx.seen_items(u)]
        shop_rows = 0
        if ctx.shop is not None and ctx.shop.users.get(key) >= 0:
            shop_rows = int((ctx.shop.user == ctx.shop.users.get(key)).sum())
        out["model"] = {
            "events": events,
            "seen_items": seen,
            "events_in_shop_wide_counts": shop_rows,
            "consent_personalization": model.has_consent(user_id),
            "consent_email": model.has_consent(user_id, "email"),
            "learned_taste_vector": (
                f"{ctx.collab.user_factors_.shape[1]} numbers learned from these events"
                if u >= 0
                else None
            ),
            "how_recommendations_are_made": model.describe(),
        }
    if data is not None:
        found: dict[str, list[dict[str, Any]]] = {}
        for name in TABLES:
            df = getattr(data, name)
            if df is not None and "user_id" in df.columns:
                rows = df[ids_as_text(df["user_id"]) == normalize_id(user_id)]
                found[name] = [{k: str(v) for k, v in r.items()} for r in rows.to_dict("records")]
        out["data"] = found
    return out
