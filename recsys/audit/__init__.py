"""Accountability: the audit trail, customer feedback, overrides on serving, the drift monitor."""

from recsys.audit.feedback import FeedbackStore, not_interested, reason_wrong
from recsys.audit.hooks import Accountability, attach
from recsys.audit.trail import AuditSink, SQLiteAuditTrail

__all__ = [
    "Accountability",
    "AuditSink",
    "FeedbackStore",
    "SQLiteAuditTrail",
    "attach",
    "not_interested",
    "reason_wrong",
]
