"""Tenant lifecycle operations are safe: run from the right scope, and a reused id starts clean.

Checked with the raw client (`layer.client`), never through the layer under test.
"""

from __future__ import annotations

from typing import Any

import pytest

from caas_data import DataLayer, TenantMismatch, Tier, UserRepository, system_scope, tenant_scope
from caas_data.testing import new_tenant_id

from .conftest import MODEL_TIERS, raw_collection


async def _tier_of(layer: DataLayer, tenant_id: str) -> Tier:
    entry = await _directory_entry(layer, tenant_id)
    assert entry is not None
    return Tier(entry["tier"])


async def _directory_entry(layer: DataLayer, tenant_id: str) -> dict[str, Any] | None:
    entries = layer.client[f"{layer.prefix}_platform"]["saas_clients"]
    return await entries.find_one({"tenant_id": tenant_id})


async def _digest(layer: DataLayer, tenant_id: str) -> tuple[Any, list[Any]]:
    """The tenant's directory entry and its users, read with the raw client."""
    users = raw_collection(layer, tenant_id, await _tier_of(layer, tenant_id), "users")
    rows = await users.find({"tenant_id": tenant_id}).sort("_id").to_list()
    return await _directory_entry(layer, tenant_id), rows


# -- 3. operator operations run only outside tenant scopes --------------------------------


async def test_lifecycle_operations_are_refused_inside_a_tenant_scope(
    caas_layer: DataLayer, shared_tenant: str, tenant: str
) -> None:
    a, b = shared_tenant, tenant
    for owner in (a, b):
        async with tenant_scope(owner):
            await caas_layer.repo(UserRepository).create(
                {"external_id": f"{owner}-1", "display_name": owner}
            )
    before = {t: await _digest(caas_layer, t) for t in (a, b)}
    newcomer = new_tenant_id("new")
    tier_of_b = await _tier_of(caas_layer, b)
    service = caas_layer.tenants

    async with tenant_scope(a):
        for call, target in [
            (lambda: service.deprovision(b, actor="ops:1"), b),
            (lambda: service.provision(b, tier=tier_of_b), b),
            (lambda: service.provision(newcomer, tier=Tier.FREE), newcomer),
            (lambda: service.deprovision(a), a),
            (lambda: service.provision(a, tier=Tier.FREE), a),
        ]:
            with pytest.raises(TenantMismatch, match=r"system_scope\(\)") as refused:
                await call()
            assert refused.value.tenant_id == a
            assert repr(target) in str(refused.value)
        placement = await service.placement(b)
        with pytest.raises(TenantMismatch):
            await service.ensure_collections(placement)

    assert {t: await _digest(caas_layer, t) for t in (a, b)} == before
    assert await _directory_entry(caas_layer, newcomer) is None


async def test_lifecycle_operations_run_in_a_system_scope(caas_layer: DataLayer) -> None:
    tenant = new_tenant_id("sys")
    async with system_scope():
        await caas_layer.tenants.provision(tenant, tier=MODEL_TIERS["shared"])
        assert (await _directory_entry(caas_layer, tenant)) is not None
        assert await caas_layer.tenants.deprovision(tenant, actor="ops:1") is True
