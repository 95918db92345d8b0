"""Human oversight: an overrides file that people write and every path applies.

An overrides file (TOML) blocks items, blocks a category (for everyone or for a segment of
customers), caps a brand's share of a list and pins editorial picks with their own reason::

    [[block]]
    item = "I000042"                  # never recommended (e.g. a recall)
    [[block]]
    category = "Wine"                 # this category and everything under it ...
    segment = "under_18"              # ... for this segment only (default: everyone)
    [[cap]]
    brand = "Acme"
    max_share = 0.3                   # at most 30% of any list
    [[pin]]
    item = "I000017"
    position = 1
    reason = "our tea buyer's favourite this winter"   # shown as "Staff pick: ..."
    [segments.under_18]
    customers = ["U0000007"]          # or file = "under18.csv" (a user_id column)

The file's SHA-256 is its version; the audit trail records it with every list it touched.
Segment members are pseudonymized as the file is read: no raw id is kept.

:class:`Overrides` is the re-ranking stage (``kind = "overrides"``) for what applies to every
list: blocks and caps. Blocks also go into each request's exclusions (a segment's blocks too)
and pins are placed after the reasons are rendered (see :mod:`recsys.audit.hooks`), so they hold
on paths that skip re-ranking (``rerank=False``, a batch's own re-ranker, non-personalized lists).
"""

from __future__ import annotations

import hashlib
import tomllib
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from recsys.errors import ConfigError
from recsys.features.context import FeatureContext, UserState
from recsys.types import ItemList, Stage

if TYPE_CHECKING:
    from recsys.rerank.stages import RerankInput

EVERYONE = "everyone"
STAFF_PICK = "Staff pick: {reason}"


def in_category(categories: Sequence[str], wanted: str) -> np.ndarray:
    """Which of a catalogue's category paths are ``wanted`` or lie under it (case-insensitive)."""
    w = wanted.strip().casefold()
    return np.array(
        [c.casefold() == w or c.casefold().startswith(w + " > ") for c in categories], dtype=bool
    )


_masks: dict[int, tuple[weakref.ref, dict[str, np.ndarray]]] = {}


def category_items(ctx: FeatureContext, category: str) -> np.ndarray:
    """Catalogue indices of the items in ``category`` or below it (cached per catalogue)."""
    cat = ctx.catalog
    ref, per = _masks.get(id(cat), (None, None))
    if ref is None or ref() is not cat or per is None:
        per, k = {}, id(cat)
        _masks[k] = (weakref.ref(cat, lambda _: _masks.pop(k, None)), per)
    if category not in per:
        cats = in_category(cat.categories, category)
        hit = cat.item_categories[:, np.flatnonzero(cats)].sum(axis=1)
        per[category] = np.flatnonzero(np.asarray(hit).ravel() > 0)
    return per[category]


