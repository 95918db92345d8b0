"""The pipeline's configuration: one pydantic model per stage, ``extra="forbid"``, TOML round trip.

The library never reads a config file itself; the CLI does and passes the parsed object in.
"""

from __future__ import annotations

import tomllib
from typing import Literal, Self

import tomli_w
from pydantic import BaseModel, ConfigDict, Field, PositiveInt, ValidationError

from recsys.candidates.implicit_adapter import CollaborativeConfig
from recsys.candidates.sources import CandidateConfig
from recsys.errors import ConfigError
from recsys.explain.rules import ReasonRules
from recsys.ranking.ranker import RankerConfig
from recsys.ranking.training import TrainingConfig
from recsys.rerank.stages import RerankConfig
from recsys.rules.config import RulesConfig


class ReasonConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    max_clauses: PositiveInt = 2
    rules: ReasonRules = Field(default_factory=ReasonRules)
    """When each template may speak (``often``, price band, re-buy cycle, trending minimum)."""


class TomlModel(BaseModel):
    @classmethod
    def from_toml(cls, text: str, *, source: str = "<config>") -> Self:
        try:
            return cls.model_validate(tomllib.loads(text))
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{source}: not valid TOML: {exc}") from exc
        except ValidationError as exc:
            msgs = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
            raise ConfigError(f"{source}: {msgs}") from exc

    def to_toml(self) -> str:
        return tomli_w.dumps(self.model_dump(mode="json", exclude_none=True))


class RecommenderConfig(TomlModel):
    """Every setting of the pipeline: candidates -> features -> ranker -> reasons."""

    model_config = ConfigDict(extra="forbid")

    purpose: Literal["recommendations", "email_offers", "evaluation"] = "recommendations"
    collaborative: CollaborativeConfig = Field(default_factory=CollaborativeConfig)
    candidates: CandidateConfig = Field(default_factory=CandidateConfig)
    features: list[str] | None = None
    """Feature names to use; default: every built-in feature the data supports."""
    ranker: RankerConfig = Field(default_factory=RankerConfig)
    training: TrainingConfig = Field(default_factory=TrainingConfig)
    reasons: ReasonConfig = Field(default_factory=ReasonConfig)
    rerank: RerankConfig = Field(default_factory=RerankConfig)
    rules: RulesConfig = Field(default_factory=RulesConfig)
    """Filters every list obeys (``[rules] include = [...] exclude = [...]``)."""
