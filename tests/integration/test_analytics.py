"""Analytics: append-only events (time-series where the server has them), TTL retention and
re-runnable metric rollups."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from caas_data import DataLayer, UnsafeOperation, system_scope, tenant_scope
from caas_data.documents.analytics import EVENTS_RETENTION, MetricPeriod
from caas_data.documents.base import utcnow
from caas_data.repositories.analytics.events import (
    EventRepository,
    EventStorage,
    MetricRepository,
    ensure_events_collection,
)
from caas_data.testing import ServerHandle
from caas_data.testing.helpers import connect_for_tests

from .conftest import Tenants

HOUR = datetime(2026, 5, 4, 10, tzinfo=UTC)


async def events_options(layer: DataLayer) -> dict[str, Any]:
    database = layer.client[f"{layer.prefix}_analytics"]
    infos = await (await database.list_collections(filter={"name": "events"})).to_list()
    return dict(infos[0]["options"])


async def index_keys(layer: DataLayer) -> dict[str, Any]:
    info = await layer.client[f"{layer.prefix}_analytics"]["events"].index_information()
    return {name: (spec["key"], spec.get("expireAfterSeconds")) for name, spec in info.items()}


# -- storage detection -------------------------------------------------------------------------


async def drop_events(layer: DataLayer) -> None:
    await layer.client[f"{layer.prefix}_analytics"].drop_collection("events")


async def test_events_are_time_series_where_the_server_supports_them(
    caas_layer: DataLayer,
) -> None:
    storage = await ensure_events_collection(caas_layer)
    options = await events_options(caas_layer)
    # Detected, and consistent with what the server itself reports.
    assert (storage is EventStorage.TIME_SERIES) == ("timeseries" in options)
    version = (await caas_layer.client.admin.command("buildInfo"))["versionArray"]
    assert storage is (EventStorage.TIME_SERIES if version[0] >= 5 else EventStorage.PLAIN)
    assert options["timeseries"]["timeField"] == "created_at"
    assert options["timeseries"]["metaField"] == "tenant_id"
    assert options["expireAfterSeconds"] == int(EVENTS_RETENTION.total_seconds())
    keys = await index_keys(caas_layer)
    assert keys["tenant_created"][0] == [("tenant_id", 1), ("created_at", -1)]
    assert await ensure_events_collection(caas_layer) is storage  # cached, idempotent


async def test_a_missing_collection_is_created_and_detected(
    caas_layer: DataLayer, caas_server: ServerHandle
) -> None:
    assert await ensure_events_collection(caas_layer) is EventStorage.TIME_SERIES
    again = await connect_for_tests(caas_server.uri, database_prefix=caas_layer.prefix)
    try:
        assert "timeseries" in await events_options(again)  # a reconnect keeps it as it is
        await drop_events(again)  # as if connected with create_platform_indexes=False
        storage = await ensure_events_collection(again, retention=timedelta(days=30))
        assert storage is EventStorage.TIME_SERIES
        assert (await events_options(again))["expireAfterSeconds"] == 30 * 24 * 3600
        assert "tenant_name_created" in await index_keys(again)
    finally:
        await again.close()


@pytest.mark.caas_isolated  # re-creates the shared events collection
async def test_a_plain_collection_with_events_is_kept_and_gets_a_ttl(
    caas_layer: DataLayer, caas_tenant: Any
) -> None:
    tenant = await caas_tenant()
    await drop_events(caas_layer)  # a plain collection, as an older deployment left it
    raw = caas_layer.client[f"{caas_layer.prefix}_analytics"]["events"]
    await raw.insert_one({"tenant_id": tenant, "name": "legacy.event", "created_at": utcnow()})
    assert await ensure_events_collection(caas_layer) is EventStorage.PLAIN
    keys = await index_keys(caas_layer)
    assert keys["ttl_created_at"] == ([("created_at", 1)], int(EVENTS_RETENTION.total_seconds()))
    assert keys["tenant_created"][0] == [("tenant_id", 1), ("created_at", -1)]
    async with tenant_scope(tenant):
        assert await caas_layer.repo(EventRepository).count() == 1


@pytest.mark.caas_isolated  # re-creates the shared events collection
async def test_a_refusal_of_time_series_falls_back_to_a_plain_collection(
    caas_layer: DataLayer, caas_tenant: Any
) -> None:
    await drop_events(caas_layer)
    # This server has time-series collections; malformed options make it refuse the create,
    # which takes the same path as a server without them.
    storage = await ensure_events_collection(
        caas_layer,
        timeseries="not-options",  # type: ignore[arg-type]
        retention=timedelta(days=7),
    )
    assert storage is EventStorage.PLAIN
    assert "timeseries" not in await events_options(caas_layer)
    keys = await index_keys(caas_layer)
    assert keys["ttl_created_at"][1] == 7 * 24 * 3600
    assert keys["tenant_name_created"][0] == [("tenant_id", 1), ("name", 1), ("created_at", -1)]
    tenant = await caas_tenant()
    async with tenant_scope(tenant):
        await caas_layer.repo(EventRepository).record("still.works")
        assert await caas_layer.repo(EventRepository).count() == 1


# -- events ------------------------------------------------------------------------------------


@pytest.mark.parametrize("model", ["shared", "pro", "enterprise"])
async def test_events_are_append_only_and_per_tenant(
    caas_layer: DataLayer, tenants: Tenants, model: str
) -> None:
    tenant = getattr(tenants, model)
    async with tenant_scope(tenant):
        events = caas_layer.repo(EventRepository)
        first = await events.record("message.sent", user_id="u1", properties={"size": 12})
        await events.record_many([{"name": "message.sent"}, {"name": "user.login", "value": 2}])
        collection = events.collection()
        with pytest.raises(UnsafeOperation, match="append-only"):
            await collection.update_one({"_id": first.id}, {"$set": {"name": "x.y"}})
        with pytest.raises(UnsafeOperation, match="append-only"):
            await collection.delete_many({})
        with pytest.raises(UnsafeOperation, match="append-only"):
            await events.purge(first.id)
        stored = await collection.find_one({"_id": first.id})
        assert stored["properties"] == {"size": 12} and stored["tenant_id"] == tenant
        assert not {"updated_at", "__v", "deleted_at"} & stored.keys()
        now = utcnow()
        counts = await events.count_by_name(now - timedelta(minutes=5), now + timedelta(minutes=5))
        assert counts == {"message.sent": 2, "user.login": 1}
    other = next(t for t in tenants.all if t != tenant)
    async with tenant_scope(other):
        assert await caas_layer.repo(EventRepository).count() == 0


async def test_retention_removes_old_events_in_batches(
    caas_layer: DataLayer, tenants: Tenants
) -> None:
    old = utcnow() - timedelta(days=120)
    for tenant in (tenants.shared, tenants.pro):
        async with tenant_scope(tenant):
            events = caas_layer.repo(EventRepository)
            await events.record_many([{"name": "old.event", "at": old} for _ in range(3)])
            await events.record("new.event")
    async with tenant_scope(tenants.shared):
        events = caas_layer.repo(EventRepository)
        cutoff = utcnow() - EVENTS_RETENTION
        assert await events.purge_older_than(cutoff, limit=2) == 2
        assert await events.purge_older_than(cutoff) == 1
        assert [e.name for e in (await events.find()).items] == ["new.event"]
    async with tenant_scope(tenants.pro):
        assert await caas_layer.repo(EventRepository).count() == 4


async def test_naive_timestamps_are_refused(caas_layer: DataLayer, shared_tenant: str) -> None:
    from caas_data import DocumentValidationError

    async with tenant_scope(shared_tenant):
        with pytest.raises(DocumentValidationError, match="timezone-aware"):
            await caas_layer.repo(EventRepository).record("x.y", at=datetime(2026, 1, 1))
        with pytest.raises(DocumentValidationError, match="name"):
            await caas_layer.repo(EventRepository).record("Not A Name")


# -- metrics -----------------------------------------------------------------------------------


async def seed_events(layer: DataLayer, tenant: str, spec: list[tuple[str, int, float]]) -> None:
    async with tenant_scope(tenant):
        await layer.repo(EventRepository).record_many(
            [
                {"name": name, "value": value, "at": HOUR + timedelta(minutes=m)}
                for name, m, value in spec
            ]
        )


def as_table(metrics: list[Any]) -> list[tuple[str, datetime, int, float]]:
    return [(m.name, m.bucket_start, m.event_count, m.value_total) for m in metrics]


async def test_rollups_are_rebuilt_not_double_counted(
    caas_layer: DataLayer, tenants: Tenants
) -> None:
    spec = [("message.sent", 5, 1.0), ("message.sent", 30, 2.0), ("message.sent", 70, 4.0)]
    await seed_events(caas_layer, tenants.pro, spec)
    await seed_events(caas_layer, tenants.shared, [("message.sent", 10, 100.0)])
    window = (HOUR, HOUR + timedelta(hours=2))
    async with tenant_scope(tenants.pro):
        metrics = caas_layer.repo(MetricRepository)
        assert await metrics.rollup(MetricPeriod.HOUR, *window) == 2
        assert await metrics.rollup(MetricPeriod.HOUR, *window) == 2  # re-run: same totals
        series = await metrics.series("message.sent", MetricPeriod.HOUR, *window)
        assert as_table(series) == [
            ("message.sent", HOUR, 2, 3.0),
            ("message.sent", HOUR + timedelta(hours=1), 1, 4.0),
        ]
    await seed_events(caas_layer, tenants.pro, [("message.sent", 45, 8.0)])  # a late event
    async with tenant_scope(tenants.pro):
        metrics = caas_layer.repo(MetricRepository)
        # A window inside the hour still recomputes the whole hour.
        await metrics.rollup(
            MetricPeriod.HOUR, HOUR + timedelta(minutes=40), HOUR + timedelta(minutes=50)
        )
        series = await metrics.series("message.sent", MetricPeriod.HOUR, *window)
        assert as_table(series)[0] == ("message.sent", HOUR, 3, 11.0)
        assert await metrics.count() == 2  # the other tenant's events were not rolled up here
        await metrics.rollup(MetricPeriod.DAY, HOUR, HOUR)
        day = await metrics.series(
            "message.sent", MetricPeriod.DAY, HOUR - timedelta(days=1), HOUR + timedelta(days=1)
        )
        assert as_table(day) == [("message.sent", HOUR.replace(hour=0), 4, 15.0)]


@pytest.mark.caas_isolated  # reads platform-wide state
async def test_a_system_rollup_covers_every_tenant(caas_layer: DataLayer, tenants: Tenants) -> None:
    for i, tenant in enumerate(tenants.all):
        await seed_events(caas_layer, tenant, [("user.login", 1, 1.0)] * (i + 1))
    async with system_scope():
        metrics = caas_layer.repo(MetricRepository)
        assert await metrics.rollup(MetricPeriod.DAY, HOUR, HOUR + timedelta(hours=1)) == 3
        assert await metrics.rollup(MetricPeriod.DAY, HOUR, HOUR + timedelta(hours=1)) == 3
        rows = {m.tenant_id: m.event_count for m in (await metrics.find()).items}
    assert rows == {tenants.shared: 1, tenants.pro: 2, tenants.enterprise: 3}
    async with tenant_scope(tenants.enterprise):
        assert [m.event_count for m in (await caas_layer.repo(MetricRepository).find()).items] == [
            3
        ]
