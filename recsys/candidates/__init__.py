"""Candidate generation: collaborative (``implicit``) and non-personalized sources, and filters."""

from recsys.candidates.popularity import PopularityCandidates

__all__ = ["PopularityCandidates"]
