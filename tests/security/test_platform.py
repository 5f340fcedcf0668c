"""Platform rows and operator operations from inside a tenant's scope.

The directory (`saas_clients`), admins (and their password hashes) and plans are the
platform's: from a tenant scope reads are limited to what a tenant may see and writes are
refused. Provision and deprovision are refused inside a tenant scope. After each attack the
resolver must still route the victim to its own placement.

Cases that would destroy a victim (directory rewrites, deletes, deprovision) get a fresh
victim of their own.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
import pytest_asyncio
from bson import json_util

from caas_data import DataLayer, Tier
from caas_data.documents.billing import Plan
from caas_data.documents.platform import (
    ApiKey,
    Application,
    ClientStatus,
    PlacementRecord,
    PlatformAdmin,
    SaasClient,
)
from caas_data.repositories.platform.directory import SaasClientRepository
from caas_data.tenancy.tiers import Placement

from .conftest import MODEL_TIERS, MODELS, Seeded, World, attack, marker, seed_tenant


async def _platform_digest(layer: DataLayer) -> str:
    """Every directory entry, admin and plan, raw: platform-wide rows a tenant must not move."""
    rows = []
    for area, name in (("platform", "saas_clients"), ("platform", "platform_admins"),
                       ("billing", "plans")):  # fmt: skip
        async for row in layer.client[f"{layer.prefix}_{area}"][name].find({}):
            rows.append(json_util.dumps([name, row], json_options=json_util.CANONICAL_JSON_OPTIONS))
    return hashlib.sha256("\n".join(sorted(rows)).encode()).hexdigest()


async def _assert_routes_home(world: World, victim: Seeded) -> None:
    layer = world.layer
    layer.resolver.invalidate(victim.tenant_id)
    placement = await layer.resolver.resolve_or_none(victim.tenant_id)
    expected = Placement.for_tier(
        victim.tenant_id, MODEL_TIERS[victim.model], database_prefix=layer.prefix
    )
    assert placement == expected, f"the victim now routes to {placement}"


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def admin_secret(world: World) -> str:
    """A platform admin whose password hash carries the shared victim's marker, and a plan."""
    secret = f"$argon2id$v=19$m=65536,t=3,p=4${marker(world.shared_victim.tenant_id)}"
    await world.layer.client[f"{world.layer.prefix}_platform"]["platform_admins"].insert_one(
        {"email": f"admin-{uuid.uuid4().hex[:8]}@caas.test", "display_name": "Admin",
         "roles": ["support"], "password_hash": secret, "status": "active", "__v": 0,
         "schema_version": 1}
    )  # fmt: skip
    # A plan, so that plan writes have something to change.
    await world.layer.client[f"{world.layer.prefix}_billing"]["plans"].insert_one(
        {"code": f"plan-{uuid.uuid4().hex[:8]}", "name": "Plan", "tier": "pro",
         "price_cents": 4900, "currency": "USD", "interval": "month", "limits": {},
         "active": True, "__v": 0, "schema_version": 1}
    )  # fmt: skip
    return secret


def _victim_entry(v: Seeded) -> Any:
    return SaasClient.find_one(SaasClient.tenant_id == v.tenant_id)


READS: dict[str, Callable[[World, Seeded], Awaitable[Any]]] = {
    "directory_entry": lambda w, v: _victim_entry(v),
    "directory_all": lambda w, v: SaasClient.find_all().to_list(),
    "directory_aggregate": lambda w, v: SaasClient.aggregate([{"$match": {}}]).to_list(),
    "directory_distinct": lambda w, v: SaasClient.distinct("tenant_id"),
    "directory_repository": lambda w, v: w.layer.repo(SaasClientRepository).get_by_tenant_id(
        v.tenant_id
    ),
    "admins_password_hashes": lambda w, v: PlatformAdmin.find_all().to_list(),
    "admins_projection": lambda w, v: (
        PlatformAdmin.get_pymongo_collection().find({}, {"password_hash": 1}).to_list()
    ),
    "victim_api_keys": lambda w, v: ApiKey.find({"tenant_id": v.tenant_id}).to_list(),
    "victim_applications": lambda w, v: Application.find({"_id": v.application_id}).to_list(),
    "plans_then_directory": lambda w, v: Plan.aggregate(
        [{"$lookup": {"from": "saas_clients", "pipeline": [], "as": "x"}}]
    ).to_list(),
}


@pytest.mark.parametrize("case", list(READS))
async def test_platform_reads_give_nothing_of_another_tenant(
    world: World, attacker: Seeded, admin_secret: str, case: str
) -> None:
    victim = world.shared_victim
    await attack(world, attacker.tenant_id, lambda: READS[case](world, victim), case)
    await _assert_routes_home(world, victim)


async def _insert_entry(w: World, v: Seeded) -> Any:
    entry = SaasClient(
        tenant_id=v.tenant_id,
        name="mine now",
        tier=Tier.ENTERPRISE,
        placement=PlacementRecord(database=f"{w.layer.prefix}_shared", collection_prefix=""),
    )
    return await entry.insert()


