"""Collection options as the server holds them: the one reader of `listCollections`.

Pre-images, time-series and TTL settings and a move's write fence live in a collection's
options; every part of the layer that needs them reads them here.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from pymongo.asynchronous.database import AsyncDatabase

__all__ = ["collection_options", "collections_options"]


async def collections_options(
    database: AsyncDatabase[Any], names: Iterable[str]
) -> dict[str, dict[str, Any]]:
    """Each existing collection of `names` -> the options it was created (or modified) with."""
    wanted = list(names)
    cursor = await database.list_collections(filter={"name": {"$in": wanted}})
    return {info["name"]: dict(info.get("options", {})) async for info in cursor}


async def collection_options(database: AsyncDatabase[Any], name: str) -> dict[str, Any] | None:
    """The options of collection `name`, or None when it does not exist."""
    return (await collections_options(database, [name])).get(name)
