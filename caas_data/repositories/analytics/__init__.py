"""Repositories of the analytics documents (`caas_data.documents.analytics`)."""

from caas_data.repositories.analytics.audit import (
    AuditLogRepository,
    AuditRecord,
    chain_transaction,
)
from caas_data.repositories.analytics.audit_chain import AuditChainReader, ChainReport, chain_tenant
from caas_data.repositories.analytics.events import (
    EventRepository,
    EventStorage,
    MetricRepository,
    ensure_events_collection,
)

__all__ = [
    "AuditChainReader",
    "AuditLogRepository",
    "AuditRecord",
    "ChainReport",
    "EventRepository",
    "EventStorage",
    "MetricRepository",
    "chain_tenant",
    "chain_transaction",
    "ensure_events_collection",
]
