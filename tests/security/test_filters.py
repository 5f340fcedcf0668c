"""Filters that try to read another tenant's users, through every read path there is.

Each filter of `attacks.FILTERS` runs through the guarded collection, the handle Beanie
uses, Beanie's query API and the repository, from an attacker of each isolation model,
against the victims of all three.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from caas_data import DataLayer
from caas_data.saas import User, UserRepository

from .attacks import FILTERS
from .conftest import OwnCount, Seeded, World, attack_each

ReadPath = Callable[[DataLayer, Any], Awaitable[Any]]


async def _repo_find(layer: DataLayer, query: Any) -> Any:
    return (await layer.repo(UserRepository).find(query, limit=100)).items


async def _beanie_find_one(layer: DataLayer, query: Any) -> Any:
    return await User.find_one(query)


# How a filter reaches the server: each returns what the caller would get back.
READ_PATHS: dict[str, ReadPath] = {
    "find": lambda layer, q: layer.collection(User).find(q).to_list(),
    "find_one": lambda layer, q: layer.collection(User).find_one(q),
    "count": lambda layer, q: _count(layer.collection(User).count_documents(q)),
    "distinct": lambda layer, q: layer.collection(User).distinct("display_name", q),
    "aggregate": lambda layer, q: _aggregate(layer, q),
    "handle_find": lambda layer, q: User.get_pymongo_collection().find(q).to_list(),
    "beanie_find": lambda layer, q: User.find(q).to_list(),
    "beanie_find_one": _beanie_find_one,
    "beanie_count": lambda layer, q: _count(User.find(q).count()),
    "beanie_distinct": lambda layer, q: User.distinct("tenant_id", q),
    "repo_find": _repo_find,
    "repo_count": lambda layer, q: _count(layer.repo(UserRepository).count(q)),
}


async def _count(pending: Awaitable[int]) -> OwnCount:
    return OwnCount(await pending, User)


async def _aggregate(layer: DataLayer, query: Any) -> Any:
    cursor = await layer.collection(User).aggregate([{"$match": query}])
    return await cursor.to_list()


@pytest.mark.parametrize("shape", list(FILTERS))
async def test_filter_reads_nothing_of_a_victim(world: World, attacker: Seeded, shape: str) -> None:
    # The shared victim's rows sit in the same physical collection as a shared attacker's:
    # it is the one a filter can reach. The digest and the leak scan cover every victim.
    query = FILTERS[shape](attacker.tenant_id, world.shared_victim)
    await attack_each(
        world,
        attacker.tenant_id,
        {path: (lambda read=read: read(world.layer, query)) for path, read in READ_PATHS.items()},
        shape,
        reads_only=True,
    )
