"""Every collection operation stays inside the tenant, in the shared model above all.

Two tenants share the physical `users` collection; each operation runs through the guarded
collection (what Beanie and the repositories use) in tenant A's scope, and tenant B's
documents must come out untouched and unseen.
"""

from __future__ import annotations

import asyncio
import contextvars
from typing import Any

import pytest
from pymongo import DeleteMany, InsertOne, ReplaceOne, ReturnDocument, UpdateMany, UpdateOne

from caas_data import DataLayer, TenantMismatch, Tier, UnsafeOperation, tenant_scope
from caas_data.saas import User, UserDevice
from caas_data.testing.helpers import new_tenant_id


@pytest.fixture
async def pair(caas_layer: DataLayer) -> tuple[str, str]:
    a, b = new_tenant_id("a"), new_tenant_id("b")
    for tenant in (a, b):
        await caas_layer.tenants.provision(tenant, tier=Tier.FREE)
        async with tenant_scope(tenant):
            await caas_layer.collection(User).insert_many(
                [{"external_id": f"u{i}", "display_name": tenant, "n": i} for i in range(3)]
            )
    return a, b


async def b_snapshot(layer: DataLayer, b: str) -> list[dict[str, Any]]:
    raw = layer.client[f"{layer.prefix}_shared"]["users"]
    return await raw.find({"tenant_id": b}, sort=[("_id", 1)]).to_list()


async def test_reads_see_only_the_tenant(caas_layer: DataLayer, pair: tuple[str, str]) -> None:
    a, _ = pair
    async with tenant_scope(a):
        users = caas_layer.collection(User)
        assert {d["tenant_id"] for d in await users.find({}).to_list()} == {a}
        assert (await users.find_one({"external_id": "u1"}))["tenant_id"] == a
        assert await users.count_documents({}) == 3
        assert await users.estimated_document_count() == 3
        assert await users.distinct("tenant_id") == [a]
        assert await users.distinct("display_name", {"n": {"$gte": 0}}) == [a]


@pytest.mark.parametrize(
    "operation",
    [
        "update_one",
        "update_many",
        "replace_one",
        "delete_one",
        "delete_many",
        "find_one_and_update",
        "find_one_and_replace",
        "find_one_and_delete",
        "bulk_write",
    ],
)
async def test_writes_touch_only_the_tenant(
    caas_layer: DataLayer, pair: tuple[str, str], operation: str
) -> None:
    a, b = pair
    before_b = await b_snapshot(caas_layer, b)
    async with tenant_scope(a):
        users = caas_layer.collection(User)
        first = await users.find_one({"external_id": "u0"})
        replacement = {k: v for k, v in first.items() if k != "_id"} | {"display_name": "new"}
        calls = {
            "update_one": lambda: users.update_one({}, {"$set": {"display_name": "new"}}),
            "update_many": lambda: users.update_many({}, {"$set": {"display_name": "new"}}),
            "replace_one": lambda: users.replace_one({"external_id": "u0"}, replacement),
            "delete_one": lambda: users.delete_one({}),
            "delete_many": lambda: users.delete_many({}),
            "find_one_and_update": lambda: users.find_one_and_update(
                {}, {"$set": {"display_name": "new"}}, return_document=ReturnDocument.AFTER
            ),
            "find_one_and_replace": lambda: users.find_one_and_replace(
                {"external_id": "u0"}, replacement
            ),
            "find_one_and_delete": lambda: users.find_one_and_delete({}),
            "bulk_write": lambda: users.bulk_write(
                [
                    InsertOne({"external_id": "u9", "display_name": "bulk"}),
                    UpdateOne({}, {"$set": {"display_name": "new"}}),
                    UpdateMany({}, {"$set": {"n": 5}}),
                    ReplaceOne({"external_id": "u0"}, replacement),
                    DeleteMany({"external_id": "u2"}),
                ]
            ),
        }
        await calls[operation]()
        mine = await users.find({}).to_list()
        assert {d["tenant_id"] for d in mine} <= {a}
    assert await b_snapshot(caas_layer, b) == before_b


