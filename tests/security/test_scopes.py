"""Scope misuse: handles and cursors carried across scopes, nested scopes, change streams.

A handle (guarded collection, the handle Beanie asks for, a repository's collection) or a
cursor taken inside the victim's scope is used afterwards in the attacker's scope, outside
any scope and in a system scope: it must serve only the scope it is used in (or refuse), so
nothing of the victim comes back or changes.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from pymongo.asynchronous.collection import AsyncCollection

from caas_data import DataLayer, system_scope, tenant_scope
from caas_data.saas import User, UserRepository

from .conftest import (
    MODELS,
    Seeded,
    World,
    assert_harmless,
    assert_victims_unchanged,
    attack,
    attack_each,
)
from .conftest import victim_digest as digest_of

BAIT = {"external_id": "handle-bait"}
"""What write attacks aim at: a document of the victim's made for them, so a successful
attack spoils nothing later cases rely on (and the digest sees it change)."""

HANDLES: dict[str, Callable[[DataLayer], Any]] = {
    "guarded": lambda layer: layer.collection(User),
    "beanie_handle": lambda layer: User.get_pymongo_collection(),
    "repository_handle": lambda layer: layer.repo(UserRepository).collection(),
    "with_options": lambda layer: layer.collection(User).with_options(),
}

USES: dict[str, Callable[[Any], Awaitable[Any]]] = {
    "read": lambda handle: handle.find({}).to_list(),
    "update": lambda handle: handle.update_many(BAIT, {"$set": {"display_name": "pwned"}}),
    "delete": lambda handle: handle.delete_many(BAIT),
}


async def _use_in(
    context: str, world: World, attacker: str, use: Callable[[], Awaitable[Any]]
) -> Any:
    if context == "attacker_scope":
        async with tenant_scope(attacker, layer=world.layer):
            return await use()
    if context == "system_scope":
        async with system_scope(layer=world.layer):
            return await use()
    return await use()  # after the victim's scope closed, outside any scope


@pytest.mark.parametrize("handle", list(HANDLES))
@pytest.mark.parametrize("victim_model", MODELS)
async def test_handle_serves_only_the_scope_it_is_used_in(
    world: World, victim_model: str, handle: str
) -> None:
    victim = world.victims[victim_model]
    attacker = world.attackers["shared"].tenant_id
    async with tenant_scope(victim.tenant_id, layer=world.layer):
        taken = HANDLES[handle](world.layer)
        if not await world.layer.collection(User).count_documents(BAIT):
            await world.layer.collection(User).insert_one({**BAIT, "display_name": "bait"})

    def run(context: str, use: str) -> Callable[[], Awaitable[Any]]:
        return lambda: _use_in(context, world, attacker, lambda: USES[use](taken))

    await attack_each(
        world,
        attacker,
        {
            f"{use} in {context}": run(context, use)
            for context in ("attacker_scope", "no_scope", "system_scope")
            for use in USES
        },
        f"{handle} of {victim_model}",
        scoped=False,
    )


CURSORS: dict[str, Callable[[DataLayer], Any]] = {
    "guarded_find": lambda layer: layer.collection(User).find({}),
    "beanie_query": lambda layer: User.find({}),
    "beanie_handle_find": lambda layer: User.get_pymongo_collection().find({}),
}


@pytest.mark.parametrize("context", ["attacker_scope", "no_scope", "system_scope"])
@pytest.mark.parametrize("cursor", list(CURSORS))
@pytest.mark.parametrize("victim_model", MODELS)
async def test_cursor_started_in_one_scope_is_not_read_in_another(
    world: World, victim_model: str, cursor: str, context: str
) -> None:
    victim = world.victims[victim_model]
    attacker = world.attackers["shared"].tenant_id
    async with tenant_scope(victim.tenant_id, layer=world.layer):
        started = CURSORS[cursor](world.layer)
    await attack(
        world,
        attacker,
        lambda: _use_in(context, world, attacker, started.to_list),
        f"{cursor} of {victim_model} iterated in {context}",
        scoped=False,
    )


NESTED: dict[str, Callable[[World, Seeded], Awaitable[Any]]] = {}


async def _nested_victim_scope(world: World, victim: Seeded) -> Any:
    async with tenant_scope(victim.tenant_id, layer=world.layer):
        return await User.find({}).to_list()


async def _nested_system_scope(world: World, victim: Seeded) -> Any:
    async with system_scope(layer=world.layer):
        return await User.find({}).to_list()


async def _task_in_victim_scope(world: World, victim: Seeded) -> Any:
    # A task started inside the attacker's scope inherits it; entering the victim's there
    # is still a nested scope of another tenant.
    return await asyncio.create_task(_nested_victim_scope(world, victim))


NESTED.update(
    victim_scope=_nested_victim_scope,
    system_scope=_nested_system_scope,
    task_victim_scope=_task_in_victim_scope,
)


@pytest.mark.parametrize("case", list(NESTED))
async def test_nested_scope_is_refused(world: World, attacker: Seeded, case: str) -> None:
    for victim in world.victims.values():
        await attack(world, attacker.tenant_id, lambda v=victim: NESTED[case](world, v), case)


async def _reach(world: World, attribute: str) -> Any:
    """Whatever the attribute gives; a raw collection is followed to the victim's rows."""
    value = getattr(world.layer.collection(User), attribute, None)
    if isinstance(value, AsyncCollection):
        users = value.database.client[f"{world.layer.prefix}_shared"]["users"]
        return await users.find({"tenant_id": world.shared_victim.tenant_id}).to_list()
    return None


