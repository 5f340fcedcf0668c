"""Creating a document class's collection and indexes at one physical place.

Beanie is initialised with `skip_indexes=True`: tenant collections exist once per placement,
so the layer creates them itself when a tenant is provisioned (and platform ones at connect).
"""

from __future__ import annotations

from contextlib import suppress
from typing import Any

from beanie import Document
from beanie.odm.fields import IndexModelField
from beanie.odm.utils.typing import get_index_attributes
from pymongo import ASCENDING, IndexModel
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import CollectionInvalid, OperationFailure

from caas_data.documents.base import BaseDocument, TenantMixin
from caas_data.driver_errors import translate_driver_errors

__all__ = ["declared_indexes", "ensure_collection"]


def declared_indexes(document_type: type[BaseDocument]) -> list[IndexModel]:
    """Every index Beanie knows for a class, as IndexModels.

    Beanie's own rules: `Indexed(...)` fields, then `Settings.indexes` (those of every
    document base too with `merge_indexes`), a later declaration of the same keys winning.
    On tenant-keyed documents an `Indexed` field is indexed behind `tenant_id`, so a
    `unique=True` field is unique per tenant (as in every isolation model, a shared
    collection included) and the index serves the tenant filter the guard adds; it keeps
    the name Beanie gives it (`email_1`). Keys in `Settings.indexes` are taken as declared.
    """
    tenant_keyed = issubclass(document_type, TenantMixin)
    found: list[IndexModelField] = []
    for name, field in document_type.model_fields.items():
        attributes = get_index_attributes(field)
        if attributes is None:
            continue
        index_type, options = attributes
        key = field.alias or name
        keys = [(key, index_type)]
        if tenant_keyed and key not in ("tenant_id", "_id"):
            keys.insert(0, ("tenant_id", ASCENDING))
            # Beanie's own name, so code that hints or drops it by that name keeps working.
            options = {"name": f"{key}_{index_type}", **options}
        found.append(IndexModelField(IndexModel(keys, **options)))
    settings = getattr(document_type, "Settings", None)
    sources = [document_type]
    if getattr(settings, "merge_indexes", False):
        sources = [
            c
            for c in reversed(document_type.__mro__)
            if isinstance(c, type) and issubclass(c, Document) and c is not Document
        ]
    declared: list[IndexModelField] = []
    for source in sources:
        own = getattr(getattr(source, "Settings", None), "indexes", None) or []
        declared = IndexModelField.merge_indexes(declared, [_index_field(i) for i in own])
    merged: list[IndexModelField] = IndexModelField.merge_indexes(found, declared)
    return [item.index for item in merged]


def _index_field(index: Any) -> IndexModelField:
    if isinstance(index, IndexModelField):
        return index
    if isinstance(index, IndexModel):
        return IndexModelField(index)
    if isinstance(index, str):
        return IndexModelField(IndexModel([(index, ASCENDING)]))
    return IndexModelField(IndexModel(index))


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
    assumed), and `caas_data.engine.collections.collection_options` tells which.
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
