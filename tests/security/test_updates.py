"""Updates that try to move a document between tenants or rewrite the fields the layer owns.

Tenant moves run against the attacker's own root user (and as an upsert that matches
nothing); layer-owned fields are attacked on a fresh user of the attacker's, so a successful
attack spoils no later case. The stored values are checked with the raw client afterwards.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from beanie import PydanticObjectId
from pymongo import UpdateOne

from caas_data import DataLayer, tenant_scope
from caas_data.errors import CaasDataError
from caas_data.saas import User, UserRepository

from .attacks import OWNED_FIELDS, OWNED_OPERATORS, TENANT_UPDATES
from .conftest import Seeded, World, attack, attack_each, raw_users

UpdateCall = Callable[[DataLayer, dict[str, Any], Any, bool], Awaitable[Any]]


async def _beanie_update(layer: DataLayer, query: dict[str, Any], update: Any, upsert: bool) -> Any:
    if upsert:
        return await User.find(query).upsert(
            update, on_insert=User(external_id="ghost", display_name="ghost")
        )
    return await User.find(query).update(update)


UPDATE_CALLS: dict[str, UpdateCall] = {
    "update_one": lambda layer, q, u, up: layer.collection(User).update_one(q, u, upsert=up),
    "update_many": lambda layer, q, u, up: layer.collection(User).update_many(q, u, upsert=up),
    "find_one_and_update": lambda layer, q, u, up: layer.collection(User).find_one_and_update(
        q, u, upsert=up
    ),
    "bulk_update": lambda layer, q, u, up: layer.collection(User).bulk_write(
        [UpdateOne(q, u, upsert=up)]
    ),
    "beanie_update": _beanie_update,
    "repo_update_many": lambda layer, q, u, up: layer.repo(UserRepository).update_many(q, u),
}


async def both(*calls: Callable[[], Awaitable[Any]]) -> list[Any]:
    """Run every call; a `CaasDataError` refuses that call only (raw errors propagate)."""
    results = []
    for call in calls:
        try:
            results.append(await call())
        except CaasDataError as exc:
            results.append(exc)
    return results


@pytest.mark.parametrize("shape", list(TENANT_UPDATES))
async def test_update_cannot_move_a_document(world: World, attacker: Seeded, shape: str) -> None:
    layer = world.layer
    update = TENANT_UPDATES[shape](attacker.tenant_id, world.shared_victim)
    # Each path gets a document of its own: a path that moves one spoils nothing for the next.
    targets = {call: await _fresh_user(world, attacker) for call in UPDATE_CALLS}
    ghosts = {call: {"external_id": f"ghost-{uuid.uuid4().hex[:8]}"} for call in UPDATE_CALLS}

    def run(call: str) -> Callable[[], Awaitable[Any]]:
        write = UPDATE_CALLS[call]
        return lambda: both(
            lambda: write(layer, {"_id": targets[call]}, update, False),
            lambda: write(layer, ghosts[call], update, True),
        )

    failures: list[str] = []
    try:
        await attack_each(world, attacker.tenant_id, {c: run(c) for c in UPDATE_CALLS}, shape)
    except AssertionError as exc:
        failures.append(str(exc))
    # The attacker's documents still belong to it, wherever they live.
    raw = raw_users(layer, attacker.tenant_id)
    for call in UPDATE_CALLS:
        moved = await raw.find_one({"_id": targets[call]})
        owner = "<removed>" if moved is None else moved.get("tenant_id", "<unset>")
        if type(owner) is not str or owner != attacker.tenant_id:
            failures.append(f"{call}({shape}) moved the document to {owner!r}")
        stray = await raw.find_one({**ghosts[call], "tenant_id": {"$ne": attacker.tenant_id}})
        if stray is not None:
            failures.append(f"{call}({shape}) upserted a document under {stray.get('tenant_id')!r}")
    assert not failures, "\n".join(failures)


async def _fresh_user(world: World, attacker: Seeded, *, updates: int = 0) -> PydanticObjectId:
    """A new user of the attacker's, updated `updates` times (so `__v` == updates)."""
    users = world.layer.repo(UserRepository)
    async with tenant_scope(attacker.tenant_id, layer=world.layer):
        user = await users.create({"external_id": f"target-{uuid.uuid4().hex[:10]}",
                                   "display_name": "target"})  # fmt: skip
        for n in range(updates):
            user = await users.update(user, display_name=f"target {n}")
    assert user.id is not None
    return user.id


_MISSING = object()


def _owned(row: dict[str, Any]) -> dict[str, Any]:
    return {name: row.get(name, _MISSING) for name in OWNED_FIELDS}


