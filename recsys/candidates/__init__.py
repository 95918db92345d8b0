"""Candidate generation: the ``implicit`` adapter and the candidate sources of the pipeline."""
