"""Every candidate source passes the source contract."""

from __future__ import annotations

from recsys.candidates.sources import CollaborativeSource, RebuySource, TrendingSource
from recsys.testing.stages import SourceContract


class TestCollaborative(SourceContract):
    stage = CollaborativeSource(n=20)


class TestTrending(SourceContract):
    stage = TrendingSource(n=10)


class TestRebuy(SourceContract):
    stage = RebuySource(n=5)
