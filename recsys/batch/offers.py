"""The e-mail offers job: a campaign for every eligible customer, resumable, local or on Dask.

Plan (once per job, frozen in a work directory next to the output): the audience (every
pseudonym with a consent record or a history, or a given list), sorted and cut into chunks; the
send time; the exposure controller's starting boost, calibrated on the first eligible customers.
Then per chunk, in any order and on any engine: eligibility from the consent store, the
suppression list and the send log (skips counted by reason), offers from
:func:`~recsys.batch.chunk.run_chunk`, and one Parquet file written atomically (its metadata
holds the chunk's counts): the checkpoint. A killed job rerun with the same command skips the
chunks on disk. Last: consent is read once more (a withdrawal during the run wins), the chunks
are merged in order into the output (atomically), the report and preview are written, the send
log is recorded, and the work directory is removed.
"""

from __future__ import annotations

import hashlib
import json
import sys
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from tqdm import tqdm

from recsys import atomic
from recsys.batch.campaign import Campaign, epoch
from recsys.batch.chunk import (
    DAY,
    OFFER_SCHEMA,
    ChunkResult,
    ChunkSpec,
    ChunkTask,
    calibrate,
    exposure_of,
)
from recsys.batch.engines import Engine, LocalEngine
from recsys.batch.output import check_format, write_offers
from recsys.batch.preview import write_preview
from recsys.batch.sendlog import SendLog
from recsys.errors import ConfigError
from recsys.model.fitted import FittedModel
from recsys.privacy.consent import Consent, ConsentStore
from recsys.privacy.pseudonym import Pseudonymizer
from recsys.rerank.overrides import load_overrides

SKIP_REASONS = (
    "suppressed",
    "no_email_consent",
    "no_personalization_consent",
    "frequency_cap",
    "no_history",
    "no_offers",
    "consent_withdrawn_during_run",
)
"""Why a customer of the audience got no e-mail, in the order the checks run."""
META = b"recsys-offers-chunk"
JOB_FILE = "job.json"
AUDIENCE_FILE = "audience.parquet"


@dataclass
class RunReport:
    """What a job did: every customer of the audience is either offered or skipped by reason."""

    campaign: str
    customers: int
    offered: int
    offers: int
    skipped: dict[str, int]
    chunks: int
    chunks_resumed: int
    engine: str
    seconds: float
    output: str
    phases: dict[str, float] = field(default_factory=dict)
    """Seconds of ``seconds`` per phase: ``plan`` (audience, exposure calibration; or reading a
    killed job's plan), ``chunks`` (scoring and checkpointing), ``merge`` (the output file)."""
    within: dict[str, float] = field(default_factory=dict)
    """Seconds spent inside the phases on the job's own bookkeeping: ``eligibility`` (consent
    store, send log and suppression list, per chunk), ``checkpoints`` (writing each finished
    chunk) and ``recheck`` (consent read again before the merge); the rest of ``chunks`` is
    scoring (on Dask, also the cluster's start and waiting for workers), of ``merge`` the
    suppression list, the chunks' customers and the output file."""
    preview: str | None = None
    exposure: dict[str, Any] | None = None
    recorded_sends: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k != "extra"} | self.extra

    def to_text(self) -> str:
        rate = self.customers / self.seconds if self.seconds else 0.0
        lines = [
            f"campaign {self.campaign}: {self.offers:,} offers to {self.offered:,} of "
            f"{self.customers:,} customers in {self.seconds:.1f}s ({rate:,.0f} customers/s, "
            f"{self.engine} engine, {self.chunks} chunks, {self.chunks_resumed} resumed)",
        ]
        for reason in SKIP_REASONS:
            if self.skipped.get(reason):
                lines.append(f"  skipped {reason.replace('_', ' ')}: {self.skipped[reason]:,}")
        if self.phases:
            lines.append("  time: " + ", ".join(f"{k} {v:.1f}s" for k, v in self.phases.items()))
        if self.within:
            lines.append(
                "  of which: " + ", ".join(f"{k} {v:.1f}s" for k, v in self.within.items())
            )
        if self.exposure:
            e = self.exposure
            lines.append(f"  exposure of {e['group']}: {e['share']:.1%} (target {e['target']:.1%})")
        lines.append(f"  offers written to {self.output}")
        if self.preview:
            lines.append(f"  preview of sample e-mails: {self.preview}")
        return "\n".join(lines)


