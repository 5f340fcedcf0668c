"""Deprovisioning removes exactly one tenant's data, wherever its isolation model put it."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from pymongo.asynchronous.collection import AsyncCollection

from caas_data import (
    DataLayer,
    TenantIdRetained,
    TenantNotFound,
    Tier,
    UnsafeOperation,
    tenant_scope,
)
from caas_data.documents.platform import SaasClient
from caas_data.repositories.analytics.audit import AuditLogRepository
from caas_data.saas import UserRepository

from .conftest import raw_collection

TenantFactory = Callable[..., Awaitable[str]]


async def seed(layer: DataLayer, tenant: str) -> None:
    async with tenant_scope(tenant):
        await layer.repo(UserRepository).create_many(
            [{"external_id": f"{tenant}-{i}", "display_name": tenant} for i in range(3)]
        )


@pytest.mark.parametrize("tier", [Tier.FREE, Tier.PRO, Tier.ENTERPRISE])
async def test_only_the_tenant_goes(
    caas_layer: DataLayer, caas_tenant: TenantFactory, tier: Tier
) -> None:
    leaving, staying = await caas_tenant(tier), await caas_tenant(tier)
    for tenant in (leaving, staying):
        await seed(caas_layer, tenant)

    assert await caas_layer.tenants.deprovision(leaving, actor="ops:1") is True

    users = raw_collection(caas_layer, leaving, tier, "users")
    assert await users.count_documents({"tenant_id": leaving}) == 0
    names = await caas_layer.client.list_database_names()
    if tier is Tier.ENTERPRISE:
        assert f"{caas_layer.prefix}_{leaving}" not in names
    if tier is Tier.PRO:
        shared = caas_layer.client[f"{caas_layer.prefix}_shared"]
        assert not [n for n in await shared.list_collection_names() if n.startswith(leaving)]
    with pytest.raises(TenantNotFound):
        async with tenant_scope(leaving):
            await caas_layer.repo(UserRepository).count()
    async with tenant_scope(staying):
        assert await caas_layer.repo(UserRepository).count() == 3
    async with caas_layer.system_scope():
        trail = (await caas_layer.repo(AuditLogRepository).trail(tenant_id=leaving)).items
    assert [(e.action, e.actor) for e in trail] == [("tenant.deprovisioned", "ops:1")]
    # Again: nothing left to do.
    assert await caas_layer.tenants.deprovision(leaving) is False


async def test_provisioning_again_after_deprovisioning_starts_empty(
    caas_layer: DataLayer, caas_tenant: TenantFactory
) -> None:
    tenant = await caas_tenant(Tier.PRO)
    await seed(caas_layer, tenant)
    await caas_layer.tenants.deprovision(tenant)
    # The id keeps a tombstone and its audit trail: reusing it is an explicit choice.
    with pytest.raises(TenantIdRetained):
        await caas_layer.tenants.provision(tenant, tier=Tier.PRO)
    await caas_layer.tenants.provision(tenant, tier=Tier.PRO, reuse_id="purge_retained")
    async with tenant_scope(tenant):
        users = caas_layer.repo(UserRepository)
        assert await users.count() == 0
        await users.create({"external_id": "again", "display_name": "x"})
        info = await raw_collection(caas_layer, tenant, Tier.PRO, "users").index_information()
    assert len(info) > 1  # indexes were created again, not remembered from before


async def test_a_directory_entry_pointing_elsewhere_is_refused(
    caas_layer: DataLayer, caas_tenant: TenantFactory
) -> None:
    victim, tampered = await caas_tenant(Tier.FREE), await caas_tenant(Tier.ENTERPRISE)
    await seed(caas_layer, victim)
    # A corrupted entry: an enterprise tenant whose database is the shared one.
    await directory(caas_layer).update_one(
        {"tenant_id": tampered},
        {"$set": {"placement.database": f"{caas_layer.prefix}_shared"}},
    )
    with pytest.raises(UnsafeOperation, match="not a place it owns"):
        await caas_layer.tenants.deprovision(tampered)
    async with tenant_scope(victim):
        assert await caas_layer.repo(UserRepository).count() == 3
    await directory(caas_layer).update_one(
        {"tenant_id": tampered},
        {"$set": {"placement.database": f"{caas_layer.prefix}_{tampered}"}},
    )


def directory(layer: DataLayer) -> AsyncCollection[Any]:
    return layer.unguarded_platform_collection(SaasClient, why="test: corrupt the directory")
