"""The ``[rules]`` section of a pipeline configuration: filters every list obeys."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator

from recsys.rules.filters import FilterError, parse


def check_expressions(values: list[str]) -> list[str]:
    """Parse each expression (syntax only; fields are checked against the catalogue later)."""
    for v in values:
        try:
            parse(v)
        except FilterError as exc:
            raise ValueError(str(exc)) from None
    return values


class RulesConfig(BaseModel):
    """``include``: an item must match every one; ``exclude``: it must match none."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    include: list[str] = Field(default_factory=list)
    exclude: list[str] = Field(default_factory=list)
    fill_short: bool = True
    """When fewer than ``k`` items pass, fill from popular items that pass the same rules (each
    says so); the rest of the gap is reported as ``Recommendations.shortfall``."""

    @field_validator("include", "exclude")
    @classmethod
    def _parse(cls, values: list[str]) -> list[str]:
        return check_expressions(values)
