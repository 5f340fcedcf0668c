"""Tenant-owned rows in platform-wide collections: the scope filters them; system_scope sees
all; without either they raise."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import ClassVar

import pytest
import pytest_asyncio
from pydantic import Field
from pymongo import ASCENDING, IndexModel

from caas_data import (
    Area,
    DataLayer,
    TenantContextMissing,
    TenantMismatch,
    TenantOwnedDocument,
    Tier,
    system_scope,
    tenant_scope,
)
from caas_data.repositories import Repository
from caas_data.testing import ServerHandle, connect_for_tests, drop_prefix_databases, new_tenant_id


class Ledger(TenantOwnedDocument):
    """A test-only tenant-owned collection in the billing database."""

    caas_area: ClassVar[Area] = Area.BILLING

    amount: int = Field(ge=0)

    class Settings:
        name = "test_ledger"
        indexes = [IndexModel([("tenant_id", ASCENDING), ("amount", ASCENDING)])]


class LedgerRepository(Repository[Ledger]):
    document_type = Ledger


@pytest_asyncio.fixture
async def layer(caas_server: ServerHandle) -> AsyncIterator[DataLayer]:
    layer = await connect_for_tests(caas_server.uri, documents=[Ledger])
    try:
        yield layer
    finally:
        await drop_prefix_databases(layer)
        await layer.close()


async def test_tenant_owned_rows_follow_the_scope(layer: DataLayer) -> None:
    a, b = new_tenant_id("a"), new_tenant_id("b")
    await layer.tenants.provision(a, tier=Tier.FREE)
    await layer.tenants.provision(b, tier=Tier.ENTERPRISE)
    for tenant, amounts in ((a, [1, 2]), (b, [10])):
        async with tenant_scope(tenant):
            repo = layer.repo(LedgerRepository)
            for amount in amounts:
                await repo.create({"amount": amount})
    raw = layer.client[f"{layer.prefix}_billing"]["test_ledger"]
    assert await raw.count_documents({}) == 3  # one platform-wide collection
    async with tenant_scope(a):
        repo = layer.repo(LedgerRepository)
        assert sorted(x.amount for x in await repo.find()) == [1, 2]
        assert await Ledger.find().count() == 2
        with pytest.raises(TenantMismatch):
            await repo.create({"amount": 5, "tenant_id": b})
    async with system_scope():
        repo = layer.repo(LedgerRepository)
        assert sorted(x.amount for x in await repo.find()) == [1, 2, 10]
        await repo.create({"amount": 7, "tenant_id": b})
        with pytest.raises(TenantMismatch, match="must carry its tenant_id"):
            await repo.collection().insert_one({"amount": 7})
    with pytest.raises(TenantContextMissing):
        await layer.repo(LedgerRepository).count()
    with pytest.raises(TenantContextMissing):
        await Ledger.find().to_list()


async def test_system_scope_cannot_nest_in_a_tenant_scope(layer: DataLayer) -> None:
    tenant = new_tenant_id()
    await layer.tenants.provision(tenant, tier=Tier.PRO)
    async with tenant_scope(tenant):
        with pytest.raises(TenantMismatch):
            async with system_scope():
                pass


async def test_tenant_data_is_not_reachable_from_a_system_scope(layer: DataLayer) -> None:
    from caas_data.saas import UserRepository

    async with system_scope():
        with pytest.raises(TenantContextMissing):
            await layer.repo(UserRepository).count()
