"""Scopes under concurrency: 50 interleaved tasks never see another tenant."""

from __future__ import annotations

import asyncio
import random

from caas_data import DataLayer, Tier, current_tenant_id, tenant_scope
from caas_data.saas import User, UserRepository
from caas_data.testing.helpers import new_tenant_id

STEPS = 3  # per task: write, then read through the repository and through Beanie


async def test_fifty_interleaved_tasks_stay_in_their_tenant(caas_layer: DataLayer) -> None:
    tiers = [Tier.FREE, Tier.STARTER, Tier.PRO, Tier.ENTERPRISE]
    tenants = [new_tenant_id("c") for _ in range(5)]
    for i, tenant in enumerate(tenants):
        await caas_layer.tenants.provision(tenant, tier=tiers[i % len(tiers)])
    rng = random.Random(7)
    seen: list[tuple[str, set[str]]] = []

    async def worker(n: int) -> None:
        tenant = tenants[n % len(tenants)]
        async with tenant_scope(tenant):
            repo = caas_layer.repo(UserRepository)
            for step in range(STEPS):
                await asyncio.sleep(rng.random() / 200)  # interleave with the others
                assert current_tenant_id() == tenant
                await repo.create({"external_id": f"w{n}-{step}", "display_name": f"{tenant}"})
                page = await repo.find(limit=1000)
                beanie_view = await User.find().to_list()
                seen.append(
                    (tenant, {u.tenant_id for u in page} | {u.tenant_id for u in beanie_view})
                )

    await asyncio.gather(*(worker(n) for n in range(50)))
    assert len(seen) == 50 * STEPS
    for tenant, tenants_seen in seen:
        assert tenants_seen == {tenant}
    for tenant in tenants:
        async with tenant_scope(tenant):
            assert await caas_layer.repo(UserRepository).count() == 10 * STEPS


async def test_tasks_created_inside_a_scope_inherit_it(caas_layer: DataLayer) -> None:
    tenant = new_tenant_id()
    await caas_layer.tenants.provision(tenant, tier=Tier.PRO)
    async with tenant_scope(tenant):
        child = asyncio.create_task(asyncio.sleep(0, result=current_tenant_id()))
        assert await child == tenant
    assert current_tenant_id() is None
