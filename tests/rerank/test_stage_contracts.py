"""Every re-ranking stage passes the re-ranker contract."""

from __future__ import annotations

from recsys.rerank.stages import MMR, Calibration, FairTopK
from recsys.testing.stages import RerankerContract


class TestMMR(RerankerContract):
    stage = MMR(trade_off=0.7)


class TestCalibration(RerankerContract):
    stage = Calibration(trade_off=0.5)


class TestFairTopK(RerankerContract):
    stage = FairTopK(group="long_tail", proportion=0.5)