def read_suppression(path: Path, pseudonymizer: Pseudonymizer | None) -> set[str]:
    """Pseudonyms on a suppression list (a ``pseudonym`` or ``user_id`` column; a header-less
    text file is one shop id per line)."""
    try:
        if path.suffix.lower() in (".parquet", ".pq"):
            df = pd.read_parquet(path)
        elif path.suffix.lower() == ".txt":
            df = pd.DataFrame({"user_id": path.read_text().split()})
        else:
            df = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{path}: cannot read the suppression list: {exc}") from exc
    if "pseudonym" in df:
        return set(df["pseudonym"].astype(str).str.strip()) - {""}
    if "user_id" not in df:
        raise ConfigError(
            f"{path}: suppression list: expected a 'user_id' or 'pseudonym' column, "
            f"found {list(df.columns)}"
        )
    ids = df["user_id"].astype(str).str.strip()
    ids = ids[ids != ""]
    return {pseudonymizer(u) for u in ids} if pseudonymizer else set(ids)


class Audience:
    """Who of a chunk may be mailed, from the stores as they are when the chunk is handed out."""

    def __init__(
        self, campaign: Campaign, consent: ConsentStore, send_log: SendLog,
        suppressed: set[str], send_at: int,
    ) -> None:  # fmt: skip
        self.campaign, self.consent, self.send_log = campaign, consent, send_log
        self.suppressed, self.send_at = suppressed, send_at

    def split(self, keys: Sequence[str]) -> tuple[list[str], dict[str, Consent], Counter[str]]:
        consent = self.consent.get_many(keys)
        cap = self.campaign.frequency_cap
        sent = (
            self.send_log.counts(
                keys,
                since=self.send_at - cap.days * DAY,
                until=self.send_at,
                other_than=self.campaign.id,
            )
            if cap
            else {}
        )
        eligible, skips = [], Counter[str]()
        for k in keys:
            c = consent.get(k)
            if k in self.suppressed:
                skips["suppressed"] += 1
            elif c is None or not c.email:
                skips["no_email_consent"] += 1
            elif not c.personalization:
                skips["no_personalization_consent"] += 1
            elif cap and sent.get(k, 0) >= cap.max_emails:
                skips["frequency_cap"] += 1
            else:
                eligible.append(k)
        return eligible, {k: consent[k] for k in eligible}, skips


