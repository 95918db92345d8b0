"""One chunk of an e-mail campaign: eligible customers in, offer rows out.

:func:`run_chunk` is the only code that scores customers for a campaign, on the local engine and
on every Dask worker alike. Its output depends on nothing but the model, the job's frozen
parameters (:class:`ChunkSpec`) and the chunk (:class:`ChunkTask`): not on the engine, the
order chunks finish in, or whether the job was killed and restarted in between.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa

from recsys.audit.hooks import Accountability
from recsys.batch.campaign import Campaign
from recsys.batch.exposure import Collect, ControllerState, ExposureController, calibrate_boost
from recsys.features.history import EVENT_CODE
from recsys.model.fitted import FittedModel
from recsys.pipeline.heap import frozen_heap
from recsys.pipeline.pipeline import Pipeline
from recsys.privacy.consent import Consent
from recsys.rerank.algorithms import position_weights
from recsys.rerank.overrides import OverridesFile
from recsys.types import Evidence, Query, Recommendations

DAY = 86_400
OFFER_SCHEMA = pa.schema(
    [
        ("pseudonym", pa.string()),
        ("campaign_id", pa.string()),
        ("rank", pa.int32()),
        ("item_id", pa.string()),
        ("title", pa.string()),
        ("score", pa.float64()),
        ("reason", pa.string()),
        ("stage", pa.string()),
        ("evidence", pa.string()),
        ("intro", pa.string()),
        ("intro_categories", pa.string()),
    ]
)
"""One row per offer; ``evidence`` and ``intro_categories`` are JSON."""


@dataclass(frozen=True)
class ChunkSpec:
    """What every chunk of one job shares, fixed when the job first starts."""

    campaign: Campaign
    as_of: int | None
    boost: float = 0.0
    """The exposure controller's boost, held for every list (calibrated once per job)."""
    job: str = ""
    """The job's fingerprint (names its tasks on a shared Dask scheduler)."""
    overrides: OverridesFile | None = None
    """The campaign's overrides file, read once by the job (blocks and staff picks)."""


@dataclass(frozen=True)
class ChunkTask:
    index: int
    keys: tuple[str, ...]
    """Eligible customers (pseudonyms), in campaign order."""
    consent: dict[str, Consent]
    """Their consent as read by the job just before the chunk was handed out."""


@dataclass
class ChunkResult:
    index: int
    table: pa.Table
    skips: dict[str, int] = field(default_factory=dict)
    """Customers of the chunk the pipeline could not give offers, by reason."""
    state: ControllerState | None = None


class ConsentSnapshot:
    """The consent records of one chunk, as the job read them from the shop's store: the
    pipeline on a worker checks them again without reaching the store's database."""

    def __init__(self, records: dict[str, Consent]) -> None:
        self.records = records

    def get_many(self, keys: Sequence[str]) -> dict[str, Consent]:
        return {k: self.records[k] for k in keys if k in self.records}


def excluded_by_category(model: FittedModel, campaign: Campaign) -> list[str]:
    """Ids of items in an excluded category (a path, or any path under it)."""
    names = campaign.exclude.categories
    if not names:
        return []
    cat = model.ctx.catalog
    hit = [
        k
        for k, c in enumerate(cat.categories)
        if any(c == n or c.startswith(n + " > ") for n in names)
    ]
    rows = np.flatnonzero(np.asarray(cat.item_categories[:, hit].sum(axis=1)).ravel() > 0)
    return cat.items.ids[rows].tolist()


def recent_purchases(model: FittedModel, key: str, days: int, ref: int) -> list[str]:
    """Items ``key`` bought within ``days`` before ``ref`` (Unix seconds)."""
    h = model.ctx.history
    u = h.users.get(key)
    if days <= 0 or u < 0:
        return []
    span = h.span(u)
    mask = (h.event[span] == EVENT_CODE["purchase"]) & (h.ts[span] >= ref - days * DAY)
    return h.items.ids[np.unique(h.item[span][mask])].tolist()


def intro_line(
    model: FittedModel,
    item_ids: Sequence[str],
    limit: int = 3,
    memo: dict[int, set[str]] | None = None,
) -> tuple[str, list[str]]:
    """ "Picked for you from Coffee and Tea": the (leaf) categories the offers are in, most
    offers first, never a sensitive category; the names are returned too, for checking.
    ``memo`` keeps each item's leaves across the customers of a chunk."""
    cat, sens = model.ctx.catalog, model.sensitivity
    memo = {} if memo is None else memo
    counts: Counter[str] = Counter()
    for i in cat.items.index(list(item_ids)).tolist():
        leaves = memo.get(i)
        if leaves is None:
            leaves = memo[i] = {
                leaf
                for leaf in (
                    p.split(" > ")[-1] for p in cat.categories_of(i) if not sens.category(p)
                )
                if not sens.category(leaf)
            }
        counts.update(leaves)
    names = [n for n, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))][:limit]
    if not names:
        return "Picked for you", []
    joined = names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]
    return f"Picked for you from {joined}", names


