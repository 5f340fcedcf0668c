"""Routed handles are cached per (class, scope, placement) and still serve only their scope."""

from __future__ import annotations

import pytest

from caas_data import DataLayer, TenantMismatch, system_scope, tenant_scope
from caas_data.saas import User

from .conftest import Tenants


async def test_a_tenant_gets_its_own_cached_handle(caas_layer: DataLayer, tenants: Tenants) -> None:
    handles = {}
    for tenant in tenants.all:
        async with tenant_scope(tenant):
            first = caas_layer.collection(User)
            assert caas_layer.collection(User) is first  # no rebuild per call
            assert User.get_pymongo_collection() is first  # Beanie's path shares it
            assert caas_layer.collection(User, include_deleted=True) is not first
            assert first.rules.tenant_id == tenant
            handles[tenant] = first
    assert len({id(h) for h in handles.values()}) == 3
    async with tenant_scope(tenants.pro):
        with pytest.raises(TenantMismatch):
            await handles[tenants.shared].find_one({})  # still bound to its own scope
    async with system_scope():
        with pytest.raises(TenantMismatch):
            await handles[tenants.enterprise].count_documents({})
