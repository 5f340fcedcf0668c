"""The analytics area (seed: analytics/): events, metrics, the audit log."""

from caas_data.documents.analytics import AuditAnchor, AuditLog, Event, Metric, MetricPeriod
from caas_data.repositories.analytics.audit import AuditLogRepository
from caas_data.repositories.analytics.audit_chain import ChainReport
from caas_data.repositories.analytics.events import EventRepository, MetricRepository

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