def _prepared(
    model: FittedModel, spec: ChunkSpec, keys: Sequence[str], consent: dict[str, Consent]
) -> tuple[Pipeline, list[Query]]:
    """The pipeline (over this chunk's consent) and one query per customer, exclusions in."""
    c = spec.campaign
    hooks = Accountability(overrides=spec.overrides) if spec.overrides is not None else None
    pipeline = Pipeline(model, ConsentSnapshot(consent), hooks=hooks)  # type: ignore[arg-type]
    if c.rerank is not None:
        pipeline.check_rerank(c.rerank)
    ref = model.cutoff if spec.as_of is None else spec.as_of
    always = excluded_by_category(model, c)
    days = c.exclude.bought_within_days
    queries = [
        Query(key, c.offers, as_of=spec.as_of, rerank=c.rerank,
              exclude=(*always, *recent_purchases(model, key, days, ref)),
              exclude_filters=tuple(c.exclude.filters))
        for key in keys
    ]  # fmt: skip
    return pipeline, queries


def _controller(model: FittedModel, campaign: Campaign) -> ExposureController | None:
    if campaign.exposure is None:
        return None
    return ExposureController(
        model, campaign.exposure, rerank=campaign.rerank or model.config.rerank
    )


def run_chunk(model: FittedModel, spec: ChunkSpec, task: ChunkTask) -> ChunkResult:
    """Offers for one chunk of eligible customers, with reasons and re-ranking."""
    with frozen_heap():
        pipeline, queries = _prepared(model, spec, task.keys, task.consent)
        controller = _controller(model, spec.campaign)
        if controller is not None:
            controller.hold(spec.boost)
        lists = pipeline.run(queries, reranker=controller)
        table, skips = offer_table(model, spec.campaign.id, lists)
    return ChunkResult(task.index, table, skips, controller.state if controller else None)


def calibrate(
    model: FittedModel, spec: ChunkSpec, keys: Sequence[str], consent: dict[str, Consent]
) -> float:
    """The exposure boost every chunk holds: the one that meets the target over ``keys``."""
    controller = _controller(model, spec.campaign)
    if controller is None:
        return 0.0
    pipeline, queries = _prepared(model, spec, keys, consent)
    seen = Collect()
    pipeline.run(queries, reranker=seen)
    return calibrate_boost(controller, seen.seen)


def offer_table(
    model: FittedModel, campaign_id: str, lists: Sequence[Recommendations]
) -> tuple[pa.Table, dict[str, int]]:
    cols: dict[str, list] = {f.name: [] for f in OFFER_SCHEMA}
    skips: Counter[str] = Counter()
    in_stock, index = model.ctx.catalog.in_stock, model.ctx.catalog.items
    leaves: dict[int, set[str]] = {}
    facts: dict[int, tuple[Evidence, str]] = {}  # each shared fact's JSON, once per chunk

    def fact_json(e: Evidence) -> str:
        hit = facts.get(id(e))  # the memo holds ``e``: its id cannot be reused meanwhile
        if hit is None:
            hit = facts[id(e)] = (e, e.to_json())
        return hit[1]

    for recs in lists:
        if not recs.personalized:
            skips["no_history"] += 1  # a generic list is not what the customer agreed to
            continue
        keep = [r for r in recs if r.reason.text and in_stock[index.get(r.item_id)]]
        if not keep:
            skips["no_offers"] += 1
            continue
        ids = [r.item_id for r in keep]
        intro, names = intro_line(model, ids, memo=leaves)
        n = len(keep)
        cols["pseudonym"].extend([recs.user_id] * n)
        cols["campaign_id"].extend([campaign_id] * n)
        cols["rank"].extend(range(1, n + 1))
        cols["item_id"].extend(ids)
        cols["title"].extend([r.title for r in keep])
        cols["score"].extend([float(r.score) for r in keep])
        cols["reason"].extend([r.reason.text for r in keep])
        cols["stage"].extend([str(r.reason.stage) for r in keep])
        # = json.dumps([e.to_dict() for e in evidence]): its separator, Evidence.to_json's items
        cols["evidence"].extend(
            ["[" + ", ".join(map(fact_json, r.reason.evidence)) + "]" for r in keep]
        )
        cols["intro"].extend([intro] * n)
        cols["intro_categories"].extend([json.dumps(names)] * n)
    return pa.Table.from_pydict(cols, schema=OFFER_SCHEMA), dict(skips)


def exposure_of(model: FittedModel, group: str, table: pa.Table) -> tuple[float, float]:
    """Position-discounted exposure of ``group`` and in all, over an offer table."""
    if table.num_rows == 0:
        return 0.0, 0.0
    rank = table.column("rank").to_numpy()
    w = position_weights(int(rank.max()))[rank - 1]
    member = model.groups[group][model.ctx.catalog.items.index(table.column("item_id").to_pylist())]
    return float((w * member).sum()), float(w.sum())
