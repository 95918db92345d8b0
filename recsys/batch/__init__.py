"""Batch jobs: personalized e-mail offers for many customers."""
