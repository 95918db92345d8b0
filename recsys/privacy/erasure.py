"""The right to erasure and the right of access, for a model directory and a data directory.

Erasure removes the user from the stored data tables, from the model (history, user factor,
consent record; the touched items' factors re-solved), and records a tombstone holding only the
pseudonym so the next training run leaves the user out. recsys keeps no request logs.
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
from recsys.privacy.pseudonym import Pseudonymizer


class Tombstones:
    """Pseudonyms of erased users, one per line; read by training to leave them out."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def read(self) -> set[str]:
        if not self.path.exists():
            return set()
        return {line.strip() for line in self.path.read_text().splitlines() if line.strip()}

    def add(self, pseudonym: str) -> None:
        if pseudonym in self.read():
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a") as f:
            f.write(pseudonym + "\n")
            f.flush()
            os.fsync(f.fileno())


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
    *,
    model_dir: str | Path | None = None,
    data_dir: str | Path | None = None,
    tombstones: Tombstones | None = None,
) -> ErasureReport:
    """Erase ``user_id`` everywhere recsys stores it; the report names only the pseudonym."""
    from recsys.recommender import Recommender

    report = ErasureReport(pseudonymizer(str(user_id)))
    if model_dir is not None:
        rec = Recommender.load(model_dir, pseudonymizer=pseudonymizer)
        report.model = rec.forget(user_id)
        rec.save(model_dir)
    if data_dir is not None:
        report.data_rows = erase_from_data_dir(data_dir, user_id)
    if tombstones is not None:
        tombstones.add(report.pseudonym)
        report.tombstone = str(tombstones.path)
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
        ctx = model.context_
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
        p, e = model._consent.get(key, (False, False))
        out["model"] = {
            "events": events,
            "consent_personalization": p,
            "consent_email": e,
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
