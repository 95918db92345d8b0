"""Contract: every kind of fact a reason may state has a renderer and an independent checker.

A new ``Fact`` without a template would crash when rendered; one without a checker would let
the reason tests pass over it silently (``FactChecker.holds`` counts an unchecked fact as false,
so the gap would show up only as a puzzling failure far from its cause). This names it.
"""

from __future__ import annotations

import pytest

from recsys.explain.templates import RENDERERS
from recsys.testing.facts import CHECKS
from recsys.types import Fact


@pytest.mark.parametrize("fact", list(Fact), ids=str)
def test_every_fact_has_a_renderer(fact: Fact) -> None:
    assert fact in RENDERERS, (
        f"Fact.{fact.name} has no renderer: add @template(Fact.{fact.name}) in recsys/explain/templates.py"
    )
    assert callable(RENDERERS[fact])


@pytest.mark.parametrize("fact", list(Fact), ids=str)
def test_every_fact_has_a_checker(fact: Fact) -> None:
    assert fact in CHECKS, (
        f"Fact.{fact.name} has no checker: add @checker(Fact.{fact.name}) in recsys/testing/facts.py"
    )
    assert callable(CHECKS[fact])


def test_registries_hold_facts_only() -> None:
    """Registered keys are Fact members, so a free string cannot stand in for one."""
    assert all(isinstance(k, Fact) for k in RENDERERS)
    assert all(isinstance(k, Fact) for k in CHECKS)
