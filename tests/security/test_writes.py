"""Inserts, replacements and bulk writes aimed at another tenant.

Each case writes with a unique `external_id`; afterwards no document with it may sit in the
attacker's placement under another tenant, and the victims' digest must be unchanged.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from beanie import BulkWriter
from pymongo import DeleteMany, DeleteOne, InsertOne, ReplaceOne, UpdateMany, UpdateOne

from caas_data import DataLayer
from caas_data.saas import User, UserRepository

from .attacks import LookAlike, Shifty
from .conftest import Seeded, World, attack, raw_users

Write = Callable[[DataLayer, str, Seeded, str], Awaitable[Any]]


def _doc(name: str, **extra: Any) -> dict[str, Any]:
    return {"external_id": name, "display_name": name, **extra}


async def _own_raw(layer: DataLayer) -> dict[str, Any]:
    found = await layer.collection(User).find_one({"external_id": "graph-root"})
    assert found is not None
    return dict(found)


async def _replace_own(layer: DataLayer, me: str, v: Seeded, name: str) -> Any:
    own = await _own_raw(layer)
    replacement = {k: val for k, val in own.items() if k != "_id"}
    replacement.update(external_id=name, tenant_id=v.tenant_id)
    return await layer.collection(User).replace_one({"_id": own["_id"]}, replacement)


async def _beanie_save_moved(layer: DataLayer, me: str, v: Seeded, name: str) -> Any:
    user = await User.find_one(User.external_id == "graph-root")
    assert user is not None
    user.tenant_id = v.tenant_id
    user.external_id = name
    return await user.save()


async def _beanie_insert(layer: DataLayer, me: str, v: Seeded, name: str) -> Any:
    return await User(**_doc(name), tenant_id=v.tenant_id).insert()


async def _beanie_insert_lookalike(layer: DataLayer, me: str, v: Seeded, name: str) -> Any:
    return await User(**_doc(name), tenant_id=LookAlike(v.tenant_id)).insert()


async def _beanie_insert_many(layer: DataLayer, me: str, v: Seeded, name: str) -> Any:
    return await User.insert_many(
        [User(**_doc(name + "-a")), User(**_doc(name), tenant_id=v.tenant_id)]
    )


INSERTS: dict[str, Write] = {
    "insert_victim": lambda layer, me, v, n: layer.collection(User).insert_one(
        _doc(n, tenant_id=v.tenant_id)
    ),
    "insert_lookalike": lambda layer, me, v, n: layer.collection(User).insert_one(
        _doc(n, tenant_id=LookAlike(v.tenant_id))
    ),
    "insert_shifty": lambda layer, me, v, n: layer.collection(User).insert_one(
        Shifty(_doc(n), _doc(n, tenant_id=v.tenant_id))
    ),
    "insert_many_mixed": lambda layer, me, v, n: layer.collection(User).insert_many(
        [_doc(n + "-a"), _doc(n, tenant_id=v.tenant_id)]
    ),
    "insert_many_lookalike": lambda layer, me, v, n: layer.collection(User).insert_many(
        [_doc(n, tenant_id=LookAlike(v.tenant_id))]
    ),
    "replace_own_with_victim": _replace_own,
    "beanie_insert": _beanie_insert,
    "beanie_insert_lookalike": _beanie_insert_lookalike,
    "beanie_insert_many": _beanie_insert_many,
    "beanie_save_moved": _beanie_save_moved,
    "repo_create_victim": lambda layer, me, v, n: layer.repo(UserRepository).create(
        _doc(n, tenant_id=v.tenant_id)
    ),
    "repo_create_lookalike": lambda layer, me, v, n: layer.repo(UserRepository).create(
        _doc(n, tenant_id=LookAlike(v.tenant_id))
    ),
}


def _bulk(requests: Callable[[str, Seeded, str], list[Any]]) -> Write:
    return lambda layer, me, v, n: layer.collection(User).bulk_write(requests(me, v, n))


BULK: dict[str, Write] = {
    "insert_victim": _bulk(lambda me, v, n: [InsertOne(_doc(n, tenant_id=v.tenant_id))]),
    "insert_lookalike": _bulk(
        lambda me, v, n: [InsertOne(_doc(n, tenant_id=LookAlike(v.tenant_id)))]
    ),
    "update_victim_filter": _bulk(
        lambda me, v, n: [UpdateOne({"tenant_id": v.tenant_id}, {"$set": {"display_name": n}})]
    ),
    "update_many_victim_ids": _bulk(
        lambda me, v, n: [UpdateMany({"_id": {"$in": v.user_ids}}, {"$set": {"display_name": n}})]
    ),
    "update_set_tenant": _bulk(
        lambda me, v, n: [
            UpdateOne({"external_id": "graph-root"}, {"$set": {"tenant_id": v.tenant_id}})
        ]
    ),
    "upsert_victim": _bulk(
        lambda me, v, n: [
            UpdateOne(
                {"external_id": n},
                {"$setOnInsert": {"tenant_id": v.tenant_id, "display_name": n}},
                upsert=True,
            )
        ]
    ),
    "replace_victim_doc": _bulk(
        lambda me, v, n: [ReplaceOne({"_id": v.user_ids[0]}, _doc(n, __v=0), upsert=True)]
    ),
    "replace_own_to_victim": _bulk(
        lambda me, v, n: [
            ReplaceOne({"external_id": "graph-root"}, _doc(n, tenant_id=v.tenant_id, __v=0))
        ]
    ),
    "delete_victim_filter": _bulk(lambda me, v, n: [DeleteMany({"tenant_id": v.tenant_id})]),
    "delete_victim_ids": _bulk(lambda me, v, n: [DeleteMany({"_id": {"$in": v.user_ids}})]),
    "delete_one_victim_id": _bulk(lambda me, v, n: [DeleteOne({"_id": v.user_ids[1]})]),
    "mixed_batch": _bulk(
        lambda me, v, n: [
            InsertOne(_doc(n + "-own")),
            UpdateMany({"$or": [{"tenant_id": v.tenant_id}]}, {"$set": {"display_name": n}}),
            InsertOne(_doc(n, tenant_id=v.tenant_id)),
        ]
    ),
}


async def _beanie_bulk_writer(layer: DataLayer, me: str, v: Seeded, name: str) -> Any:
    async with BulkWriter(object_class=User) as writer:
        await User.insert_one(User(**_doc(name), tenant_id=v.tenant_id), bulk_writer=writer)
        await User.find({"tenant_id": v.tenant_id}).update(
            {"$set": {"display_name": name}}, bulk_writer=writer
        )
        await User.find({"_id": {"$in": v.user_ids}}).delete(bulk_writer=writer)
    return None


async def _beanie_bulk_writer_lookalike(layer: DataLayer, me: str, v: Seeded, name: str) -> Any:
    async with BulkWriter(object_class=User) as writer:
        await User.insert_one(
            User(**_doc(name), tenant_id=LookAlike(v.tenant_id)), bulk_writer=writer
        )
    return None


BULK["beanie_bulk_writer"] = _beanie_bulk_writer
BULK["beanie_bulk_writer_lookalike"] = _beanie_bulk_writer_lookalike


async def _assert_no_stray(world: World, attacker: Seeded, name: str, what: str) -> None:
    raw = raw_users(world.layer, attacker.tenant_id)
    stray = await raw.find_one(
        {"external_id": {"$regex": f"^{name}"}, "tenant_id": {"$ne": attacker.tenant_id}}
    )
    assert stray is None, f"{what}: stored a document under {stray.get('tenant_id')!r}"


async def _run(world: World, attacker: Seeded, write: Write, what: str) -> None:
    name = f"w-{uuid.uuid4().hex[:10]}"
    await attack(
        world,
        attacker.tenant_id,
        lambda: write(world.layer, attacker.tenant_id, world.shared_victim, name),
        what,
    )
    await _assert_no_stray(world, attacker, name, what)


@pytest.mark.parametrize("case", list(INSERTS))
async def test_insert_cannot_land_in_another_tenant(
    world: World, attacker: Seeded, case: str
) -> None:
    await _run(world, attacker, INSERTS[case], case)


@pytest.mark.parametrize("case", list(BULK))
async def test_bulk_write_cannot_reach_another_tenant(
    world: World, attacker: Seeded, case: str
) -> None:
    await _run(world, attacker, BULK[case], f"bulk {case}")
