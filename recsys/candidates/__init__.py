"""Candidate generation: the ``implicit`` adapter, and candidate sets with their filters."""

from recsys.candidates.generate import CandidateConfig, candidates
from recsys.candidates.implicit_adapter import CollaborativeConfig, ImplicitModel

__all__ = ["CandidateConfig", "CollaborativeConfig", "ImplicitModel", "candidates"]
