"""Online moves between the three isolation models, with 50 tasks working in the tenant's scope.

Every direction: 25 writers create users (and rename each one they created) and 25 readers
page through users while the tenant moves. Afterwards every acknowledged write is in the new
placement exactly once with its last acknowledged name, nothing of the tenant is left in the
old placement, a bystander in the same collections is untouched, the message sequence goes
on and the audit chain holds. Then: the fence seen from a second layer (another process)
whose cache still names the old placement, and `move_pending()` carrying out a recorded
tier change.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Mapping
from typing import Any

import pytest

from caas_data import DataLayer, Tier, system_scope, tenant_scope
from caas_data.errors import TenantMoving
from caas_data.platform import SaasClientRepository
from caas_data.repositories import UserRepository
from caas_data.testing import ServerHandle
from caas_data.testing.helpers import connect_for_tests, new_tenant_id
from tests.integration.moving import (
    DIRECTIONS,
    MODEL_TIERS,
    check_after_move,
    raw_external_ids,
    run_move_child,
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
            await asyncio.sleep(0.25)  # a page view rate: 100 reads/s in all, not a flood

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


@pytest.mark.parametrize(
    ("source_model", "target_model"),
    [("shared", "pro"), ("pro", "enterprise"), ("enterprise", "shared")],
)
async def test_a_second_layer_with_a_stale_cache_never_writes_to_the_old_placement(
    caas_server: ServerHandle,
    caas_layer: DataLayer,
    monkeypatch: pytest.MonkeyPatch,
    source_model: str,
    target_model: str,
) -> None:
    layer = caas_layer
    tenant_id = new_tenant_id("fence")
    await layer.tenants.provision(tenant_id, tier=MODEL_TIERS[source_model])
    seeded = await seed(layer, tenant_id, users=3, messages=1)
    source = await layer.tenants.placement(tenant_id)
    # Another process of the application, whose cache outlives the switch for sure.
    monkeypatch.setenv("CAAS_TENANT_CACHE_TTL_SECONDS", "600")
    other = await connect_for_tests(caas_server.uri, database_prefix=layer.prefix)
    try:
        async with tenant_scope(tenant_id, layer=other):
            first = (await other.repo(UserRepository).find({}, limit=1)).items[0]
        assert await other.tenants.placement(tenant_id) == source  # cached

        # A third process moves the tenant and dies right after the switch: the old copy
        # is intact and fenced, the clean-up has not begun.
        code, _ = await run_move_child(
            caas_server, layer, tenant_id, MODEL_TIERS[target_model], "switched"
        )
        assert code == -signal.SIGKILL
        layer.resolver.invalidate(tenant_id)
        target = await layer.tenants.placement(tenant_id)
        assert target != source and await other.tenants.placement(tenant_id) == source

        with pytest.raises(TenantMoving):  # an insert routed to the old placement
            async with tenant_scope(tenant_id, layer=other):
                await other.repo(UserRepository).create(
                    {"external_id": "stale-1", "display_name": "x"}
                )
        with pytest.raises(TenantMoving):  # an update routed there
            async with tenant_scope(tenant_id, layer=other):
                await other.repo(UserRepository).update(first, display_name="stale update")

        # The operator finishes the move; the emptied old placement stays fenced for the
        # grace (held open here, then the move is stopped inside it and run again).
        cleaned = asyncio.Event()

        def on_progress(event: str, details: Mapping[str, Any]) -> None:
            if event == "cleaned_collection" and details["collection"] == "users":
                cleaned.set()

        finishing = asyncio.create_task(
            layer.tenants.move(tenant_id, fence_grace=600, on_progress=on_progress)
        )
        waiting = asyncio.create_task(cleaned.wait())
        await asyncio.wait({finishing, waiting}, timeout=300, return_when=asyncio.FIRST_COMPLETED)
        if not cleaned.is_set():  # the move ended (its error fails the test) or stalled
            waiting.cancel()
            if finishing.done():
                await finishing
            finishing.cancel()
            pytest.fail("the move did not clean the old users collection")
        assert await raw_external_ids(layer, source) == []
        with pytest.raises(TenantMoving):  # still fenced, though empty
            async with tenant_scope(tenant_id, layer=other):
                await other.repo(UserRepository).create(
                    {"external_id": "stale-2", "display_name": "x"}
                )
        assert await raw_external_ids(layer, source) == []

        other.resolver.invalidate(tenant_id)  # its TTL ran out: it reads the directory
        assert await other.tenants.placement(tenant_id) == target
        async with tenant_scope(tenant_id, layer=other):
            await other.repo(UserRepository).create({"external_id": "fresh", "display_name": "f"})
        seeded.external_ids.add("fresh")

        # Stop the held grace. On Python 3.11 one cancel can be swallowed when it lands as a
        # driver call completes (asyncio.wait_for, which PyMongo's timeoutMS uses, gh-86296):
        # the task then sleeps out the whole grace. Cancel until it has stopped.
        while not finishing.done():
            finishing.cancel()
            await asyncio.wait({finishing}, timeout=1)
        with pytest.raises(asyncio.CancelledError):
            await finishing
        await layer.tenants.move(tenant_id, fence_grace=0)  # drops the old placement
    finally:
        await other.close()
    assert sorted(await raw_external_ids(layer, target)) == sorted(seeded.external_ids)
    async with tenant_scope(tenant_id, layer=layer):
        kept = await layer.repo(UserRepository).get(first.id)
    assert kept.display_name == first.display_name
    await check_after_move(layer, seeded, source)


@pytest.mark.caas_isolated  # move_pending() moves every pending tenant of its databases
async def test_move_pending_carries_out_a_requested_tier_change(caas_layer: DataLayer) -> None:
    layer = caas_layer
    tenant_id = new_tenant_id("pend")
    await layer.tenants.provision(tenant_id, tier=Tier.FREE)
    seeded = await seed(layer, tenant_id, users=3, messages=2)
    source = await layer.tenants.placement(tenant_id)
    async with system_scope():
        await layer.repo(SaasClientRepository).request_tier_change(
            Tier.PRO, tenant_id=tenant_id, actor="billing"
        )
    assert (await layer.tenants.get(tenant_id)).pending_tier is Tier.PRO
    assert (await layer.tenants.placement(tenant_id)).tier is Tier.FREE  # only recorded

    done = await layer.tenants.move_pending(actor="job", fence_grace=0)
    assert not done.nothing_to_do
    assert [(r.tenant_id, r.from_tier, r.to_tier, r.moved) for r in done.reports] == [
        (tenant_id, Tier.FREE, Tier.PRO, True)
    ]
    entry = await layer.tenants.get(tenant_id)
    assert (entry.tier, entry.pending_tier) == (Tier.PRO, None)
    assert entry.placement.collection_prefix == f"{tenant_id}_"
    target = await layer.tenants.placement(tenant_id)
    assert sorted(await raw_external_ids(layer, target)) == sorted(seeded.external_ids)
    await check_after_move(layer, seeded, source)

    again = await layer.tenants.move_pending(actor="job", fence_grace=0)
    assert again.nothing_to_do and again.reports == ()
    assert "nothing to do" in str(again)
    assert (await layer.tenants.get(tenant_id)).tier is Tier.PRO


async def test_other_tenants_deletes_in_shared_collections_do_not_hold_the_fence(
    caas_layer: DataLayer,
) -> None:
    """The fenced drain ends once it reaches the present, whatever others delete meanwhile.

    A delete event carries only `_id`, so the stream of a shared source keeps every delete of
    every tenant; a neighbour deleting steadily used to keep the drain (and the fence) going
    for as long as it deleted.
    """
    layer = caas_layer
    moving, neighbour = new_tenant_id("mv"), new_tenant_id("nb")
    for tenant in (moving, neighbour):
        await layer.tenants.provision(tenant, tier=Tier.FREE)
    await seed(layer, moving, users=3, messages=1)
    stop = asyncio.Event()
    deleted = 0

    async def neighbour_deletes() -> None:
        nonlocal deleted
        async with tenant_scope(neighbour):
            users = layer.repo(UserRepository)
            while not stop.is_set():
                user = await users.create({"external_id": f"n{deleted}", "display_name": "n"})
                await users.purge(user)
                deleted += 1

    churn = asyncio.create_task(neighbour_deletes())
    try:
        report = await asyncio.wait_for(
            layer.tenants.move(moving, to=Tier.PRO, fence_grace=0), timeout=120
        )
    finally:
        stop.set()
        await churn
    assert report.moved and deleted > 0
    assert (await layer.tenants.placement(moving)).isolation.value != "shared"
