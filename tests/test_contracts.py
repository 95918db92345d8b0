"""Every system and every configuration passes the shipped contracts."""

from __future__ import annotations

import pytest

from recsys.candidates.implicit_adapter import CollaborativeConfig
from recsys.candidates.sources import CandidateConfig
from recsys.config import ReasonConfig, RecommenderConfig
from recsys.data.splits import temporal_split
from recsys.data.synthetic import ShopSpec, make_shop
from recsys.evaluation.baselines import EASE, ImplicitSystem, ItemKNN, MostPopular, PipelineSystem
from recsys.evaluation.run import EvaluationConfig
from recsys.privacy.policy import Policy
from recsys.ranking.ranker import RankerConfig
from recsys.ranking.training import TrainingConfig
from recsys.rerank.stages import RerankConfig
from recsys.testing.contracts import check_config, check_system

SYSTEMS = {
    "popular": MostPopular,
    "item-knn": lambda: ItemKNN(neighbors=20),
    "ease": lambda: EASE(l2=50.0),
    "als": lambda: ImplicitSystem(algorithm="als", factors=16),
    "bpr": lambda: ImplicitSystem(algorithm="bpr", factors=16, iterations=20),
    "recsys (no re-ranking)": lambda: PipelineSystem(RecommenderConfig(purpose="evaluation")),
    "recsys": lambda: PipelineSystem(RecommenderConfig(purpose="evaluation"), rerank=True),
}


@pytest.fixture(scope="module")
def data():
    shop = make_shop(ShopSpec(n_users=200, n_items=70, seed=8))
    train, _ = temporal_split(shop.interactions, 0.2)
    return train, shop.items, shop.users


@pytest.mark.parametrize("name", list(SYSTEMS))
def test_system_contract(name: str, data) -> None:
    check_system(SYSTEMS[name], *data)


@pytest.mark.parametrize(
    "config",
    [
        RecommenderConfig(),
        CollaborativeConfig(),
        CandidateConfig(),
        RankerConfig(),
        TrainingConfig(),
        RerankConfig(),
        ReasonConfig(),
        EvaluationConfig(),
        Policy.default(),
    ],
    ids=lambda c: type(c).__name__,
)
def test_config_contract(config) -> None:
    check_config(config)