class BrandCap(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    brand: str
    max_share: float = Field(gt=0, le=1)
    """At most this share of a list (at least one item)."""


class Overrides(BaseModel):
    """The re-ranking stage of an overrides file: blocks and brand caps for every list."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    kind: Literal["overrides"] = "overrides"
    version: str = ""
    """SHA-256 (first 16 hex digits) of the overrides file."""
    block_items: tuple[str, ...] = ()
    block_categories: tuple[str, ...] = ()
    caps: tuple[BrandCap, ...] = ()

    stage: ClassVar[Stage] = Stage.RANKER
    """Items a cap lets in are the ranker's next best, with the ranker's own reasons."""

    def blocked(self, ctx: FeatureContext) -> np.ndarray:
        """Catalogue indices this stage blocks."""
        parts = [ctx.catalog.items.index(list(self.block_items))]
        parts += [category_items(ctx, c) for c in self.block_categories]
        out = np.unique(np.concatenate(parts)).astype(np.int64)
        return out[out >= 0]

    def __call__(self, inp: RerankInput, st: UserState, items: ItemList, k: int) -> ItemList:
        return self.many(inp, [st], [items], k)[0]

    def many(
        self, inp: RerankInput, states: Sequence[UserState], lists: Sequence[ItemList], k: int
    ) -> list[ItemList]:
        blocked = self.blocked(inp.ctx)
        brand = inp.ctx.catalog.brand
        caps = {c.brand: max(1, int(c.max_share * k)) for c in self.caps}
        out = []
        for lst in lists:
            keep = ~np.isin(lst.items, blocked)
            order = np.flatnonzero(keep)
            if caps and brand is not None:
                used: dict[str, int] = {}
                first, later = [], []
                for pos in order.tolist():
                    b = brand[lst.items[pos]]
                    full = b in caps and used.get(b, 0) >= caps[b] and len(first) < k
                    (later if full else first).append(pos)
                    if not full:
                        used[b] = used.get(b, 0) + 1
                order = np.array(first + later, dtype=np.int64)
            out.append(lst.take(order))
        return out


@dataclass(frozen=True)
class Pin:
    item: str
    position: int
    reason: str

    @property
    def text(self) -> str:
        return STAFF_PICK.format(reason=self.reason)


@dataclass(frozen=True)
class OverridesFile:
    """A parsed overrides file: the stage, the segment blocks and the pins, and its version."""

    stage: Overrides
    segment_blocks: tuple[tuple[str, str], ...] = ()
    """(category, segment) pairs."""
    segments: dict[str, frozenset[str]] = field(default_factory=dict)
    """Segment name -> the pseudonyms of its members."""
    pins: tuple[Pin, ...] = ()
    source: str = "<overrides>"

    @property
    def version(self) -> str:
        return self.stage.version

    def segments_of(self, key: str) -> list[str]:
        return sorted(name for name, members in self.segments.items() if key in members)

    def categories_for(self, key: str) -> list[str]:
        """Categories blocked for the customer ``key`` (a pseudonym): everyone's and their
        segments'."""
        mine = set(self.segments_of(key))
        return [*self.stage.block_categories, *(c for c, s in self.segment_blocks if s in mine)]


class _Block(BaseModel):
    model_config = ConfigDict(extra="forbid")
    item: str | None = None
    category: str | None = None
    segment: str = EVERYONE
    note: str | None = None


class _Pin(BaseModel):
    model_config = ConfigDict(extra="forbid")
    item: str
    position: int = Field(1, ge=1)
    reason: str = Field(min_length=3)
    note: str | None = None


class _Segment(BaseModel):
    model_config = ConfigDict(extra="forbid")
    customers: list[str] = Field(default_factory=list)
    file: str | None = None


class _File(BaseModel):
    model_config = ConfigDict(extra="forbid")
    block: list[_Block] = Field(default_factory=list)
    cap: list[BrandCap] = Field(default_factory=list)
    pin: list[_Pin] = Field(default_factory=list)
    segments: dict[str, _Segment] = Field(default_factory=dict)


def parse_overrides(
    text: str, key_of: Callable[[str], str], *, source: str = "<overrides>",
    base: Path | None = None,
) -> OverridesFile:  # fmt: skip
    """Parse an overrides file's text; ``key_of`` pseudonymizes segment members. Errors name the
    file, the entry and what was expected."""
    try:
        raw = tomllib.loads(text)
        f = _File.model_validate(raw)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source}: not valid TOML: {exc}") from exc
    except ValidationError as exc:
        msgs = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or '(top level)'}: {e['msg']}"
            for e in exc.errors()
        )
        raise ConfigError(
            f"{source}: invalid overrides: {msgs} (expected [[block]] item/category [segment], "
            "[[cap]] brand/max_share, [[pin]] item/position/reason, [segments.NAME] customers)"
        ) from exc
    items, cats, seg_blocks = [], [], []
    for n, b in enumerate(f.block, 1):
        if (b.item is None) == (b.category is None):
            raise ConfigError(f"{source}: [[block]] {n}: give exactly one of item or category")
        if b.segment != EVERYONE and b.segment not in f.segments:
            raise ConfigError(
                f"{source}: [[block]] {n}: unknown segment {b.segment!r}; defined: "
                f"{sorted(f.segments) or 'none'} (or {EVERYONE!r})"
            )
        if b.item is not None:
            if b.segment != EVERYONE:
                raise ConfigError(f"{source}: [[block]] {n}: segments apply to categories only")
            items.append(b.item.strip())
        elif b.segment == EVERYONE:
            cats.append(b.category.strip())  # type: ignore[union-attr]
        else:
            seg_blocks.append((b.category.strip(), b.segment))  # type: ignore[union-attr]
    segments = {}
    for name, s in f.segments.items():
        ids = [str(c).strip() for c in s.customers]
        if s.file:
            ids += _read_ids(s.file, base, source, name)
        segments[name] = frozenset(key_of(i) for i in ids if i)
    version = hashlib.sha256(text.encode()).hexdigest()[:16]
    stage = Overrides(
        version=version, block_items=tuple(items), block_categories=tuple(cats), caps=tuple(f.cap)
    )
    pins = tuple(Pin(p.item.strip(), p.position, p.reason.strip()) for p in f.pin)
    return OverridesFile(stage, tuple(seg_blocks), segments, pins, source)


def _read_ids(file: str, base: Path | None, source: str, name: str) -> list[str]:
    from recsys.data.loaders import read_table
    from recsys.errors import DataValidationError

    path = Path(file) if Path(file).is_absolute() or base is None else base / file
    try:
        df = read_table(path)
    except DataValidationError as exc:
        raise ConfigError(f"{source}: [segments.{name}] file: {exc}") from exc
    col = "user_id" if "user_id" in df.columns else df.columns[0]
    return df[col].astype(str).str.strip().tolist()


def load_overrides(path: str | Path, key_of: Callable[[str], str]) -> OverridesFile:
    """Read an overrides file (segment files are relative to it)."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{p}: cannot read the overrides file: {exc}") from exc
    return parse_overrides(text, key_of, source=str(p), base=p.parent)