WRITES: dict[str, Callable[[World, Seeded], Awaitable[Any]]] = {
    "suspend_and_reroute": lambda w, v: _victim_entry(v).update(
        {"$set": {"status": "suspended", "placement.collection_prefix": "x_"}}
    ),
    "set_placement_database": lambda w, v: _victim_entry(v).set(
        {"placement.database": f"{w.layer.prefix}_shared"}
    ),
    "delete_entry": lambda w, v: _delete_entry(v),
    "update_all_entries": lambda w, v: SaasClient.find_all().update({"$set": {"tier": "free"}}),
    "insert_second_entry": _insert_entry,
    "replace_entry": lambda w, v: _replace_entry(v),
    "raw_handle_update": lambda w, v: SaasClient.get_pymongo_collection().update_many(
        {"tenant_id": v.tenant_id}, {"$set": {"status": "suspended"}}
    ),
    "plans_price_zero": lambda w, v: Plan.find_all().update({"$set": {"price_cents": 0}}),
    "admin_insert": lambda w, v: PlatformAdmin(
        email=f"evil-{uuid.uuid4().hex[:6]}@x.test",
        display_name="evil",
        roles=["super_admin"],
        password_hash="$argon2id$v=19$m=65536,t=3,p=4$evil-evil-evil",
    ).insert(),
    "admin_password_reset": lambda w, v: PlatformAdmin.find_all().update(
        {"$set": {"password_hash": "$argon2id$v=19$attacker-chosen-hash"}}
    ),
}


async def _delete_entry(v: Seeded) -> Any:
    entry = await _victim_entry(v)
    return None if entry is None else await entry.delete()


async def _replace_entry(v: Seeded) -> Any:
    entry = await _victim_entry(v)
    if entry is None:
        return None
    entry.placement = PlacementRecord(database=entry.placement.database, collection_prefix="x_")
    entry.status = ClientStatus.SUSPENDED
    return await entry.replace()


_PLATFORM_ROWS = (
    ("platform", "saas_clients"),
    ("platform", "platform_admins"),
    ("billing", "plans"),
)


@pytest_asyncio.fixture(loop_scope="session")
async def restored_platform(world: World) -> AsyncIterator[None]:
    """Put back every directory entry, admin and plan a write case changed.

    A write that gets through may touch every tenant's entry (the world's attackers too):
    later cases must not run against a directory this one rewrote.
    """
    layer = world.layer
    saved = {
        (area, name): await layer.client[f"{layer.prefix}_{area}"][name].find({}).to_list()
        for area, name in _PLATFORM_ROWS
    }
    yield
    for (area, name), rows in saved.items():
        collection = layer.client[f"{layer.prefix}_{area}"][name]
        for row in rows:
            await collection.replace_one({"_id": row["_id"]}, row, upsert=True)
    for seeded in [*world.attackers.values(), *world.victims.values()]:
        layer.resolver.invalidate(seeded.tenant_id)


@pytest.mark.usefixtures("restored_platform")
@pytest.mark.parametrize("case", list(WRITES))
async def test_platform_writes_are_refused_in_a_tenant_scope(
    world: World, attacker: Seeded, admin_secret: str, case: str
) -> None:
    victim = await seed_tenant(world.layer, "shared", stem="dir")
    before = await _platform_digest(world.layer)
    await attack(
        world,
        attacker.tenant_id,
        lambda: WRITES[case](world, victim),
        case,
        victims=[victim.tenant_id, *world.victim_ids],
    )
    assert await _platform_digest(world.layer) == before, f"{case} changed platform rows"
    await _assert_routes_home(world, victim)


# -- lifecycle operations from a tenant's scope -------------------------------------------------


@pytest.mark.parametrize("victim_model", MODELS)
async def test_deprovision_of_another_tenant_is_refused(world: World, victim_model: str) -> None:
    attacker = world.attackers["shared"]
    victim = await seed_tenant(world.layer, victim_model, stem="dep")
    await attack(
        world,
        attacker.tenant_id,
        lambda: world.layer.tenants.deprovision(victim.tenant_id, actor="attacker"),
        f"deprovision({victim_model}) in another tenant's scope",
        victims=[victim.tenant_id],
    )
    await _assert_routes_home(world, victim)


async def test_deprovision_from_each_model_is_refused(world: World, attacker: Seeded) -> None:
    victim = await seed_tenant(world.layer, "shared", stem="dep")
    await attack(
        world,
        attacker.tenant_id,
        lambda: world.layer.tenants.deprovision(victim.tenant_id),
        "deprovision in another tenant's scope",
        victims=[victim.tenant_id],
    )
    await _assert_routes_home(world, victim)


async def _provision_other(world: World, tenant_id: str, tier: Tier) -> Any:
    return await world.layer.tenants.provision(tenant_id, tier=tier)


@pytest.mark.parametrize("tier", [Tier.FREE, Tier.ENTERPRISE])
async def test_provision_of_another_tenant_is_refused(
    world: World, attacker: Seeded, tier: Tier
) -> None:
    # The victim's own tier again ("harmless" re-provisioning) and another tier.
    victim = world.shared_victim
    await attack(
        world,
        attacker.tenant_id,
        lambda: _provision_other(world, victim.tenant_id, tier),
        f"provision({victim.tenant_id}, {tier}) in another tenant's scope",
    )
    await _assert_routes_home(world, victim)


async def test_provision_of_a_new_tenant_is_refused(world: World, attacker: Seeded) -> None:
    fresh = f"new-{uuid.uuid4().hex[:10]}"
    outcome = await attack(
        world,
        attacker.tenant_id,
        lambda: _provision_other(world, fresh, Tier.FREE),
        "provision(new id) in a tenant's scope",
    )
    created = await world.layer.client[f"{world.layer.prefix}_platform"]["saas_clients"].find_one(
        {"tenant_id": fresh}
    )
    assert outcome.error is not None and created is None, "a tenant scope provisioned a new tenant"