async def test_updates_and_bulk_writes_keep_version_and_timestamp(
    caas_layer: DataLayer, pair: tuple[str, str]
) -> None:
    a, _ = pair
    async with tenant_scope(a):
        users = caas_layer.collection(User)
        before = await users.find_one({"external_id": "u1"})
        await users.update_many({}, {"$set": {"n": 10}})
        await users.bulk_write([UpdateOne({"external_id": "u1"}, {"$inc": {"n": 1}})])
        # Beanie's own query API goes through the same guard
        await User.find_one(User.external_id == "u1").update({"$set": {"display_name": "b"}})
        await User.find(User.external_id == "u1").update({"$set": {"locale": "fr"}})
        after = await users.find_one({"external_id": "u1"})
    assert after["__v"] == before["__v"] + 4
    assert after["updated_at"] > before["updated_at"]
    assert after["n"] == 11 and after["display_name"] == "b" and after["locale"] == "fr"


async def test_pro_lookups_read_the_tenant_collection_set(caas_layer: DataLayer) -> None:
    pro, free = new_tenant_id("pro"), new_tenant_id("free")
    await caas_layer.tenants.provision(pro, tier=Tier.PRO)
    await caas_layer.tenants.provision(free, tier=Tier.FREE)
    for tenant in (pro, free):
        async with tenant_scope(tenant):
            user = await caas_layer.collection(User).insert_one(
                {"external_id": "u", "display_name": tenant}
            )
            # same user id in both: only placement tells the devices apart
            await caas_layer.collection(UserDevice).insert_one(
                {"user_id": user.inserted_id, "device_id": tenant, "platform": "ios"}
            )
    # a device in the shared collection that claims the PRO user's id
    async with tenant_scope(pro):
        pro_user = await caas_layer.collection(User).find_one({})
    await caas_layer.client[f"{caas_layer.prefix}_shared"]["user_devices"].insert_one(
        {"tenant_id": pro, "user_id": pro_user["_id"], "device_id": "stray", "platform": "web"}
    )
    async with tenant_scope(pro):
        joined = await User.aggregate(
            [
                {"$lookup": {"from": "user_devices", "localField": "_id",
                             "foreignField": "user_id", "as": "devices"}},
                {"$unionWith": {"coll": "users", "pipeline": [{"$project": {"_id": 1}}]}},
                {"$graphLookup": {"from": "user_devices", "startWith": "$_id",
                                  "connectFromField": "user_id", "connectToField": "user_id",
                                  "as": "graph"}},
                {"$facet": {"devices": [{"$unwind": "$devices"},
                                        {"$project": {"d": "$devices.device_id"}}]}},
            ]
        ).to_list()  # fmt: skip
    assert [d["d"] for d in joined[0]["devices"]] == [pro]


@pytest.mark.parametrize(
    ("pipeline", "error"),
    [
        ([{"$out": "stolen"}], UnsafeOperation),
        ([{"$merge": {"into": "stolen"}}], UnsafeOperation),
        ([{"$lookup": {"from": "saas_clients", "pipeline": [], "as": "x"}}], UnsafeOperation),
        ([{"$unionWith": "system.users"}], UnsafeOperation),
        ([{"$sort": {"n": 1}}, {"$match": {"tenant_id": "someone"}}], TenantMismatch),
    ],
)
async def test_unsafe_pipelines_are_refused_and_write_nothing(
    caas_layer: DataLayer, pair: tuple[str, str], pipeline: list[Any], error: type[Exception]
) -> None:
    a, _ = pair
    async with tenant_scope(a):
        with pytest.raises(error):
            await User.aggregate(pipeline).to_list()
    names = await caas_layer.client[f"{caas_layer.prefix}_shared"].list_collection_names()
    assert "stolen" not in names


