"""Data minimization by design: purpose policy, consent, retention, pseudonyms and erasure."""

from recsys.privacy.minimize import MinimizationReport, MinimizedData, minimize
from recsys.privacy.policy import Policy, ProtectedAttributeError, PurposePolicy
from recsys.privacy.pseudonym import Pseudonymizer, new_key_file

__all__ = [
    "MinimizationReport",
    "MinimizedData",
    "Policy",
    "ProtectedAttributeError",
    "Pseudonymizer",
    "PurposePolicy",
    "minimize",
    "new_key_file",
]
