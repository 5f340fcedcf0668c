"""Analytics repositories: append-only events (time-series where supported) and metric rollups.

The audit trail has its own module (`caas_data.repositories.analytics.audit`).
"""

from __future__ import annotations

import weakref
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from beanie import PydanticObjectId
from pydantic import JsonValue
from pymongo import ASCENDING, IndexModel, UpdateOne
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import CollectionInvalid, OperationFailure

from caas_data.documents.analytics import (
    EVENTS_RETENTION,
    EVENTS_TIMESERIES,
    Event,
    Metric,
    MetricPeriod,
)
from caas_data.documents.base import Area, utcnow
from caas_data.documents.indexes import declared_indexes
from caas_data.documents.registry import spec_of
from caas_data.documents.writes import dump_document
from caas_data.driver_errors import translate_driver_errors
from caas_data.engine.collections import collection_options
from caas_data.engine.transactions import keyed_lock
from caas_data.errors import DocumentValidationError
from caas_data.repositories.base import Repository
from caas_data.tenancy.cutoffs import retention_cutoff, retention_limit

if TYPE_CHECKING:
    from caas_data.layer import DataLayer

__all__ = [
    "EventRepository",
    "EventStorage",
    "MetricRepository",
    "ensure_events_collection",
]


class EventStorage(StrEnum):
    """How the events collection is stored on this server."""

    TIME_SERIES = "time_series"
    PLAIN = "plain"


_TTL_INDEX = "ttl_created_at"
_NAMESPACE_EXISTS = 48
_INDEX_CONFLICTS = (85, 86)  # IndexOptionsConflict, IndexKeySpecsConflict

_storage: weakref.WeakKeyDictionary[DataLayer, EventStorage] = weakref.WeakKeyDictionary()


async def ensure_events_collection(
    layer: DataLayer,
    *,
    retention: timedelta = EVENTS_RETENTION,
    timeseries: Mapping[str, Any] | None = EVENTS_TIMESERIES,
) -> EventStorage:
    """Settle how `events` is stored and give it its retention (idempotent, cached per layer).

    `connect()` creates `events` from `Event.caas_collection_options`: time-series where the
    server accepts it, plain where it refuses (detected, not assumed). This completes either:
    a time-series collection gets `retention` as its expiry, a plain one a TTL index on
    `created_at`. A missing collection is created the same way (creation is tried, a refusal
    falls back to plain; `timeseries=None` asks for plain). An existing collection is never
    converted: that would mean copying every event.
    """
    known = _storage.get(layer)
    if known is not None:
        return known
    async with keyed_lock(layer, "analytics:events-storage"):  # one settles it per layer
        known = _storage.get(layer)
        if known is None:
            with translate_driver_errors(document_type=Event):
                known = await _ensure(layer, int(retention.total_seconds()), timeseries)
            _storage[layer] = known
    return known


async def _ensure(
    layer: DataLayer, ttl_seconds: int, timeseries: Mapping[str, Any] | None
) -> EventStorage:
    database = layer.unguarded_database(
        layer.database_name(Area.ANALYTICS), why="events storage options (TTL, time series) are DDL"
    )
    name = spec_of(Event).name
    options = await collection_options(database, name)
    if options is None:  # e.g. connected with create_platform_indexes=False
        storage = await _create(database, name, ttl_seconds, timeseries)
    else:
        storage = EventStorage.TIME_SERIES if "timeseries" in options else EventStorage.PLAIN
    await _apply_indexes(database, name, storage, ttl_seconds)
    return storage


async def _create(
    database: AsyncDatabase[Any], name: str, ttl_seconds: int, timeseries: Mapping[str, Any] | None
) -> EventStorage:
    if timeseries is not None:
        try:
            await database.create_collection(
                name, timeseries=timeseries, expireAfterSeconds=ttl_seconds
            )
            return EventStorage.TIME_SERIES
        except CollectionInvalid:
            pass  # created meanwhile (another process): take what is there
        except OperationFailure as exc:
            if exc.code != _NAMESPACE_EXISTS:
                timeseries = None  # the server refuses time-series: fall back to plain
    if timeseries is None:
        try:
            await database.create_collection(name)
        except CollectionInvalid:
            pass
        except OperationFailure as exc:
            if exc.code != _NAMESPACE_EXISTS:
                raise
    options = await collection_options(database, name) or {}
    return EventStorage.TIME_SERIES if "timeseries" in options else EventStorage.PLAIN


async def _apply_indexes(
    database: AsyncDatabase[Any], name: str, storage: EventStorage, ttl_seconds: int
) -> None:
    collection = database[name]
    indexes = declared_indexes(Event)
    if storage is EventStorage.PLAIN:
        indexes.append(
            IndexModel([("created_at", ASCENDING)], expireAfterSeconds=ttl_seconds, name=_TTL_INDEX)
        )
    else:
        await database.command("collMod", name, expireAfterSeconds=ttl_seconds)
    try:
        await collection.create_indexes(indexes)
    except OperationFailure as exc:
        if exc.code not in _INDEX_CONFLICTS:
            raise
        # Retention changed since the TTL index was made: change it in place.
        await database.command(
            "collMod", name, index={"name": _TTL_INDEX, "expireAfterSeconds": ttl_seconds}
        )
        await collection.create_indexes(indexes[:-1])


