"""Hostile tenant ids, prefix collisions, and documents bson or the server cannot take.

Malformed and reserved ids are refused with `InvalidTenantId` before any I/O (nothing is
created for them). Ids whose names border on another tenant's or on the platform's
(`user` + `_devices`, `shared-…`) stay in their own place. Oversized and odd documents end
in a `CaasDataError`, never a raw bson or Python error.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from caas_data import DataLayer, InvalidTenantId, tenant_scope
from caas_data.errors import CaasDataError
from caas_data.saas import User, UserRepository

from .conftest import (
    MODEL_TIERS,
    PROVISIONED_MODELS,
    Seeded,
    World,
    attack,
    attack_each,
    victim_digest,
)

BAD_IDS = [
    "a",
    "ab",
    "a_b",
    "acme_users",
    "Acme",
    "ACME-CORP",
    "acme.corp",
    "acme$corp",
    "$where",
    "acme corp",
    " acme",
    "acme\x00",
    "acmé-corp",
    "\u0430cme",  # a Cyrillic a
    "x" * 33,
    "x" * 5000,
    "-acme",
    "1acme",
    "",
    "platform",
    "billing",
    "analytics",
    "shared",
    "security",
    "system.users",
    "../admin",
]


@pytest.mark.parametrize("tenant_id", BAD_IDS, ids=lambda t: repr(t)[:24])
async def test_bad_tenant_id_is_refused_before_any_io(world: World, tenant_id: str) -> None:
    layer = world.layer
    before = set(await layer.client.list_database_names())
    for operation in (
        lambda: layer.tenants.provision(tenant_id, tier="enterprise"),
        lambda: layer.tenants.deprovision(tenant_id),
        lambda: _enter(layer, tenant_id),
    ):
        with pytest.raises(InvalidTenantId):
            await operation()
    assert set(await layer.client.list_database_names()) == before
    directory = layer.client[f"{layer.prefix}_platform"]["saas_clients"]
    assert await directory.count_documents({"tenant_id": tenant_id}) == 0


@pytest.mark.parametrize("tenant_id", [123, None, b"acme-corp", ["acme-corp"]], ids=repr)
async def test_non_string_tenant_id_is_refused(world: World, tenant_id: Any) -> None:
    with pytest.raises(InvalidTenantId):
        await _enter(world.layer, tenant_id)
    with pytest.raises(InvalidTenantId):
        await world.layer.tenants.provision(tenant_id, tier="free")


async def _enter(layer: DataLayer, tenant_id: Any) -> None:
    async with tenant_scope(tenant_id, layer=layer):
        await User.find({}).to_list()


# Ids bordering on other names: a PRO tenant "user" owns `user_*` collections in the shared
# database, beside the shared `user_devices`; "media" beside `media_metadata`; an enterprise
# tenant "shared-…" owns the database `{prefix}_shared-…`, beside `{prefix}_shared`.
BORDER_IDS = [("user", "pro"), ("media", "pro"), ("group", "pro"), ("shared-db", "enterprise"),
              ("platform-db", "enterprise"), ("admin", "enterprise")]  # fmt: skip


@pytest.mark.parametrize(("stem", "model"), BORDER_IDS)
async def test_bordering_ids_stay_in_their_place(world: World, stem: str, model: str) -> None:
    layer = world.layer
    # One bordering id per session layer: later runs in the same session get a suffix.
    tenant_id = stem if stem not in PROVISIONED_MODELS else f"{stem}-{uuid.uuid4().hex[:6]}"
    before = await victim_digest(layer, world.victim_ids)
    shared_before = set(await layer.client[f"{layer.prefix}_shared"].list_collection_names())
    try:
        PROVISIONED_MODELS[tenant_id] = model
        await layer.tenants.provision(tenant_id, tier=MODEL_TIERS[model])
    except CaasDataError:
        return  # refusing a bordering id is secure too
    placement = await layer.tenants.placement(tenant_id)
    assert placement.database not in ("admin", "local", "config")
    async with tenant_scope(tenant_id, layer=layer):
        seen = await layer.collection(User).find({}).to_list()
        await layer.repo(UserRepository).create({"external_id": "b", "display_name": "b"})
    assert seen == [], f"a new tenant {tenant_id!r} sees documents: {seen[:1]}"
    assert await layer.tenants.deprovision(tenant_id, actor="security-suite")
    shared_after = set(await layer.client[f"{layer.prefix}_shared"].list_collection_names())
    assert shared_before - shared_after <= {
        n for n in shared_before if n.startswith(f"{tenant_id}_")
    }, "deprovisioning dropped collections it does not own"
    assert (await victim_digest(layer, world.victim_ids)).value == before.value


# -- documents bson or the server cannot take ---------------------------------------------------


def _nested(depth: int) -> dict[str, Any]:
    value: dict[str, Any] = {"leaf": 1}
    for _ in range(depth):
        value = {"n": value}
    return value


ODD_VALUES: dict[str, Callable[[], dict[str, Any]]] = {
    "over_16mb": lambda: {"blob": "a" * (17 * 1024 * 1024)},
    "nul_in_key": lambda: {"a\x00b": 1},
    "dollar_key": lambda: {"$where": "1"},
    "nested_dollar_key": lambda: {"profile": {"$gt": 1}},
    "int_2_70": lambda: {"n": 2**70},
    "nested_200": lambda: {"deep": _nested(200)},
    "non_str_key": lambda: {1: "x"},
    "set_value": lambda: {"tags": {"a", "b"}},
    "object_value": lambda: {"thing": object()},
}

ODD_PATHS: dict[str, Callable[[DataLayer, dict[str, Any]], Awaitable[Any]]] = {
    "insert": lambda layer, extra: layer.collection(User).insert_one(
        {"external_id": f"odd-{uuid.uuid4().hex[:8]}", "display_name": "odd", **extra}
    ),
    "update": lambda layer, extra: layer.collection(User).update_many(
        {"external_id": "graph-root"}, {"$set": extra}
    ),
    "filter": lambda layer, extra: layer.collection(User).find(extra).to_list(),
    "repo_create": lambda layer, extra: layer.repo(UserRepository).create(
        {"external_id": f"odd-{uuid.uuid4().hex[:8]}", "display_name": "odd", **extra}
    ),
}


@pytest.mark.parametrize("value", list(ODD_VALUES))
async def test_odd_document_gives_a_caas_error(world: World, attacker: Seeded, value: str) -> None:
    def run(path: str) -> Callable[[], Awaitable[Any]]:
        return lambda: ODD_PATHS[path](world.layer, ODD_VALUES[value]())

    await attack_each(world, attacker.tenant_id, {p: run(p) for p in ODD_PATHS}, value)


BOUNDED_INPUTS: dict[str, Callable[[DataLayer], Awaitable[Any]]] = {
    "limit_10_30": lambda layer: layer.repo(UserRepository).find({}, limit=10**30),
    "filter_2_80": lambda layer: layer.repo(UserRepository).find({"__v": {"$gt": 2**80}}),
    "cursor_garbage": lambda layer: layer.repo(UserRepository).find({}, after="A" * 10_000),
    "cursor_of_huge_ints": lambda layer: layer.repo(UserRepository).find(
        {}, after="WzEwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwXQ=="
    ),
    "get_long_id": lambda layer: layer.repo(UserRepository).get("f" * 5000),
    "get_int_id": lambda layer: layer.repo(UserRepository).get(2**70),
}


@pytest.mark.parametrize("case", list(BOUNDED_INPUTS))
async def test_bad_scalar_inputs_give_a_caas_error(
    world: World, attacker: Seeded, case: str
) -> None:
    await attack(world, attacker.tenant_id, lambda: BOUNDED_INPUTS[case](world.layer), case)