async def _assert_owned_fields_kept(
    world: World, attacker: Seeded, user_id: Any, before: dict[str, Any], what: str
) -> None:
    after = await raw_users(world.layer, attacker.tenant_id).find_one({"_id": user_id})
    assert after is not None, f"{what}: the document disappeared"
    owned = _owned(after)
    # The layer bumps `__v` by one on every update it lets through.
    assert owned["__v"] in (before["__v"], before["__v"] + 1), (
        f"{what}: __v went from {before['__v']} to {owned['__v']}"
    )
    changed = {
        k: (before[k], owned[k]) for k in OWNED_FIELDS if k != "__v" and owned[k] != before[k]
    }
    assert not changed, f"{what}: layer-owned fields changed: {changed}"


@pytest.mark.parametrize("field", OWNED_FIELDS)
async def test_raw_update_leaves_owned_fields_to_the_layer(
    world: World, attacker: Seeded, field: str
) -> None:
    raw = raw_users(world.layer, attacker.tenant_id)
    targets = {op: await _fresh_user(world, attacker, updates=1) for op in OWNED_OPERATORS}
    befores = {op: _owned(await raw.find_one({"_id": uid})) for op, uid in targets.items()}
    updates = {op: build(field) for op, build in OWNED_OPERATORS.items()}

    def run(op: str) -> Callable[[], Awaitable[Any]]:
        return lambda: world.layer.collection(User).update_many({"_id": targets[op]}, updates[op])

    failures: list[str] = []
    try:
        await attack_each(world, attacker.tenant_id, {op: run(op) for op in targets}, field)
    except AssertionError as exc:
        failures.append(str(exc))
    for op, user_id in targets.items():
        try:
            await _assert_owned_fields_kept(
                world, attacker, user_id, befores[op], f"update_many {updates[op]}"
            )
        except AssertionError as exc:
            failures.append(str(exc).splitlines()[0])
    assert not failures, "\n".join(failures)


# `__v` rewound to 0 through every update path: the worst case (optimistic locking defeated).
REWIND_PATHS: dict[str, Callable[[DataLayer, Any], Awaitable[Any]]] = {
    **{
        name: (lambda c: lambda layer, uid: c(layer, {"_id": uid}, {"$set": {"__v": 0}}, False))(
            call
        )
        for name, call in UPDATE_CALLS.items()
    },
    "pipeline_update": lambda layer, uid: layer.collection(User).update_one(
        {"_id": uid}, [{"$set": {"__v": 0}}]
    ),
    "beanie_find_one_set": lambda layer, uid: User.find_one(User.id == uid).set({"__v": 0}),
    "beanie_update_many_min": lambda layer, uid: User.find(User.id == uid).update_many(
        {"$min": {"__v": 0}}
    ),
}


@pytest.mark.parametrize("path", list(REWIND_PATHS))
async def test_version_cannot_be_rewound(world: World, attacker: Seeded, path: str) -> None:
    user_id = await _fresh_user(world, attacker, updates=3)
    before = _owned(await raw_users(world.layer, attacker.tenant_id).find_one({"_id": user_id}))
    assert before["__v"] == 3
    await attack(world, attacker.tenant_id, lambda: REWIND_PATHS[path](world.layer, user_id), path)
    await _assert_owned_fields_kept(world, attacker, user_id, before, f"rewind via {path}")


RESURRECTIONS: dict[str, Callable[[DataLayer, Any], Awaitable[Any]]] = {
    "unset_deleted_at": lambda layer, uid: layer.collection(User).update_many(
        {"_id": uid, "deleted_at": {"$ne": None}}, {"$unset": {"deleted_at": "", "deleted_by": ""}}
    ),
    "set_deleted_at_null": lambda layer, uid: layer.collection(
        User, include_deleted=True
    ).update_one({"_id": uid}, {"$set": {"deleted_at": None}}),
    "pipeline_unset": lambda layer, uid: layer.collection(User, include_deleted=True).update_one(
        {"_id": uid}, [{"$unset": ["deleted_at", "deleted_by"]}]
    ),
    "beanie_update": lambda layer, uid: User.find(
        {"_id": uid, "deleted_at": {"$exists": True}}
    ).update({"$set": {"deleted_at": None}}),
    "repo_update_many": lambda layer, uid: layer.repo(UserRepository).update_many(
        {"_id": uid}, {"$set": {"deleted_at": None}}, include_deleted=True
    ),
}


@pytest.mark.parametrize("path", list(RESURRECTIONS))
async def test_soft_deleted_document_is_not_resurrected(
    world: World, attacker: Seeded, path: str
) -> None:
    user_id = await _fresh_user(world, attacker)
    async with tenant_scope(attacker.tenant_id, layer=world.layer):
        await world.layer.repo(UserRepository).soft_delete(user_id)
    before = _owned(await raw_users(world.layer, attacker.tenant_id).find_one({"_id": user_id}))
    assert before["deleted_at"] is not None
    await attack(world, attacker.tenant_id, lambda: RESURRECTIONS[path](world.layer, user_id), path)
    await _assert_owned_fields_kept(world, attacker, user_id, before, f"resurrect via {path}")
