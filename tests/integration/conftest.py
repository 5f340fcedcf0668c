"""Shared fixtures for the integration tests: fresh tenants, one per isolation model.

A test asks only for the tenants it uses: provisioning a collection-set or database tenant
creates some 25 collections, the largest set-up cost of the suite on the embedded server.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
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


MODEL_TIERS = {"shared": Tier.FREE, "pro": Tier.PRO, "enterprise": Tier.ENTERPRISE}
"""The `model` parameter of a test -> the tier that puts a tenant in that isolation model."""


async def _fresh(layer: DataLayer, model: str) -> str:
    tenant_id = new_tenant_id({"shared": "free", "pro": "pro", "enterprise": "ent"}[model])
    await layer.tenants.provision(tenant_id, tier=MODEL_TIERS[model])
    return tenant_id


@pytest_asyncio.fixture
async def tenants(caas_layer: DataLayer) -> Tenants:
    """Three fresh tenants, one per isolation model, for tests that compare or cross them."""
    return Tenants(
        await _fresh(caas_layer, "shared"),
        await _fresh(caas_layer, "pro"),
        await _fresh(caas_layer, "enterprise"),
    )


@pytest_asyncio.fixture
async def model_tenant(caas_layer: DataLayer, model: str) -> str:
    """A fresh tenant in the isolation model named by the test's `model` parameter."""
    return await _fresh(caas_layer, model)


@pytest_asyncio.fixture(params=list(MODEL_TIERS))
async def tenant(request: pytest.FixtureRequest, caas_layer: DataLayer) -> str:
    """A fresh tenant of one isolation model: a test asking for it runs once per model."""
    return await _fresh(caas_layer, request.param)


@pytest_asyncio.fixture
async def shared_tenant(caas_layer: DataLayer) -> str:
    """A fresh FREE tenant: shared collections, filtered by tenant_id."""
    return await _fresh(caas_layer, "shared")


@pytest_asyncio.fixture
async def pro_tenant(caas_layer: DataLayer) -> str:
    """A fresh PRO tenant: its own collection set."""
    return await _fresh(caas_layer, "pro")


@pytest_asyncio.fixture
async def enterprise_tenant(caas_layer: DataLayer) -> str:
    """A fresh ENTERPRISE tenant: its own database."""
    return await _fresh(caas_layer, "enterprise")


def raw_collection(layer: DataLayer, tenant_id: str, tier: Tier, name: str) -> AsyncCollection:
    """Where section 3 of the schema says a tenant's `name` collection lives (no layer logic)."""
    if tier is Tier.ENTERPRISE:
        return layer.client[f"{layer.prefix}_{tenant_id}"][name]
    if tier is Tier.PRO:
        return layer.client[f"{layer.prefix}_shared"][f"{tenant_id}_{name}"]
    return layer.client[f"{layer.prefix}_shared"][name]


def typed(value: Any) -> Any:
    """`value` with the exact type of every key and value beside it (equal only if BSON-equal)."""
    if isinstance(value, dict):
        return [(type(k), k, typed(v)) for k, v in value.items()]
    if isinstance(value, list):
        return [typed(v) for v in value]
    return (type(value), value)
