"""The campaign file: what one e-mail send is, validated before any customer is scored.

A campaign names its id, how many offers each e-mail carries, what never to offer, how often a
customer may be mailed, who must never be mailed, and how lists are re-ranked (per list and
across the whole send). Unknown keys are errors (``extra="forbid"``): a misspelt exclusion must
not silently offer what it was meant to hold back.
"""

from __future__ import annotations

import tomllib
from datetime import datetime
from pathlib import Path
from typing import Literal, Self

import pandas as pd
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    NonNegativeInt,
    PositiveInt,
    ValidationError,
    field_validator,
)

from recsys.batch.exposure import BatchExposureConfig
from recsys.errors import ConfigError
from recsys.rerank.stages import RerankConfig
from recsys.rules.config import check_expressions


class Exclusions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    out_of_stock: Literal[True] = True
    """Items out of stock are never offered (the pipeline filters them): ``false`` is refused
    rather than silently ignored."""
    bought_within_days: NonNegativeInt = 0
    """Leave out what the customer bought in the last N days before the send (0: off)."""
    categories: list[str] = Field(default_factory=list)
    """Category paths or their top levels (``"Books"`` leaves out ``"Books > Fiction"``)."""
    filters: list[str] = Field(default_factory=list)
    """Filter expressions (:mod:`recsys.rules.filters`): no offer matches any of them,
    evaluated per customer (``purchased_within(30d)`` reads that customer's history)."""

    @field_validator("filters")
    @classmethod
    def _parse(cls, values: list[str]) -> list[str]:
        return check_expressions(values)


class FrequencyCap(BaseModel):
    model_config = ConfigDict(extra="forbid")

    max_emails: PositiveInt = 1
    """At most this many e-mails of other campaigns within ``days`` before the send."""
    days: PositiveInt = 7


class Suppression(BaseModel):
    model_config = ConfigDict(extra="forbid")

    file: str
    """CSV, TXT or Parquet with a ``user_id`` (shop ids) or ``pseudonym`` column; relative to
    the campaign file."""


class Campaign(BaseModel):
    """One e-mail send (see the README's "E-mail offers" section for a complete file)."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(min_length=1, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    offers: PositiveInt = 5
    """Offers per e-mail."""
    send_at: datetime | None = None
    """When the e-mail goes out (the frequency cap counts back from it); default: fixed when
    the job first starts, so a rerun uses the same instant."""
    as_of: datetime | None = None
    """The time reasons and re-buy cycles refer to; default: the model's data cut-off."""
    exclude: Exclusions = Field(default_factory=Exclusions)
    frequency_cap: FrequencyCap | None = None
    suppression: Suppression | None = None
    rerank: RerankConfig | None = None
    """Per-list re-ranking; default: the model's own configuration."""
    exposure: BatchExposureConfig | None = None
    """Batch-level exposure target for an item group across the whole send (off without it)."""
    overrides: str | None = None
    """A human-oversight overrides file (blocked items and categories, segment blocks, staff
    picks; see the README's "Accountability"), applied to every e-mail; relative to this file."""
    unsubscribe_url: str = (
        "https://shop.example/unsubscribe?campaign={campaign}&customer={pseudonym}"
    )
    """The unsubscribe link of each e-mail (``{campaign}`` and ``{pseudonym}`` are filled in)."""

    source: Path | None = Field(None, exclude=True)
    """The file this campaign was read from (suppression paths are relative to it)."""

    @classmethod
    def from_file(cls, path: str | Path) -> Self:
        """Read and validate a campaign file; every problem names the file, key and expectation."""
        path = Path(path)
        try:
            raw = tomllib.loads(path.read_text())
        except OSError as exc:
            raise ConfigError(f"{path}: cannot read the campaign file: {exc.strerror}") from exc
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: not valid TOML: {exc}") from exc
        try:
            campaign = cls.model_validate(raw)
        except ValidationError as exc:
            raise ConfigError(f"{path}: {describe(exc)}") from exc
        return campaign.model_copy(update={"source": path.resolve()})

    def suppression_path(self) -> Path | None:
        if self.suppression is None:
            return None
        p = Path(self.suppression.file).expanduser()
        base = self.source.parent if self.source is not None else Path.cwd()
        return p if p.is_absolute() else base / p

    def overrides_path(self) -> Path | None:
        if self.overrides is None:
            return None
        p = Path(self.overrides).expanduser()
        base = self.source.parent if self.source is not None else Path.cwd()
        return p if p.is_absolute() else base / p

    def fingerprint_dict(self) -> dict:
        return self.model_dump(mode="json", exclude={"source"})


def describe(exc: ValidationError) -> str:
    """``key a.b: expected ... (got ...)`` for each error of a validation."""
    parts = []
    for e in exc.errors():
        key = ".".join(map(str, e["loc"])) or "(top level)"
        if e["type"] == "extra_forbidden":
            parts.append(f"key {key}: unknown key (expected one of the documented keys)")
        elif e["type"] == "missing":
            parts.append(f"key {key}: missing (expected a value)")
        else:
            msg = e["msg"].replace("Input should be", "expected")
            parts.append(f"key {key}: {msg} (got {e.get('input')!r})")
    return "; ".join(parts)


def epoch(ts: datetime | None) -> int | None:
    """Unix seconds of an aware or UTC-naive time (``None`` stays ``None``)."""
    if ts is None:
        return None
    t = pd.Timestamp(ts)
    t = t.tz_localize("UTC") if t.tzinfo is None else t.tz_convert("UTC")
    return int(t.timestamp())