@pytest.mark.parametrize(
    ("call", "error"),
    [
        (lambda c: c.update_many({}, {"$set": {"tenant_id": "other-one"}}), TenantMismatch),
        (lambda c: c.update_one({}, {"$unset": {"tenant_id": ""}}), TenantMismatch),
        (lambda c: c.update_one({}, {"$rename": {"tenant_id": "t"}}), TenantMismatch),
        (lambda c: c.find_one_and_update({}, {"$set": {"tenant_id": "x-yz"}}), TenantMismatch),
        (lambda c: c.delete_many({"tenant_id": "other-one"}), TenantMismatch),
        (lambda c: c.update_many({"$or": [{"tenant_id": "other-one"}]}, {"$set": {"n": 0}}),
         TenantMismatch),
        (lambda c: c.insert_one({"external_id": "z", "tenant_id": "other-one"}), TenantMismatch),
        (lambda c: c.bulk_write([InsertOne({"tenant_id": "other-one"})]), TenantMismatch),
        (lambda c: c.drop(), UnsafeOperation),
        (lambda c: c.rename("x"), UnsafeOperation),
        (lambda c: c.create_index("n"), UnsafeOperation),
        (lambda c: c.find_raw_batches({}), UnsafeOperation),
        (lambda c: c.aggregate_raw_batches([]), UnsafeOperation),
        (lambda c: c.database, UnsafeOperation),
    ],
)  # fmt: skip
async def test_refused_operations_raise_and_write_nothing(
    caas_layer: DataLayer, pair: tuple[str, str], call: Any, error: type[Exception]
) -> None:
    a, _ = pair
    raw = caas_layer.client[f"{caas_layer.prefix}_shared"]["users"]
    before = await raw.find({}, sort=[("_id", 1)]).to_list()
    async with tenant_scope(a):
        with pytest.raises(error):
            result = call(caas_layer.collection(User))
            if asyncio.iscoroutine(result):
                await result
    assert await raw.find({}, sort=[("_id", 1)]).to_list() == before
    assert await caas_layer.client[f"{caas_layer.prefix}_shared"].list_collection_names()


async def test_shared_change_stream_delivers_only_the_tenant(
    caas_layer: DataLayer, pair: tuple[str, str]
) -> None:
    a, b = pair
    events: list[dict[str, Any]] = []
    async with tenant_scope(a):
        stream = await caas_layer.collection(User).watch()
        async with stream:
            # B writes from a task outside A's scope (a fresh context)
            async def tenant_b_writes() -> None:
                async with tenant_scope(b):
                    users = caas_layer.collection(User)
                    await users.update_one({"external_id": "u0"}, {"$set": {"n": 100}})
                    await users.delete_one({"external_id": "u1"})
                    await users.insert_one({"external_id": "b-new", "display_name": "b"})

            await asyncio.create_task(tenant_b_writes(), context=contextvars.Context())
            users = caas_layer.collection(User)
            await users.update_one({"external_id": "u0"}, {"$set": {"n": 100}})
            await users.delete_one({"external_id": "u1"})
            await users.insert_one({"external_id": "a-new", "display_name": "a"})
            while len(events) < 3:
                change = await asyncio.wait_for(stream.next(), timeout=20)
                events.append(change)
            assert await stream.try_next() is None
    assert [e["operationType"] for e in events] == ["update", "delete", "insert"]
    for event in events:
        image = event.get("fullDocument") or event.get("fullDocumentBeforeChange")
        assert image["tenant_id"] == a


async def test_watch_refuses_unsupported_stages(
    caas_layer: DataLayer, pair: tuple[str, str]
) -> None:
    a, _ = pair
    async with tenant_scope(a):
        with pytest.raises(UnsafeOperation):
            await caas_layer.collection(User).watch([{"$lookup": {"from": "x", "as": "y"}}])


async def test_watch_on_shared_collection_without_pre_images_is_refused(
    caas_layer: DataLayer, pair: tuple[str, str]
) -> None:
    a, _ = pair
    shared = caas_layer.client[f"{caas_layer.prefix}_shared"]
    await shared.command("collMod", "users", changeStreamPreAndPostImages={"enabled": False})
    try:
        async with tenant_scope(a):
            with pytest.raises(UnsafeOperation, match="pre-images"):
                await caas_layer.collection(User).watch()
    finally:  # the session's shared collection serves every other test
        await shared.command("collMod", "users", changeStreamPreAndPostImages={"enabled": True})
