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

__all__ = ["declared_indexes", "ensure_collection"]


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
    options: dict[str, Any] | None = None,
) -> None:
    """Create the collection (idempotent) with its indexes.

    Shared collections record change-stream pre-images, so a tenant's stream can filter
    deletes too.
    """
    create_options: dict[str, Any] = dict(options or {})
    if pre_images:
        create_options["changeStreamPreAndPostImages"] = {"enabled": True}
    with translate_driver_errors(document_type=document_type):
        try:
            await database.create_collection(name, **create_options)
        except CollectionInvalid:
            if pre_images:
                # Without pre-images on this server, watch() refuses and says why.
                with suppress(OperationFailure):
                    await database.command(
                        "collMod", name, changeStreamPreAndPostImages={"enabled": True}
                    )
        except OperationFailure as exc:
            if exc.code != 48:  # NamespaceExists
                raise
        indexes = declared_indexes(document_type)
        if indexes:
            await database[name].create_indexes(indexes)
