"""Creating a document class's collection and indexes at one physical place.

Beanie is initialised with `skip_indexes=True`: tenant collections exist once per placement,
so the layer creates them itself when a tenant is provisioned (and platform ones at connect).
"""

from __future__ import annotations

from contextlib import suppress
from typing import Any

from pymongo import IndexModel
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import CollectionInvalid, OperationFailure

from caas_data.documents.base import BaseDocument
from caas_data.errors import translate_driver_errors

__all__ = ["collection_options_applied", "declared_indexes", "ensure_collection"]


def declared_indexes(document_type: type[BaseDocument]) -> list[IndexModel]:
    """The `Settings.indexes` of a class, as IndexModels."""
    settings = getattr(document_type, "Settings", None)
    indexes: list[Any] = list(getattr(settings, "indexes", None) or [])
    result = []
    for index in indexes:
        if isinstance(index, IndexModel):
            result.append(index)
        elif isinstance(index, str):
            result.append(IndexModel([(index, 1)]))
        else:
            result.append(IndexModel(index))
    return result


async def ensure_collection(
    database: AsyncDatabase[Any],
    name: str,
    document_type: type[BaseDocument],
    *,
    pre_images: bool,
) -> None:
    """Create the collection (idempotent) with its options and indexes.

    Shared collections record change-stream pre-images, so a tenant's stream can filter
    deletes too. A document's `caas_collection_options` (e.g. `timeseries`) are asked for
    first; a server that refuses them gets the collection without them (detected, not
    assumed), and `collection_options_applied` tells which.
    """
    wanted: dict[str, Any] = dict(document_type.caas_collection_options)
    images = {"changeStreamPreAndPostImages": {"enabled": True}} if pre_images else {}
    indexes = declared_indexes(document_type)
    with translate_driver_errors(document_type=document_type):
        if not wanted and not images and indexes:
            # createIndexes creates a missing collection too: one round trip instead of two.
            await database[name].create_indexes(indexes)
            return
        attempts: list[dict[str, Any]] = []
        for options in (wanted | images, wanted, images, {}):
            if options not in attempts:
                attempts.append(options)
        failure: OperationFailure | None = None
        for options in attempts:
            try:
                await database.create_collection(name, **options)
                failure = None
                break
            except CollectionInvalid:
                failure = None
                if pre_images:
                    # Without pre-images on this server, watch() refuses and says why.
                    with suppress(OperationFailure):
                        await database.command(
                            "collMod", name, changeStreamPreAndPostImages={"enabled": True}
                        )
                break
            except OperationFailure as exc:
                if exc.code == 48:  # NamespaceExists
                    failure = None
                    break
                failure = exc
        if failure is not None:
            raise failure
        if indexes:
            await database[name].create_indexes(indexes)


async def collection_options_applied(database: AsyncDatabase[Any], name: str) -> dict[str, Any]:
    """The options the server actually created a collection with."""
    infos = await (await database.list_collections(filter={"name": name})).to_list()
    options: dict[str, Any] = infos[0].get("options", {}) if infos else {}
    return options
