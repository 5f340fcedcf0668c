"""Online moves between the three isolation models, with 50 tasks working in the tenant's scope.

Every direction: 25 writers create users (and rename each one they created) and 25 readers
page through users while the tenant moves. Afterwards every acknowledged write is in the new
placement exactly once with its last acknowledged name, nothing of the tenant is left in the
old placement, a bystander in the same collections is untouched, the message sequence goes
on and the audit chain holds.
"""

from __future__ import annotations

import asyncio

import pytest

from caas_data import DataLayer, tenant_scope
from caas_data.errors import TenantMoving
from caas_data.repositories import UserRepository
from caas_data.testing.helpers import new_tenant_id
from tests.integration.moving import (
    DIRECTIONS,
    MODEL_TIERS,
    check_after_move,
    raw_external_ids,
    seed,
    tenant_rows,
)

WRITERS = 25
READERS = 25
WRITES_EACH = 4  # create + rename, paced: the writes span the copy, the fence and the switch


@pytest.mark.parametrize(("source_model", "target_model"), DIRECTIONS)
async def test_online_move_with_50_concurrent_tasks(
    caas_layer: DataLayer, source_model: str, target_model: str
) -> None:
    layer = caas_layer
    tenant_id = new_tenant_id("mv")
    bystander = new_tenant_id("by")
    await layer.tenants.provision(tenant_id, tier=MODEL_TIERS[source_model])
    await layer.tenants.provision(bystander, tier=MODEL_TIERS[source_model])
    seeded = await seed(layer, tenant_id)
    await seed(layer, bystander, users=3, messages=1)
    source = await layer.tenants.placement(tenant_id)
    bystander_before = await tenant_rows(layer, await layer.tenants.placement(bystander))

    done = asyncio.Event()
    acknowledged: dict[str, str] = {}  # external id -> last acknowledged display name
    fenced_retries = 0
    reads = 0

    async def writer(number: int) -> None:
        nonlocal fenced_retries
        serial = 0
        while serial < WRITES_EACH:
            external_id = f"w{number}-{serial}"
            while True:  # a fenced write changed nothing: retry in a new scope
                try:
                    async with tenant_scope(tenant_id, layer=layer):
                        users = layer.repo(UserRepository)
                        user = await users.create(
                            {"external_id": external_id, "display_name": "new"}
                        )
                    break
                except TenantMoving:
                    fenced_retries += 1
                    await asyncio.sleep(0.02)
            acknowledged[external_id] = "new"
            while True:
                try:
                    async with tenant_scope(tenant_id, layer=layer):
                        users = layer.repo(UserRepository)
                        user = await users.get(user.id)
                        await users.update(user, display_name=f"renamed {serial}")
                    break
                except TenantMoving:
                    fenced_retries += 1
                    await asyncio.sleep(0.02)
            acknowledged[external_id] = f"renamed {serial}"
            serial += 1
            await asyncio.sleep(0.1)  # a request rate, not a flood

    async def reader() -> None:
        nonlocal reads
        while not done.is_set():
            async with tenant_scope(tenant_id, layer=layer):
                page = await layer.repo(UserRepository).find({}, limit=20)
            assert all(user.tenant_id == tenant_id for user in page.items)
            reads += 1
            await asyncio.sleep(0.05)

    tasks = [asyncio.create_task(writer(n)) for n in range(WRITERS)]
    tasks += [asyncio.create_task(reader()) for _ in range(READERS)]
    await asyncio.sleep(0.2)  # writes land before and during the copy
    try:
        report = await layer.tenants.move(
            tenant_id, to=MODEL_TIERS[target_model], batch_size=20, fence_grace=0
        )
    finally:
        await asyncio.gather(*tasks[:WRITERS])
        done.set()
        await asyncio.gather(*tasks)

    target = await layer.tenants.placement(tenant_id)
    assert target.tier is MODEL_TIERS[target_model]
    assert (target.database, target.collection_prefix) == (
        report.target.database,
        report.target.collection_prefix,
    )
    assert report.documents > 0 and reads > 0
    stored = await raw_external_ids(layer, target)
    expected = seeded.external_ids | set(acknowledged)
    assert sorted(stored) == sorted(expected)  # every acknowledged write, exactly once
    async with tenant_scope(tenant_id, layer=layer):
        users = layer.repo(UserRepository)
        for external_id, name in acknowledged.items():
            found = (await users.find({"external_id": external_id})).items
            assert [u.display_name for u in found] == [name]
    await check_after_move(layer, seeded, source)
    assert await tenant_rows(layer, await layer.tenants.placement(bystander)) == bystander_before
    assert (await layer.tenants.get(tenant_id)).tier is MODEL_TIERS[target_model]
