"""Contract tests for pipeline stages, in the LensKit style: a stage's test class opts in with
one line (``class TestMyReranker(RerankerContract): stage = MyReranker()``) and inherits tests
for what every stage of its kind must do: configuration that round-trips through TOML, a stage
that pickles (it ships to worker processes), determinism, and an ``ItemList`` in and out.

The contracts run on a small model fitted once per process on the embedded synthetic shop, so a
shop that writes its own stage can use them unchanged.
"""

from __future__ import annotations

import functools
import pickle
import tomllib
from typing import Any, ClassVar

import numpy as np
import tomli_w

from recsys.candidates.sources import CandidateConfig, block_candidates
from recsys.features.context import UserBlock
from recsys.model.fitted import FittedModel
from recsys.rerank.stages import RerankInput
from recsys.types import ItemList


@functools.cache
def contract_model() -> FittedModel:
    """A small fitted model (raw ids, evaluation purpose), built once per process."""
    from recsys.config import RecommenderConfig
    from recsys.data.synthetic import END, ShopSpec, make_shop
    from recsys.model.train import minimized, train
    from recsys.privacy.policy import Policy

    shop = make_shop(ShopSpec(n_users=150, n_items=60, seed=11))
    cfg = RecommenderConfig(purpose="evaluation")
    cfg.ranker.max_iter = 30
    policy = Policy.default()
    return train(minimized(shop, cfg, policy, now=END), cfg, policy)


def contract_block(n: int = 6) -> UserBlock:
    model = contract_model()
    ctx = model.ctx
    users = np.flatnonzero(np.diff(ctx.history.indptr) > 0)[:n]
    return UserBlock.build(ctx, [ctx.user_state(int(u)) for u in users])


def contract_lists(n: int = 6) -> tuple[UserBlock, list[ItemList]]:
    """A block of users and each one's scored candidate list, best first."""
    from recsys.ranking.scorer import Scorer

    model = contract_model()
    block = contract_block(n)
    cands = block_candidates(model.ctx, block, model.config.candidates)
    return block, Scorer(model.features, model.ranker)(model.ctx, block, cands)


class StageContract:
    """What every stage is: a small pydantic config that round-trips and pickles."""

    stage: ClassVar[Any]

    def test_config_round_trips_through_toml(self) -> None:
        cls = type(self.stage)
        text = tomli_w.dumps(self.stage.model_dump(mode="json"))
        assert cls.model_validate(tomllib.loads(text)) == self.stage

    def test_config_refuses_unknown_settings(self) -> None:
        import pydantic

        data = {**self.stage.model_dump(), "no_such_setting": 1}
        try:
            type(self.stage).model_validate(data)
        except pydantic.ValidationError:
            return
        raise AssertionError(f"{type(self.stage).__name__} accepted an unknown setting")

    def test_pickles(self) -> None:
        assert pickle.loads(pickle.dumps(self.stage)) == self.stage


class SourceContract(StageContract):
    """A candidate source proposes, per user of a block, only items that user may get."""

    def test_one_list_per_user_of_allowed_items(self) -> None:
        model = contract_model()
        block = contract_block()
        n = len(model.ctx.catalog.items)
        allowed = np.random.default_rng(0).random((len(block), n)) < 0.7
        out = self.stage(model.ctx, block, allowed)
        assert len(out) == len(block)
        for p, items in enumerate(out):
            items = np.asarray(items, dtype=np.int64)
            assert len(set(items.tolist())) == len(items), "no item twice"
            assert allowed[p, items].all(), "only allowed items"

    def test_deterministic(self) -> None:
        model = contract_model()
        block = contract_block()
        allowed = np.ones((len(block), len(model.ctx.catalog.items)), dtype=bool)
        a = self.stage(model.ctx, block, allowed)
        b = self.stage(model.ctx, block, allowed)
        assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))

    def test_works_inside_the_candidate_union(self) -> None:
        model = contract_model()
        block = contract_block()
        cands = block_candidates(model.ctx, block, CandidateConfig(sources=[self.stage]))
        assert len(cands) == len(block)


class RerankerContract(StageContract):
    """A re-ranker takes a ranked ItemList and returns one drawn from it, deterministically."""

    k: ClassVar[int] = 5

    def _run(self) -> list[tuple[ItemList, ItemList]]:
        model = contract_model()
        block, lists = contract_lists()
        inp = RerankInput(ctx=model.ctx, groups=model.groups)
        return [
            (lst, self.stage(inp, st, lst, self.k))
            for st, lst in zip(block.states, lists, strict=True)
        ]

    def test_item_list_in_and_out(self) -> None:
        for before, after in self._run():
            assert isinstance(after, ItemList)
            assert len(after) >= min(self.k, len(before))
            assert set(after.items.tolist()) <= set(before.items.tolist())
            assert len(set(after.items.tolist())) == len(after)
            assert set(after.columns) == set(before.columns), "columns travel with the items"

    def test_deterministic(self) -> None:
        first = [a.items.tolist() for _, a in self._run()]
        assert first == [a.items.tolist() for _, a in self._run()]

    def test_does_not_change_its_input(self) -> None:
        for before, _ in self._run():
            assert not before.items.flags.writeable
