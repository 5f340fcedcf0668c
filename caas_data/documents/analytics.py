"""Analytics collections (`{prefix}_analytics`): events, metric rollups and the audit trail.

Events and audit logs are append-only (no `updated_at`, `__v` or soft delete; the guard
refuses updates and deletes, retention removes old entries in bulk). Both are high-volume and
carry the seed's `{tenant_id: 1, created_at: -1}` index.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any, ClassVar

from pydantic import Field, JsonValue, field_validator
from pymongo import ASCENDING, DESCENDING, IndexModel

from caas_data.documents.base import (
    AppendOnlyMixin,
    Area,
    BaseDocument,
    CreatedAtMixin,
    TenantMixin,
    TenantOwnedDocument,
)

__all__ = [
    "AUDIT_GENESIS_HASH",
    "DOCUMENTS",
    "EVENTS_RETENTION",
    "EVENTS_TIMESERIES",
    "PLATFORM_AUDIT_TENANT",
    "AuditAnchor",
    "AuditLog",
    "Event",
    "Metric",
    "MetricPeriod",
]

EVENTS_RETENTION = timedelta(days=90)
"""How long raw events are kept (TTL); metric rollups outlive them."""

AUDIT_GENESIS_HASH = "0" * 64
"""The `prev_hash` of the first entry of a chain."""

PLATFORM_AUDIT_TENANT = "platform"
"""The chain of platform-wide actions (admins, platform policy defaults).

