"""Re-ranking: diversity, calibration and provider fairness after the ranker."""
