"""Change streams on a guarded collection: the stages a tenant may add, and its own filter.

On a collection shared between tenants a delete event carries only `_id`, so the tenant's
events are told apart by the document (`fullDocument`) or its pre-image
(`fullDocumentBeforeChange`): such a collection must record pre-images.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pymongo.asynchronous.collection import AsyncCollection

from caas_data.engine.collections import collection_options
from caas_data.errors import UnsafeOperation
from caas_data.tenancy.rules import TENANT_FIELD

__all__ = ["change_stream_stages", "records_pre_images"]

_WATCH_STAGES = frozenset({"$match", "$project", "$addFields", "$set", "$unset"})


def change_stream_stages(
    pipeline: Sequence[Any] | None, tenant_id: str | None, options: dict[str, Any]
) -> list[Any]:
    """The stages to send: the caller's (reshaping stages only), behind the tenant's filter.

    With `tenant_id` (a shared collection) the stream asks for the documents and pre-images
    it filters on, unless `options` already says otherwise.
    """
    stages = list(pipeline or [])
    for stage in stages:
        if not isinstance(stage, Mapping) or len(stage) != 1:
            raise UnsafeOperation("a change-stream stage must be a one-key mapping")
        (name,) = stage
        if name not in _WATCH_STAGES:
            raise UnsafeOperation(f"change-stream stage {name} is not supported")
    if tenant_id is None:
        return stages
    options.setdefault("full_document", "updateLookup")
    options.setdefault("full_document_before_change", "whenAvailable")
    own = {
        "$or": [
            {f"fullDocument.{TENANT_FIELD}": tenant_id},
            {f"fullDocumentBeforeChange.{TENANT_FIELD}": tenant_id},
        ]
    }
    return [{"$match": own}, *stages]


async def records_pre_images(collection: AsyncCollection[Any]) -> bool:
    """True when `collection` records change-stream pre-images."""
    options = await collection_options(collection.database, collection.name) or {}
    setting = options.get("changeStreamPreAndPostImages") or {}
    return bool(setting.get("enabled"))