# Public attributes only: Python cannot hide an underscore attribute, and code that reads one
# (`handle._collection`) has left the public API (README, "Security model").
@pytest.mark.parametrize(
    "attribute", ["physical", "database", "drop", "rename", "find_raw_batches", "client"]
)
async def test_guarded_collection_gives_no_raw_collection(
    world: World, attacker: Seeded, attribute: str
) -> None:
    await attack(
        world,
        attacker.tenant_id,
        lambda: _reach(world, attribute),
        f"GuardedCollection.{attribute}",
    )


async def test_change_stream_yields_no_victim_event(world: World, attacker: Seeded) -> None:
    layer, victim = world.layer, world.shared_victim
    async with tenant_scope(attacker.tenant_id, layer=layer):
        stream = await layer.collection(User).watch()
    try:
        # The victim writes (net nothing: insert, update, delete) while the stream is open.
        async with tenant_scope(victim.tenant_id, layer=layer):
            users = layer.collection(User)
            temp = await users.insert_one({"external_id": "cs-temp", "display_name": "cs"})
            await users.update_one({"_id": temp.inserted_id}, {"$set": {"display_name": "cs2"}})
            await users.delete_one({"_id": temp.inserted_id})
        before = await digest_of(layer, world.victim_ids)
        events: list[Any] = []
        async with tenant_scope(attacker.tenant_id, layer=layer):
            own = await layer.collection(User).insert_one(
                {"external_id": f"cs-mark-{time.monotonic_ns()}", "display_name": "marker"}
            )
            deadline = time.monotonic() + 3.0
            while time.monotonic() < deadline:
                event = await stream.try_next()
                if event is None:
                    await asyncio.sleep(0.05)
                    continue
                events.append(event)
                if event.get("documentKey", {}).get("_id") == own.inserted_id:
                    break
        assert any(e.get("documentKey", {}).get("_id") == own.inserted_id for e in events), (
            "the attacker's own write never arrived: the stream proves nothing"
        )
        await assert_harmless(world, attacker.tenant_id, events, "change stream")
        assert_victims_unchanged(before, await digest_of(layer, world.victim_ids), "watch")
    finally:
        await stream.close()
