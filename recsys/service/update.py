"""Apply a batch of new events to a loaded model without retraining (issue #13).

The events join the history; each touched user's collaborative vector is folded in (the ALS
user step over their whole history, as ``implicit``'s ``recalculate_user``); item factors, the
ranker and the retrieval index stay as trained; shop-wide counts (trending, co-occurrence,
customers per item) are recomputed from the new history. A new :class:`FittedModel` is returned
and the given one is left as it was, so requests in flight finish on it.

Only events the model may learn from are applied: users with personalization consent on record
(never an erased one), items the catalogue knows, known event types; the rest is counted.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import scipy.sparse as sp

from recsys.features.context import FeatureContext
from recsys.features.fresh import confidences
from recsys.features.history import EVENT_CODE, History, Vocabulary
from recsys.model.fitted import FittedModel
from recsys.pipeline.query import to_epoch
from recsys.privacy.consent import ConsentStore
from recsys.privacy.pseudonym import Pseudonymizer


@dataclasses.dataclass(frozen=True)
class UpdateReport:
    applied: int
    users: int
    new_users: int
    skipped: dict[str, int]

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _rows(events: Iterable[Mapping[str, Any]]) -> list[tuple[str, str, str, int]]:
    out = []
    for n, e in enumerate(events):
        try:
            out.append((str(e["user_id"]), str(e["item_id"]), str(e["event"]), e["time"]))
        except (KeyError, TypeError):
            raise ValueError(
                f"event {n}: needs user_id, item_id, event and time; got {e!r}"
            ) from None
    return out


def apply_events(
    model: FittedModel,
    events: Iterable[Mapping[str, Any]],
    *,
    consent: ConsentStore | None,
    pseudonymizer: Pseudonymizer | None,
) -> tuple[FittedModel, UpdateReport]:
    """``model`` with ``events`` (``{"user_id", "item_id", "event", "time"}``, time as ISO-8601
    or Unix seconds) applied; see the module docstring."""
    ctx = model.ctx
    rows = _rows(events)
    skipped = {"unknown_item": 0, "unknown_event": 0, "no_consent": 0}
    keys = [pseudonymizer(u) if pseudonymizer else u for u, *_ in rows]
    records = consent.get_many(sorted(set(keys))) if consent is not None else {}
    erased = consent.erased() if consent is not None else set()
    item_idx = ctx.catalog.items.index([r[1] for r in rows]) if rows else np.empty(0, np.int64)
    kept: list[tuple[str, int, int, int]] = []
    for (_, _, ev, when), key, i in zip(rows, keys, item_idx, strict=True):
        if ev not in EVENT_CODE:
            skipped["unknown_event"] += 1
        elif i < 0:
            skipped["unknown_item"] += 1
        elif key in erased or not (records.get(key) and records[key].personalization):
            skipped["no_consent"] += 1
        else:
            kept.append((key, int(i), EVENT_CODE[ev], int(to_epoch(when))))
    if not kept:
        return model, UpdateReport(0, 0, 0, skipped)
    h = ctx.history
    known = h.users.ids.tolist()
    new_keys = sorted({k for k, *_ in kept} - set(known))
    users = Vocabulary(np.array([*known, *new_keys], dtype=object))
    u_new = users.index([k for k, *_ in kept])
    old_u = h.user_of_event()
    u_all = np.concatenate([old_u, u_new])
    i_all = np.concatenate([h.item, [k[1] for k in kept]]).astype(h.item.dtype)
    t_all = np.concatenate([h.ts, [k[3] for k in kept]]).astype(h.ts.dtype)
    e_all = np.concatenate([h.event, [k[2] for k in kept]]).astype(h.event.dtype)
    v_all = np.concatenate([h.value, np.full(len(kept), np.nan)])
    order = np.lexsort((i_all, t_all, u_all))
    indptr = np.zeros(len(users) + 1, dtype=np.int64)
    np.cumsum(np.bincount(u_all, minlength=len(users)), out=indptr[1:])
    history = History(
        users, h.items, indptr, i_all[order], t_all[order], e_all[order], v_all[order]
    )
    collab = copy.copy(ctx.collab)  # item factors and the index are shared, never changed here
    dim = collab.item_factors_.shape[1]
    uf = np.vstack([collab.user_factors_, np.zeros((len(new_keys), dim), np.float32)])
    touched = np.unique(u_new)
    for u in touched.tolist():
        s = history.span(u)
        if collab.algorithm == "als":
            hist, conf = confidences(history.item[s], history.event[s])
            uf[u] = collab.user_vector(hist, conf)
    collab.user_factors_ = uf
    seen = None
    if ctx.seen is not None:
        pad = sp.csr_matrix((len(new_keys), ctx.seen.shape[1]), dtype=ctx.seen.dtype)
        add = sp.csr_matrix(
            (np.ones(len(kept), np.int8), (u_new, [k[1] for k in kept])),
            shape=(len(users), ctx.seen.shape[1]),
        )
        seen = (sp.vstack([ctx.seen, pad]).tocsr() + add).tocsr()
        seen.data[:] = 1
    new_ctx = FeatureContext(history, ctx.catalog, collab, shop=ctx.shop, seen=seen)
    report = UpdateReport(len(kept), len(touched), len(new_keys), skipped)
    return dataclasses.replace(model, ctx=new_ctx), report