class EventRepository(Repository[Event]):
    """Activity events of the scope's tenant: append, read, and retention by age."""

    document_type = Event

    def _new(
        self,
        name: str,
        *,
        value: float = 1.0,
        user_id: str | None = None,
        properties: Mapping[str, JsonValue] | None = None,
        at: datetime | None = None,
    ) -> Event:
        if at is not None and at.tzinfo is None:
            raise DocumentValidationError("at must be timezone-aware", fields=("at",))
        event = self._validate(
            {"name": name, "value": value, "user_id": user_id, "properties": dict(properties or {})}
        )
        event.id = PydanticObjectId()
        if at is not None:
            event.created_at = at
        return event

    async def record(
        self,
        name: str,
        *,
        value: float = 1.0,
        user_id: str | None = None,
        properties: Mapping[str, JsonValue] | None = None,
        at: datetime | None = None,
    ) -> Event:
        """Append one event (`at` defaults to now)."""
        await ensure_events_collection(self._layer)
        event = self._new(name, value=value, user_id=user_id, properties=properties, at=at)
        await self.collection().insert_one(dump_document(event))
        return event

    async def record_many(self, events: Iterable[Mapping[str, Any]]) -> list[Event]:
        """Append several events in one round trip; each mapping takes `record`'s arguments."""
        news = [self._new(**dict(e)) for e in events]
        if news:
            await ensure_events_collection(self._layer)
            await self.collection().insert_many([dump_document(e) for e in news])
        return news

    async def create(self, document: Event | Mapping[str, Any]) -> Event:
        """`Repository.create`, once the collection's storage is settled."""
        await ensure_events_collection(self._layer)
        return await super().create(document)

    async def create_many(self, documents: Iterable[Event | Mapping[str, Any]]) -> list[Event]:
        """`Repository.create_many`, once the collection's storage is settled."""
        await ensure_events_collection(self._layer)
        return await super().create_many(documents)

    async def count_by_name(self, start: datetime, end: datetime) -> dict[str, int]:
        """Number of events per name in [start, end)."""
        cursor = await self.collection().aggregate(
            [
                {"$match": {"created_at": {"$gte": start, "$lt": end}}},
                {"$group": {"_id": "$name", "n": {"$sum": 1}}},
            ]
        )
        return {row["_id"]: row["n"] async for row in cursor}

    async def purge_older_than(self, cutoff: datetime, *, limit: int | None = None) -> int:
        """Retention before the TTL gets to it: delete events created before `cutoff`.

        Raises:
            DocumentValidationError: `cutoff` is naive or in the future, or `limit` is not a
                positive int (before any I/O).
        """
        cutoff, limit = retention_cutoff(cutoff), retention_limit(limit)
        return await self.collection().delete_older_than(cutoff, limit=limit)


class MetricRepository(Repository[Metric]):
    """Hourly and daily rollups of events, rebuilt from them by an aggregation pipeline."""

    document_type = Metric

    async def rollup(self, period: MetricPeriod, start: datetime, end: datetime) -> int:
        """Recompute the buckets covering [start, end) from the events; returns how many.

        Each bucket is computed whole and stored with `$set`, so re-running (after late
        events, or twice by mistake) gives the same totals, never double counts. In a
        tenant scope it rolls up that tenant; in a system scope, every tenant.
        """
        period = MetricPeriod(period)
        if start.tzinfo is None or end.tzinfo is None:
            raise DocumentValidationError("start and end must be timezone-aware")
        first, last = period.floor(start), period.ceil(end)
        if last <= first:
            return 0
        events = self._layer.collection(Event)
        cursor = await events.aggregate(
            [
                {"$match": {"created_at": {"$gte": first, "$lt": last}}},
                {
                    "$group": {
                        "_id": {
                            "tenant_id": "$tenant_id",
                            "name": "$name",
                            "bucket": {"$dateTrunc": {"date": "$created_at", "unit": period.value}},
                        },
                        "count": {"$sum": 1},
                        "total": {"$sum": "$value"},
                    }
                },
            ]
        )
        now = utcnow()
        operations = [
            UpdateOne(
                {
                    "tenant_id": row["_id"]["tenant_id"],
                    "period": period.value,
                    "name": row["_id"]["name"],
                    "bucket_start": row["_id"]["bucket"],
                },
                {
                    "$set": {
                        "event_count": row["count"],
                        "value_total": float(row["total"]),
                        "computed_at": now,
                    },
                    "$setOnInsert": {"schema_version": 1},
                },
                upsert=True,
            )
            async for row in cursor
        ]
        if operations:
            await self.collection().bulk_write(operations, ordered=False)
        return len(operations)

    async def series(
        self, name: str, period: MetricPeriod, start: datetime, end: datetime
    ) -> list[Metric]:
        """The stored buckets of one event name in [start, end), oldest first."""
        page = await self.find(
            {
                "name": name,
                "period": MetricPeriod(period).value,
                "bucket_start": {"$gte": start, "$lt": end},
            },
            sort="bucket_start",
            limit=1000,
        )
        return page.items
