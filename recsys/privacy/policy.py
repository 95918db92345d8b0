"""The purpose policy: which fields each purpose may read, the consent it needs, and retention.

A pydantic model with ``extra="forbid"`` that round-trips to TOML. The library never reads a
policy file by itself: callers pass a :class:`Policy` (the CLI reads files).
"""

from __future__ import annotations

import functools
import tomllib
from importlib import resources
from typing import Literal

import tomli_w
from pydantic import BaseModel, ConfigDict, Field, PositiveInt, ValidationError, model_validator

from recsys.data.schema import SCHEMAS
from recsys.errors import ConfigError

Purpose = Literal["recommendations", "email_offers", "evaluation", "fairness_audit"]
MODEL_PURPOSES: tuple[str, ...] = ("recommendations", "email_offers", "evaluation")
CONSENT_PURPOSES: tuple[str, ...] = ("recommendations", "email_offers")
"""Purposes that act on a customer (profiling, e-mail): a policy must tie them to consent."""
ConsentFlag = Literal["consent_personalization", "consent_email"]


class ProtectedAttributeError(ConfigError):
    """A protected attribute was about to become a model input."""


class PurposePolicy(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    fields: dict[Literal["interactions", "items", "users", "audit"], list[str]]
    consent: ConsentFlag | None = None
    retention_days: PositiveInt | None = None
    """Interactions older than this many days before the reference time are not used."""
    history_cap: PositiveInt | None = None
    """At most N events per user are used."""
    min_rating: float | None = None
    """Ratings below this are not kept: weak-preference events are the least characteristic
    (on MovieLens, dropping them costs less accuracy per cell than any history cap)."""
    remember_seen: bool = True
    """Keep, for the retention window, the ids of the items each customer interacted with,
    apart from what the model learns from: the history cap and ``min_rating`` limit learning
    and never make an item the customer already has look new. Shop-wide numbers that reasons
    state are likewise counted over every retained row."""

    def allows(self, table: str, column: str) -> bool:
        return column in self.fields.get(table, [])  # type: ignore[call-overload]


class ItemGroupRule(BaseModel):
    """A protected item group, defined by a rule over item attributes (never a hand-made list).

    ``long_tail``: items outside the most popular set that makes ``head_share`` of interactions.
    ``small_sellers``: items of sellers outside the largest sellers that together list
    ``head_share`` of the catalogue.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["long_tail", "small_sellers"]
    head_share: float = Field(0.8, gt=0, lt=1)
    label: str = ""
    """How a reason names the group: 'From an independent seller you may like'."""


class Policy(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    version: Literal[1] = 1
    protected_attributes: list[str] = Field(default_factory=list)
    sensitive_categories: list[str] = Field(default_factory=list)
    item_groups: dict[str, ItemGroupRule] = Field(default_factory=dict)
    """Protected item groups for provider fairness in re-ranking and the exposure audit."""
    purposes: dict[Purpose, PurposePolicy]

    @model_validator(mode="after")
    def _no_protected_inputs(self) -> Policy:
        protected = {p.lower() for p in self.protected_attributes}
        for name, purpose in self.purposes.items():
            for table, cols in purpose.fields.items():
                if name in MODEL_PURPOSES and table == "audit":
                    raise ValueError(
                        f"purpose {name!r} may not read the audit table: only fairness_audit may"
                    )
                bad = sorted(c for c in cols if c.lower() in protected)
                if bad and name in MODEL_PURPOSES:
                    raise ValueError(
                        f"purpose {name!r} lists protected attribute(s) {bad} in {table!r}: "
                        "protected attributes are never model inputs"
                    )
                if table not in ("audit", "items"):  # items: a shop's extra attributes too
                    unknown = sorted(set(cols) - set(SCHEMAS[table].names))
                    if unknown:
                        raise ValueError(
                            f"purpose {name!r} lists unknown {table} field(s) {unknown}; "
                            f"known: {list(SCHEMAS[table].names)}"
                        )
        return self

    def purpose(self, name: str) -> PurposePolicy:
        if name not in self.purposes:
            raise ConfigError(
                f"unknown purpose {name!r}; this policy defines {sorted(self.purposes)}"
            )
        return self.purposes[name]  # type: ignore[index]

    def consent_problems(self) -> list[str]:
        """Why this policy would profile or e-mail customers without asking them, if it would.

        ``recsys policy check`` refuses a policy with any; ``recommendations`` and
        ``email_offers`` act on a customer, so each must name the consent flag it requires.
        """
        return [
            f"purpose {name!r} has no consent requirement; add consent = "
            f"{'consent_email' if name == 'email_offers' else 'consent_personalization'!r} "
            f"under [purposes.{name}]"
            for name in CONSENT_PURPOSES
            if name in self.purposes and self.purposes[name].consent is None  # type: ignore[index]
        ]

    def is_protected(self, column: str) -> bool:
        return column.lower() in {p.lower() for p in self.protected_attributes}

    def is_sensitive_category(self, category: str) -> bool:
        c = category.lower()
        return any(s.lower() in c for s in self.sensitive_categories)

    # --- TOML round trip -------------------------------------------------------------------
    @classmethod
    def from_toml(cls, text: str, *, source: str = "<policy>") -> Policy:
        try:
            raw = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{source}: not valid TOML: {exc}") from exc
        try:
            return cls.model_validate(raw)
        except ValidationError as exc:
            msgs = "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or '(top level)'}: {e['msg']}"
                for e in exc.errors()
            )
            raise ConfigError(f"{source}: invalid policy: {msgs}") from exc

    def to_toml(self) -> str:
        return tomli_w.dumps(self.model_dump(mode="json", exclude_none=True))

    @classmethod
    def default(cls) -> Policy:
        """The conservative policy shipped with the package (parsed once; policies are frozen)."""
        return _default_policy()


@functools.cache
def _default_policy() -> Policy:
    text = resources.files("recsys.privacy").joinpath("default_policy.toml").read_text()
    return Policy.from_toml(text, source="default_policy.toml")