A reserved tenant id, so no real tenant can ever own this chain.
"""

_NAME_PATTERN = r"^[a-z][a-z0-9_.:-]{0,99}$"


EVENTS_TIMESERIES: dict[str, Any] = {
    "timeField": "created_at",
    "metaField": "tenant_id",  # buckets per tenant; the guard's tenant filter stays top-level
    "granularity": "seconds",
}


class Event(AppendOnlyMixin, TenantMixin, CreatedAtMixin, BaseDocument):
    """One activity event (`message.sent`, `user.login`...), written once and never changed.

    Stored in a time-series collection (time `created_at`, meta `tenant_id`) expiring after
    `EVENTS_RETENTION` where the server supports one, else in a plain collection with a TTL
    index: see `caas_data.repositories.analytics.ensure_events_collection`.
    """

    caas_area: ClassVar[Area] = Area.ANALYTICS
    caas_collection_options: ClassVar[dict[str, Any]] = {
        "timeseries": EVENTS_TIMESERIES,
        "expireAfterSeconds": int(EVENTS_RETENTION.total_seconds()),
    }

    name: str = Field(pattern=_NAME_PATTERN, description="Dotted event name.")
    value: float = Field(default=1.0, description="Summed by the metric rollups.")
    user_id: str | None = Field(default=None, max_length=128)
    properties: dict[str, JsonValue] = Field(default_factory=dict)

    class Settings:
        name = "events"
        indexes = [
            IndexModel(
                [("tenant_id", ASCENDING), ("created_at", DESCENDING)], name="tenant_created"
            ),
            IndexModel(
                [("tenant_id", ASCENDING), ("idempotency_key", ASCENDING)],
                unique=True,
                partialFilterExpression={"idempotency_key": {"$type": "string"}},
                name="tenant_idempotency_key_unique",
            ),
            IndexModel(
                [("tenant_id", ASCENDING), ("name", ASCENDING), ("created_at", DESCENDING)],
                name="tenant_name_created",
            ),
        ]


class MetricPeriod(StrEnum):
    """The width of a rollup bucket."""

    HOUR = "hour"
    DAY = "day"

    @property
    def width(self) -> timedelta:
        """The bucket width."""
        return timedelta(hours=1) if self is MetricPeriod.HOUR else timedelta(days=1)

    def floor(self, moment: datetime) -> datetime:
        """The start of the bucket `moment` falls in (UTC)."""
        moment = moment.astimezone(UTC)
        start = moment.replace(minute=0, second=0, microsecond=0)
        return start if self is MetricPeriod.HOUR else start.replace(hour=0)

    def ceil(self, moment: datetime) -> datetime:
        """The first bucket boundary at or after `moment`."""
        floor = self.floor(moment)
        return floor if floor == moment.astimezone(UTC) else floor + self.width


class Metric(TenantOwnedDocument):
    """A rollup of one event name over one bucket: rebuilt (not incremented) on every run."""

    caas_area: ClassVar[Area] = Area.ANALYTICS

    name: str = Field(pattern=_NAME_PATTERN)
    period: MetricPeriod
    bucket_start: datetime
    event_count: int = Field(ge=0)
    value_total: float = Field(default=0.0, description="Sum of the events' `value`.")
    computed_at: datetime

    class Settings:
        name = "metrics"
        indexes = [
            IndexModel(
                [
                    ("tenant_id", ASCENDING),
                    ("period", ASCENDING),
                    ("name", ASCENDING),
                    ("bucket_start", ASCENDING),
                ],
                unique=True,
                name="tenant_period_name_bucket_unique",
            ),
            IndexModel(
                [("tenant_id", ASCENDING), ("period", ASCENDING), ("bucket_start", DESCENDING)],
                name="tenant_period_bucket",
            ),
        ]


class AuditLog(AppendOnlyMixin, TenantMixin, CreatedAtMixin, BaseDocument):
    """One entry of a tenant's tamper-evident audit trail.

    Entries form a hash chain: `hash` covers every field (including `seq` and `prev_hash`),
    and `prev_hash` is the previous entry's `hash`. The unique `(tenant_id, seq)` index means
    two concurrent appends cannot both extend the same entry (the chain cannot fork).
    """

    caas_area: ClassVar[Area] = Area.ANALYTICS

    seq: int = Field(ge=1)
    prev_hash: str = Field(pattern=r"^[0-9a-f]{64}$")
    hash: str = Field(default="", pattern=r"^([0-9a-f]{64})?$")
    action: str = Field(pattern=_NAME_PATTERN, description="e.g. `api_key.created`.")
    actor: str | None = Field(default=None, max_length=200)
    target_type: str | None = Field(default=None, max_length=100)
    target_id: str | None = Field(default=None, max_length=200)
    details: dict[str, JsonValue] = Field(default_factory=dict)
    idempotency_key: str | None = Field(
        default=None,
        min_length=1,
        max_length=200,
        description="The caller's key: an append repeated with it returns the first entry.",
    )

    class Settings:
        name = "audit_logs"
        indexes = [
            IndexModel(
                [("tenant_id", ASCENDING), ("seq", ASCENDING)],
                unique=True,
                name="tenant_seq_unique",
            ),
            IndexModel(
                [("tenant_id", ASCENDING), ("created_at", DESCENDING)], name="tenant_created"
            ),
            IndexModel(
                [("tenant_id", ASCENDING), ("action", ASCENDING), ("created_at", DESCENDING)],
                name="tenant_action_created",
            ),
        ]

    @field_validator("created_at")
    @classmethod
    def _millisecond_utc(cls, value: datetime) -> datetime:
        # The hash covers created_at: it must survive the BSON round trip unchanged.
        if value.tzinfo is None:
            raise ValueError("created_at must be timezone-aware")
        value = value.astimezone(UTC)
        return value.replace(microsecond=value.microsecond // 1000 * 1000)

    def canonical(self) -> bytes:
        """The bytes the hash covers: sorted-key JSON of every field but `id` and `hash`."""
        payload: dict[str, Any] = {
            "schema_version": self.schema_version,
            "tenant_id": self.tenant_id,
            "seq": self.seq,
            "prev_hash": self.prev_hash,
            "created_at": self.created_at.astimezone(UTC).isoformat(timespec="milliseconds"),
            "action": self.action,
            "actor": self.actor,
            "target_type": self.target_type,
            "target_id": self.target_id,
            "details": self.details,
        }
        if self.idempotency_key is not None:  # entries written before the key hash as before
            payload["idempotency_key"] = self.idempotency_key
        text = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        return text.encode()

    def compute_hash(self) -> str:
        """SHA-256 hex of `canonical()`."""
        return hashlib.sha256(self.canonical()).hexdigest()


class AuditAnchor(TenantOwnedDocument):
    """Where a tenant's audit chain must start and end, kept apart from its entries.

    The entries alone cannot show that some were removed from either end: a chain cut short
    still links up. The anchor is updated in the same transaction as every append (head, count)
    and every retention delete (start), so `verify_chain` can tell a legitimately shortened
    chain from a truncated one. One per chain (`tenant_id` unique).
    """

    caas_area: ClassVar[Area] = Area.ANALYTICS
    # Only the audit repository moves an anchor: a tenant that could write its own anchor
    # could hide a truncation of its chain.
    caas_protected_fields: ClassVar[frozenset[str]] = frozenset(
        {
            "head_seq", "head_hash", "entry_count", "start_seq", "start_prev_hash", "removed",
            "adopted_seq",
        }
    )  # fmt: skip

    head_seq: int = Field(default=0, ge=0, description="seq of the newest entry; 0: none yet.")
    head_hash: str = Field(default=AUDIT_GENESIS_HASH, pattern=r"^[0-9a-f]{64}$")
    entry_count: int = Field(default=0, ge=0, description="Entries the chain holds now.")
    start_seq: int = Field(
        default=1, ge=1, description="seq of the oldest retained entry (head_seq + 1 if none)."
    )
    start_prev_hash: str = Field(
        default=AUDIT_GENESIS_HASH,
        pattern=r"^[0-9a-f]{64}$",
        description="The oldest retained entry's prev_hash: the last removed entry's hash.",
    )
    removed: int = Field(default=0, ge=0, description="Entries removed by retention so far.")
    adopted_seq: int | None = Field(
        default=None,
        ge=0,
        description="Head of a chain written before anchors, when its anchor was created.",
    )

    class Settings:
        name = "audit_anchors"
        indexes = [IndexModel([("tenant_id", ASCENDING)], unique=True, name="tenant_unique")]


DOCUMENTS: tuple[type[BaseDocument], ...] = (Event, Metric, AuditLog, AuditAnchor)
