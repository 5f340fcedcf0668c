"""Append-only collections: inserts and reads only; retention deletes in bounded batches."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from typing import ClassVar

import pytest
import pytest_asyncio
from pymongo import UpdateOne

from caas_data import (
    AppendOnlyMixin,
    Area,
    BaseDocument,
    CreatedAtMixin,
    DataLayer,
    TenantMixin,
    Tier,
    UnsafeOperation,
    tenant_scope,
)
from caas_data.documents.base import utcnow
from caas_data.testing import ServerHandle, connect_for_tests, drop_prefix_databases, new_tenant_id


class Trail(AppendOnlyMixin, TenantMixin, CreatedAtMixin, BaseDocument):
    """A test-only append-only, tenant-owned collection."""

    caas_area: ClassVar[Area] = Area.ANALYTICS
    what: str

    class Settings:
        name = "test_trail"


@pytest_asyncio.fixture
async def layer(caas_server: ServerHandle) -> AsyncIterator[DataLayer]:
    layer = await connect_for_tests(caas_server.uri, documents=[Trail])
    try:
        yield layer
    finally:
        await drop_prefix_databases(layer)
        await layer.close()


@pytest.mark.parametrize(
    "call",
    [
        lambda c: c.update_one({}, {"$set": {"what": "x"}}),
        lambda c: c.update_many({}, {"$set": {"what": "x"}}),
        lambda c: c.replace_one({}, {"what": "x"}),
        lambda c: c.delete_one({}),
        lambda c: c.delete_many({}),
        lambda c: c.find_one_and_update({}, {"$set": {"what": "x"}}),
        lambda c: c.find_one_and_delete({}),
        lambda c: c.bulk_write([UpdateOne({}, {"$set": {"what": "x"}})]),
    ],
)
async def test_updates_and_deletes_are_refused(layer: DataLayer, call: object) -> None:
    tenant = new_tenant_id()
    await layer.tenants.provision(tenant, tier=Tier.FREE)
    async with tenant_scope(tenant):
        collection = layer.collection(Trail)
        await collection.insert_one({"what": "kept"})
        with pytest.raises(UnsafeOperation, match="append-only"):
            await call(collection)  # type: ignore[operator]
        assert [d["what"] async for d in collection.find({})] == ["kept"]
        stored = await collection.find_one({})
        assert "__v" not in stored and "updated_at" not in stored


async def test_retention_deletes_old_entries_in_batches(layer: DataLayer) -> None:
    a, b = new_tenant_id("a"), new_tenant_id("b")
    old = utcnow() - timedelta(days=40)
    for tenant in (a, b):
        await layer.tenants.provision(tenant, tier=Tier.FREE)
        async with tenant_scope(tenant):
            await layer.collection(Trail).insert_many(
                [{"what": f"old{i}", "created_at": old} for i in range(5)] + [{"what": "new"}]
            )
    async with tenant_scope(a):
        collection = layer.collection(Trail)
        cutoff = utcnow() - timedelta(days=30)
        assert await collection.delete_older_than(cutoff, limit=2) == 2
        assert await collection.delete_older_than(cutoff, limit=2) == 2
        assert await collection.delete_older_than(cutoff) == 1
        assert await collection.delete_older_than(cutoff) == 0
        assert [d["what"] async for d in collection.find({})] == ["new"]
    async with tenant_scope(b):
        assert await layer.collection(Trail).count_documents({}) == 6
