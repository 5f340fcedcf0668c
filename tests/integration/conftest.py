"""Shared fixtures for the integration tests: three tenants, one per isolation model."""

from __future__ import annotations

from dataclasses import dataclass

import pytest_asyncio
from pymongo.asynchronous.collection import AsyncCollection

from caas_data import DataLayer, Tier
from caas_data.testing.helpers import new_tenant_id


@dataclass(frozen=True)
class Tenants:
    shared: str
    pro: str
    enterprise: str

    @property
    def all(self) -> tuple[str, str, str]:
        return (self.shared, self.pro, self.enterprise)


@pytest_asyncio.fixture
async def tenants(caas_layer: DataLayer) -> Tenants:
    result = Tenants(new_tenant_id("free"), new_tenant_id("pro"), new_tenant_id("ent"))
    await caas_layer.tenants.provision(result.shared, tier=Tier.FREE)
    await caas_layer.tenants.provision(result.pro, tier=Tier.PRO)
    await caas_layer.tenants.provision(result.enterprise, tier=Tier.ENTERPRISE)
    return result


def raw_collection(layer: DataLayer, tenant_id: str, tier: Tier, name: str) -> AsyncCollection:
    """Where section 3 of the schema says a tenant's `name` collection lives (no layer logic)."""
    if tier is Tier.ENTERPRISE:
        return layer.client[f"{layer.prefix}_{tenant_id}"][name]
    if tier is Tier.PRO:
        return layer.client[f"{layer.prefix}_shared"][f"{tenant_id}_{name}"]
    return layer.client[f"{layer.prefix}_shared"][name]
