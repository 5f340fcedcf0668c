"""Group counters under concurrent joins and leaves, within one process and across two."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
import pytest_asyncio
from beanie import PydanticObjectId

from caas_data import (
    DataLayer,
    DocumentValidationError,
    NotFoundError,
    Tier,
    tenant_scope,
)
from caas_data.documents.saas.groups import Group, GroupMember
from caas_data.repositories.saas.groups import GroupMemberRepository, GroupRepository
from caas_data.testing._server import ServerHandle
from caas_data.testing.helpers import connect_for_tests

from .conftest import MODEL_TIERS as TIERS

# One tenant per test (the `tenants` fixture would provision three): these tests repeat.
MODELS = list(TIERS)
TenantFactory = Callable[..., Awaitable[str]]


def ids(n: int) -> list[PydanticObjectId]:
    return [PydanticObjectId() for _ in range(n)]


async def stored_counts(layer: DataLayer, group: Group) -> tuple[int, int, int, int]:
    """(member_count, active documents, owner_count, active owner documents)."""
    fresh = await layer.repo(GroupRepository).get(group.id)
    members = layer.repo(GroupMemberRepository)
    active = await members.count({"group_id": group.id, "status": "active"})
    owners = await members.count({"group_id": group.id, "status": "active", "role": "owner"})
    return fresh.member_count, active, fresh.owner_count, owners


@pytest_asyncio.fixture
async def second_layer(
    caas_server: ServerHandle, caas_layer: DataLayer
) -> AsyncIterator[DataLayer]:
    """Another connection to the same databases: what a second app process would have."""
    layer = await connect_for_tests(caas_server.uri, database_prefix=caas_layer.prefix)
    try:
        yield layer
    finally:
        await layer.close()


def on(layer: DataLayer, tenant: str, call: Callable[[GroupRepository], Awaitable[Any]]) -> Any:
    async def run() -> Any:
        async with layer.tenant_scope(tenant):
            return await call(layer.repo(GroupRepository))

    return run()


@pytest.mark.parametrize("model", MODELS)
async def test_concurrent_joins_and_leaves_keep_member_count_exact(
    caas_layer: DataLayer, caas_tenant: TenantFactory, model: str
) -> None:
    tenant = await caas_tenant(tier=TIERS[model])
    owner = PydanticObjectId()
    leaving, staying, newcomers = ids(20), ids(5), ids(20)
    async with tenant_scope(tenant):
        group = await caas_layer.repo(GroupRepository).create_with_members(
            name="busy", owner_id=owner, member_ids=leaving + staying, visibility="public"
        )
    gid = group.id
    operations = (
        [lambda g, u=u: g.leave(gid, u) for u in leaving]
        + [lambda g, u=u: g.join(gid, u) for u in newcomers]
        + [lambda g, u=u: g.join(gid, u) for u in newcomers[:5]]  # the same users again
        + [lambda g, u=u: g.join(gid, u) for u in staying]  # already members: no change
    )
    seed = random.randrange(1 << 30)
    random.Random(seed).shuffle(operations)
    assert len(operations) == 50
    results = await asyncio.gather(*(on(caas_layer, tenant, op) for op in operations))
    assert all(r.group_id == gid for r in results)
    async with tenant_scope(tenant):
        counts = await stored_counts(caas_layer, group)
    assert counts == (26, 26, 1, 1), f"shuffle seed {seed}"


@pytest.mark.parametrize("model", MODELS)
async def test_concurrent_joins_never_overfill_a_group(
    caas_layer: DataLayer, caas_tenant: TenantFactory, model: str
) -> None:
    tenant = await caas_tenant(tier=TIERS[model])
    async with tenant_scope(tenant):
        group = await caas_layer.repo(GroupRepository).create_with_members(
            name="ten", owner_id=PydanticObjectId(), visibility="public", max_members=10
        )
    results = await asyncio.gather(
        *(on(caas_layer, tenant, lambda g, u=u: g.join(group.id, u)) for u in ids(30)),
        return_exceptions=True,
    )
    full = [r for r in results if isinstance(r, DocumentValidationError)]
    assert len(full) == 21 and all(e.fields == ("max_members",) for e in full)
    async with tenant_scope(tenant):
        assert await stored_counts(caas_layer, group) == (10, 10, 1, 1)


async def test_two_processes_racing_on_the_same_members_keep_counts_exact(
    caas_layer: DataLayer, second_layer: DataLayer, caas_tenant: TenantFactory
) -> None:
    # Both "processes" leave the same 12 members and join the same 12 newcomers: only the
    # transaction stops a double count (the per-process lock cannot see the other process).
    tenant = await caas_tenant(tier=Tier.FREE)
    leaving, newcomers = ids(12), ids(12)
    async with caas_layer.tenant_scope(tenant):  # two layers: say which
        group = await caas_layer.repo(GroupRepository).create_with_members(
            name="shared", owner_id=PydanticObjectId(), member_ids=leaving, visibility="public"
        )
    gid = group.id
    # Each layer serialises its own calls in the order given: giving both the same order
    # makes them work on the same user at the same moment, the race that matters here.
    work: list[tuple[str, PydanticObjectId]] = [("leave", u) for u in leaving]
    work += [("join", u) for u in newcomers]
    random.shuffle(work)
    calls = [
        on(layer, tenant, lambda g, what=what, u=u: getattr(g, what)(gid, u))
        for what, u in work
        for layer in (caas_layer, second_layer)
    ]
    results = await asyncio.gather(*calls, return_exceptions=True)
    not_members = [r for r in results if isinstance(r, NotFoundError)]
    assert len(not_members) == 12  # each member left once; the second leave found them gone
    assert all(isinstance(r, GroupMember) for r in results if r not in not_members)
    async with caas_layer.tenant_scope(tenant):
        assert await stored_counts(caas_layer, group) == (13, 13, 1, 1)
        documents = await caas_layer.repo(GroupMemberRepository).count({"group_id": gid})
        assert documents == 25  # one document per user, whatever the races


async def test_two_owners_leaving_at_once_leave_one_owner(
    caas_layer: DataLayer, second_layer: DataLayer, caas_tenant: TenantFactory
) -> None:
    tenant = await caas_tenant(tier=Tier.PRO)
    first, second = ids(2)
    async with caas_layer.tenant_scope(tenant):  # two layers: say which
        groups = caas_layer.repo(GroupRepository)
        group = await groups.create_with_members(name="duo", owner_id=first, member_ids=[second])
        await groups.set_role(group.id, second, "owner", actor=first)
    results = await asyncio.gather(
        on(caas_layer, tenant, lambda g: g.leave(group.id, first)),
        on(second_layer, tenant, lambda g: g.leave(group.id, second)),
        return_exceptions=True,
    )
    refused = [r for r in results if isinstance(r, DocumentValidationError)]
    assert len(refused) == 1 and "last owner" in str(refused[0])
    async with caas_layer.tenant_scope(tenant):  # two layers: say which
        assert await stored_counts(caas_layer, group) == (1, 1, 1, 1)
