"""The right to erasure and the right of access, for a model directory and a data directory.

Erasure first records a tombstone (the pseudonym only) in the consent store, so a crash part-way
can never let the next training run re-learn the customer; then it removes their consent record,
their place in the model (history, user factor; the touched items' factors re-solved) and their
rows in the stored data tables. recsys keeps no request logs.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from recsys.data.loaders import TABLES
from recsys.errors import DataValidationError
from recsys.privacy.consent import ConsentStore
from recsys.privacy.pseudonym import Pseudonymizer


@dataclass
class ErasureReport:
    pseudonym: str
    model: dict[str, int] = field(default_factory=dict)
    data_rows: dict[str, int] = field(default_factory=dict)
    tombstone: str | None = None
    logs: str = "recsys keeps no request logs"

    def to_text(self) -> str:
        lines = [f"erased user (pseudonym {self.pseudonym})"]
        for k, v in self.model.items():
            lines.append(f"  model: {k.replace('_', ' ')}: {v:,}")
        for f, n in self.data_rows.items():
            lines.append(f"  data: {f}: {n:,} rows removed")
        if self.tombstone:
            lines.append(f"  tombstone recorded in {self.tombstone}")
        lines.append(f"  logs: {self.logs}")
        return "\n".join(lines)


def _table_files(directory: Path) -> list[Path]:
    if (directory / "u.data").exists():
        raise DataValidationError(
            "MovieLens research data is read-only here; erase from your own copy of the source",
            file=str(directory),
        )
    return [
        directory / f"{t}.{ext}"
        for t in TABLES
        for ext in ("parquet", "csv")
        if (directory / f"{t}.{ext}").exists()
    ]


def erase_from_data_dir(directory: str | Path, user_id: str) -> dict[str, int]:
    """Rewrite each table of a data directory without the user's rows (atomic per file)."""
    removed = {}
    for path in _table_files(Path(directory)):
        if path.suffix == ".parquet":
            df = pd.read_parquet(path)
        else:
            df = pd.read_csv(path, dtype=str, keep_default_na=False)
        if "user_id" not in df.columns:
            continue
        mask = df["user_id"].astype(str) == str(user_id)
        if not mask.any():
            continue
        tmp = path.with_name(f".{path.name}.partial")
        if path.suffix == ".parquet":
            df[~mask].to_parquet(tmp, index=False)
        else:
            df[~mask].to_csv(tmp, index=False)
        os.replace(tmp, path)
        removed[str(path)] = int(mask.sum())
    return removed


def forget(
    user_id: str,
    pseudonymizer: Pseudonymizer,
    store: ConsentStore,
    *,
    model_dir: str | Path | None = None,
    data_dir: str | Path | None = None,
) -> ErasureReport:
    """Erase ``user_id`` everywhere recsys stores it; the report names only the pseudonym."""
    from recsys.model.artifacts import load_model, save_model

    report = ErasureReport(pseudonymizer(str(user_id)))
    store.mark_erased(report.pseudonym)
    report.tombstone = "the consent store"
    report.model["consent_records"] = int(store.delete(report.pseudonym))
    if model_dir is not None:
        model, removed = load_model(Path(model_dir), pseudonymizer=pseudonymizer).without_user(
            report.pseudonym
        )
        report.model.update(removed)
        save_model(model, Path(model_dir))
    if data_dir is not None:
        report.data_rows = erase_from_data_dir(data_dir, user_id)
    return report


def export_user(
    user_id: str,
    pseudonymizer: Pseudonymizer | None,
    *,
    model=None,
    data=None,
) -> dict[str, Any]:
    """Everything stored about a user, and the main parameters behind their recommendations."""
    key = pseudonymizer(str(user_id)) if pseudonymizer else str(user_id)
    out: dict[str, Any] = {"user_id": str(user_id), "pseudonym": key}
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
        out["model"] = {
            "events": events,
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
                rows = df[df["user_id"].astype(str) == str(user_id)]
                found[name] = [{k: str(v) for k, v in r.items()} for r in rows.to_dict("records")]
        out["data"] = found
    return out
