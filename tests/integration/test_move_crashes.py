"""A move killed with SIGKILL at each step, in several directions, then run again.

The child process (`move_worker`) dies without any clean-up between two batches, after the
copy before the fence, with the fence up before the switch, after the switch before the
clean-up, and in the middle of the clean-up. Running the move again finishes it: every
document exactly once in the final placement, nothing left in the old one, the sequence
and the audit chain intact, no move record left behind. In half of the cases the child also
writes users while it moves, so that the kill comes after its change stream has recorded a
resume token (the resumed move continues from that token): each acknowledged write is then
in the final placement exactly once.
"""

from __future__ import annotations

import signal

import pytest

from caas_data import DataLayer, Tier, tenant_scope
from caas_data.documents.moves import TenantMove
from caas_data.errors import MoveVerificationFailed, TenantMoving
from caas_data.saas import UserRepository
from caas_data.tenancy.tiers import Placement
from caas_data.testing._server import ServerHandle
from caas_data.testing.helpers import new_tenant_id
from tests.integration.moving import (
    MODEL_TIERS,
    check_after_move,
    raw_external_ids,
    run_move_child,
    seed,
    tenant_rows,
)

CRASHES = [  # event, nth, source, target, the child writes during its move
    ("copied_batch", 2, "shared", "pro", False),
    ("copied_batch", 3, "enterprise", "shared", True),
    ("copied", 1, "pro", "enterprise", False),
    ("copied", 1, "shared", "enterprise", True),
    ("fenced", 1, "pro", "shared", True),
    ("fenced", 1, "enterprise", "pro", False),
    ("switched", 1, "enterprise", "pro", True),
    ("switched", 1, "pro", "shared", False),
    ("cleaned_collection", 3, "pro", "enterprise", True),
    ("cleaned_collection", 2, "shared", "pro", False),
]


@pytest.mark.parametrize(("event", "nth", "source_model", "target_model", "write"), CRASHES)
async def test_killed_move_finishes_when_run_again(
    caas_server: ServerHandle,
    caas_layer: DataLayer,
    event: str,
    nth: int,
    source_model: str,
    target_model: str,
    write: bool,
) -> None:
    layer = caas_layer
    tenant_id = new_tenant_id("crash")
    await layer.tenants.provision(tenant_id, tier=MODEL_TIERS[source_model])
    seeded = await seed(layer, tenant_id, users=7)
    source = await layer.tenants.placement(tenant_id)

    code, acknowledged = await run_move_child(
        caas_server, layer, tenant_id, MODEL_TIERS[target_model], event, nth, write=write
    )
    assert code == -signal.SIGKILL
    record = await layer.unguarded_platform_collection(TenantMove, why="test").find_one(
        {"tenant_id": tenant_id}
    )
    assert record is not None  # the progress survived the kill
    if write and event != "copied_batch":
        # The child's stream had applied events: the resumed move continues from its token.
        assert acknowledged and record["resume_token"] is not None
    seeded.external_ids |= set(acknowledged)
    # The write in flight at the kill may have landed without its acknowledgement.
    in_flight = f"k{len(acknowledged)}"

    layer.resolver.invalidate(tenant_id)  # another process switched it: do not wait the TTL
    if event in ("copied_batch", "copied"):
        # Not fenced yet: the tenant keeps working at the old placement; the resumed
        # move's change streams carry these writes over.
        async with tenant_scope(tenant_id, layer=layer):
            await layer.repo(UserRepository).create({"external_id": "between", "display_name": "b"})
        seeded.external_ids.add("between")
    elif event == "fenced":
        with pytest.raises(TenantMoving):
            async with tenant_scope(tenant_id, layer=layer):
                await layer.repo(UserRepository).create({"external_id": "x", "display_name": "x"})

    report = await layer.tenants.move(tenant_id, fence_grace=0)
    assert report.to_tier is MODEL_TIERS[target_model]
    target = await layer.tenants.placement(tenant_id)
    assert target.tier is MODEL_TIERS[target_model]
    stored = await raw_external_ids(layer, target)
    assert len(stored) == len(set(stored))  # exactly once
    assert set(stored) - {in_flight} == seeded.external_ids - {in_flight}
    assert (await tenant_rows(layer, target))["messages"] == seeded.messages
    await check_after_move(layer, seeded, source)
    leftover = await layer.unguarded_platform_collection(TenantMove, why="test").find_one(
        {"tenant_id": tenant_id}
    )
    assert leftover is None


async def test_a_copy_that_does_not_verify_switches_nothing_and_the_next_run_recopies(
    caas_server: ServerHandle, caas_layer: DataLayer
) -> None:
    layer = caas_layer
    tenant_id = new_tenant_id("verify")
    await layer.tenants.provision(tenant_id, tier=Tier.PRO)
    seeded = await seed(layer, tenant_id, users=4)
    source = await layer.tenants.placement(tenant_id)
    code, _ = await run_move_child(caas_server, layer, tenant_id, Tier.ENTERPRISE, "copied")
    assert code == -signal.SIGKILL
    # The copy is damaged behind the move's back (no event in the source's stream says so).
    target = Placement.for_tier(tenant_id, Tier.ENTERPRISE, database_prefix=layer.prefix)
    copy = layer.unguarded_collection(target.database, "users", why="test damages the copy")
    await copy.update_one({"tenant_id": tenant_id}, {"$set": {"display_name": "damaged"}})
    await copy.insert_one({"tenant_id": tenant_id, "external_id": "stray", "display_name": "s"})

    with pytest.raises(MoveVerificationFailed, match=r"users: .* 2 differ by SHA-256"):
        await layer.tenants.move(tenant_id, fence_grace=0)
    assert await layer.tenants.placement(tenant_id) == source  # nothing switched
    async with tenant_scope(tenant_id, layer=layer):  # the fence is lifted
        await layer.repo(UserRepository).create({"external_id": "after", "display_name": "a"})
    seeded.external_ids.add("after")

    await layer.tenants.move(tenant_id, fence_grace=0)  # copies afresh
    moved = await layer.tenants.placement(tenant_id)
    assert moved.tier is Tier.ENTERPRISE
    assert sorted(await raw_external_ids(layer, moved)) == sorted(seeded.external_ids)
    async with tenant_scope(tenant_id, layer=layer):
        names = {u.display_name for u in (await layer.repo(UserRepository).find({})).items}
    assert "damaged" not in names
    await check_after_move(layer, seeded, source)