@dataclass
class OffersJob:
    """One campaign over one model; see the module docstring for the steps."""

    model: FittedModel
    campaign: Campaign
    out: Path
    consent: ConsentStore
    send_log: SendLog
    pseudonymizer: Pseudonymizer | None = None
    model_id: str = ""
    """Identifies the model version in the job's fingerprint (the CLI: its manifest digest)."""
    audience: Sequence[str] | None = None
    """Pseudonyms to consider; default: every consent record and every customer with history."""
    engine: Engine = field(default_factory=LocalEngine)
    chunk_size: int = 1000
    calibration: int = 1000
    """Eligible customers the exposure controller's starting boost is calibrated on."""
    record: bool = True
    """Record the send in the send log when the job finishes."""
    preview_samples: int = 5
    progress: bool = True

    def __post_init__(self) -> None:
        self.out = Path(self.out)
        check_format(self.out)
        path = self.campaign.overrides_path()
        ps = self.pseudonymizer
        self.overrides = load_overrides(path, ps or str) if path is not None else None
        if self.chunk_size < 1:
            raise ConfigError(f"chunk size must be at least 1, got {self.chunk_size}")
        self.work = self.out.parent / f".{self.out.name}.job"

    # --- plan ---------------------------------------------------------------------------------
    def fingerprint(self) -> str:
        body = {
            "campaign": self.campaign.fingerprint_dict(),
            "model": self.model_id or f"{self.model.key_id}:{self.model.cutoff}",
            "chunk_size": self.chunk_size,
            "calibration": self.calibration,
            "overrides": self.overrides.version if self.overrides is not None else None,
        }
        return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()

    def restart(self) -> None:
        """Discard a killed job's checkpoints (the next run starts over)."""
        atomic.remove(self.work)

    def plan(self) -> tuple[dict[str, Any], list[str]]:
        """The frozen plan and audience: read back from the work directory, or made now."""
        fp = self.fingerprint()
        job = self.work / JOB_FILE
        if job.exists():
            plan = json.loads(job.read_text())
            if plan["fingerprint"] != fp:
                raise ConfigError(
                    f"{self.work}: a killed job with another campaign, model or chunk size left "
                    "its checkpoints here; rerun it with its own settings, or pass --restart "
                    "to discard them"
                )
            keys = pq.read_table(self.work / AUDIENCE_FILE).column("pseudonym").to_pylist()
            return plan, keys
        atomic.remove(self.work)
        atomic.make_dir(self.work / "chunks")
        keys = sorted(set(self.audience if self.audience is not None else self._everyone()))
        table = pa.table({"pseudonym": pa.array(keys, pa.string())})
        atomic.write_atomic(self.work / AUDIENCE_FILE, lambda p: pq.write_table(table, p))
        send_at = epoch(self.campaign.send_at) or int(time.time())
        as_of = epoch(self.campaign.as_of)
        plan = {"fingerprint": fp, "send_at": send_at, "as_of": as_of, "customers": len(keys)}
        plan["boost"] = self._calibrate(keys, as_of, self._audience(send_at))
        atomic.write_bytes_atomic(job, json.dumps(plan, indent=2).encode())
        return plan, keys

    def _everyone(self) -> list[str]:
        return [*self.consent.keys(), *self.model.ctx.history.users.ids.tolist()]

    def _audience(self, send_at: int) -> Audience:
        path = self.campaign.suppression_path()
        suppressed = read_suppression(path, self.pseudonymizer) if path else set()
        return Audience(self.campaign, self.consent, self.send_log, suppressed, send_at)

    def _calibrate(self, keys: list[str], as_of: int | None, audience: Audience) -> float:
        """The first pass: the exposure boost that meets the target on up to ``calibration``
        eligible customers spread evenly over the audience (every chunk then holds it)."""
        if self.campaign.exposure is None or not keys:
            return 0.0
        step = max(1, len(keys) // (2 * self.calibration))
        eligible, consent, _ = audience.split(keys[::step])
        eligible = eligible[:: max(1, len(eligible) // self.calibration)][: self.calibration]
        spec = ChunkSpec(self.campaign, as_of, overrides=self.overrides)
        return calibrate(self.model, spec, eligible, {k: consent[k] for k in eligible})

    # --- chunks -------------------------------------------------------------------------------
    def chunk_path(self, index: int) -> Path:
        return self.work / "chunks" / f"{index:06d}.parquet"

    def _write_chunk(self, res: ChunkResult, pre: Counter[str], size: int) -> None:
        skips = Counter(pre) + Counter(res.skips)
        meta = {"index": res.index, "customers": size, "skips": dict(skips)}
        table = res.table.replace_schema_metadata({META: json.dumps(meta).encode()})
        atomic.write_atomic(self.chunk_path(res.index), lambda p: pq.write_table(table, p))

    def chunk_meta(self, index: int) -> dict[str, Any]:
        return json.loads(pq.read_schema(self.chunk_path(index)).metadata[META])

    def run(self) -> RunReport:
        started = time.perf_counter()
        plan, keys = self.plan()
        planned = time.perf_counter()
        n_chunks = -(-len(keys) // self.chunk_size)
        done = {i for i in range(n_chunks) if self.chunk_path(i).exists()}
        resumed = len(done)
        spec = ChunkSpec(
            self.campaign, plan["as_of"], plan["boost"], plan["fingerprint"], self.overrides
        )
        audience = self._audience(plan["send_at"])
        sizes: dict[int, int] = {}
        pre: dict[int, Counter[str]] = {}
        within = {"eligibility": 0.0, "checkpoints": 0.0}

        def tasks() -> Iterator[ChunkTask]:
            for i in range(n_chunks):
                if i in done:
                    continue
                chunk = keys[i * self.chunk_size : (i + 1) * self.chunk_size]
                t = time.perf_counter()
                eligible, consent, skips = audience.split(chunk)
                within["eligibility"] += time.perf_counter() - t
                sizes[i], pre[i] = len(chunk), skips
                yield ChunkTask(i, tuple(eligible), consent)

        finished = sum(min(self.chunk_size, len(keys) - i * self.chunk_size) for i in done)
        with tqdm(
            total=len(keys), initial=finished, unit="customer", desc=f"offers {self.campaign.id}",
            disable=not self.progress, file=sys.stderr, smoothing=0.1,
        ) as bar:  # fmt: skip
            for res in self.engine.run(self.model, spec, tasks()):
                t = time.perf_counter()
                self._write_chunk(res, pre.pop(res.index), sizes[res.index])
                within["checkpoints"] += time.perf_counter() - t
                bar.update(sizes.pop(res.index))
        phases = {"plan": planned - started, "chunks": time.perf_counter() - planned}
        return self.finish(plan, n_chunks, resumed, started, phases, within)

    # --- finish -------------------------------------------------------------------------------
    def finish(
        self,
        plan: dict[str, Any],
        n_chunks: int,
        resumed: int,
        started: float,
        phases: dict[str, float] | None = None,
        within: dict[str, float] | None = None,
    ) -> RunReport:
        """Merge the chunks in order into the output, then report, preview, send log.
        ``phases``: the seconds of the phases before the merge, which the report adds to;
        ``within``: the bookkeeping seconds inside them (:attr:`RunReport.within`)."""
        within = dict(within or {})
        skips: Counter[str] = Counter()
        customers = 0
        for i in range(n_chunks):
            meta = self.chunk_meta(i)
            skips.update(meta["skips"])
            customers += meta["customers"]
        audience = self._audience(plan["send_at"])
        offered: list[list[str]] = []  # per chunk: who still may be mailed
        for i in range(n_chunks):
            keys = pc.unique(pq.read_table(self.chunk_path(i), columns=["pseudonym"])[0])
            keys = keys.to_pylist()
            t = time.perf_counter()
            still, _, _ = audience.split(keys)  # a withdrawal during the run wins
            within["recheck"] = within.get("recheck", 0.0) + time.perf_counter() - t
            skips["consent_withdrawn_during_run"] += len(keys) - len(still)
            offered.append(still)
        offered_keys = [k for still in offered for k in still]
        if customers != len(offered_keys) + sum(skips.values()):  # pragma: no cover - a bug
            raise RuntimeError("offers job lost track of customers: counts do not add up")
        totals = [0.0, 0.0]
        group = self.campaign.exposure.group if self.campaign.exposure else None

        def tables() -> Iterator[pa.Table]:
            for i, still in enumerate(offered):
                table = pq.read_table(self.chunk_path(i)).replace_schema_metadata(None)
                if len(still) < len(pc.unique(table.column("pseudonym"))):
                    table = table.filter(pc.is_in(table.column("pseudonym"), pa.array(still)))
                if group:
                    p, t = exposure_of(self.model, group, table)
                    totals[0] += p
                    totals[1] += t
                yield table

        n_offers = write_offers(self.out, tables())
        ended = time.perf_counter()
        phases = dict(phases or {})
        phases["merge"] = ended - started - sum(phases.values())
        report = RunReport(
            campaign=self.campaign.id, customers=customers, offered=len(offered_keys),
            offers=n_offers, skipped={r: skips.get(r, 0) for r in SKIP_REASONS},
            chunks=n_chunks, chunks_resumed=resumed, engine=self.engine.name,
            seconds=ended - started, output=str(self.out), phases=phases, within=within,
        )  # fmt: skip
        if group and self.campaign.exposure is not None:
            from recsys.batch.exposure import ExposureController

            target = ExposureController(self.model, self.campaign.exposure).target
            share = totals[0] / totals[1] if totals[1] else 0.0
            report.exposure = {"group": group, "target": target, "share": share}
        if self.preview_samples:
            preview = self.out.with_name(self.out.stem + ".preview.html")
            write_preview(preview, self.campaign, self._sample(n_chunks, set(offered_keys)))
            report.preview = str(preview)
        if self.record:
            report.recorded_sends = self.send_log.record(
                self.campaign.id, offered_keys, at=plan["send_at"]
            )
        report_path = self.out.with_name(self.out.stem + ".report.json")
        body = json.dumps(report.to_dict(), indent=2).encode()
        atomic.write_bytes_atomic(report_path, body + b"\n")
        self.restart()
        return report

    def _sample(self, n_chunks: int, allowed: set[str]) -> pd.DataFrame:
        """The first customers' offers, in output order (the preview's sample e-mails)."""
        frames, seen = [], 0
        for i in range(n_chunks):
            if seen >= self.preview_samples:
                break
            df = pq.read_table(self.chunk_path(i)).to_pandas()
            df = df[df["pseudonym"].isin(allowed)]
            keys = list(dict.fromkeys(df["pseudonym"]))[: self.preview_samples - seen]
            seen += len(keys)
            frames.append(df[df["pseudonym"].isin(keys)])
        return pd.concat(frames) if frames else pd.DataFrame(columns=OFFER_SCHEMA.names)
