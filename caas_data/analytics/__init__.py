"""The analytics area (seed: analytics/): events, metrics, the audit log."""

from caas_data.documents.analytics import AuditAnchor, AuditLog, Event, Metric, MetricPeriod
from caas_data.repositories.analytics import EventRepository, MetricRepository
from caas_data.repositories.audit import AuditLogRepository
from caas_data.repositories.audit_chain import ChainReport

__all__ = [
    "AuditAnchor",
    "AuditLog",
    "AuditLogRepository",
    "ChainReport",
    "Event",
    "EventRepository",
    "Metric",
    "MetricPeriod",
    "MetricRepository",
]
