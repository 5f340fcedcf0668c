"""Version-safe writes of document instances.

The repositories' writes go straight to the routed collection; Beanie's instance methods
run Beanie's own path (`run_stored_write`, `save_document`) with the guard below them.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any, NoReturn, TypeVar
from uuid import uuid4

from beanie import BulkWriter, Document, PydanticObjectId, WriteRules
from beanie.exceptions import DocumentNotFound, RevisionIdWasChanged
from beanie.odm.actions import ActionDirections
from pydantic_core import PydanticUndefined
from pymongo import ReplaceOne
from pymongo.asynchronous.client_session import AsyncClientSession

from caas_data.clock import stamped
from caas_data.documents.base import (
    BaseDocument,
    SoftDeleteMixin,
    TimestampMixin,
    VersionMixin,
    utcnow,
)
from caas_data.documents.encoding import document_dict
from caas_data.documents.routing import collection_for
from caas_data.errors import (
    CaasDataError,
    DuplicateError,
    NotFoundError,
    UnsafeOperation,
    VersionConflict,
)
from caas_data.tenancy.guard import GuardedCollection

__all__ = [
    "dump_document",
    "insert_document",
    "raise_write_miss",
    "replace_document",
    "run_stored_write",
    "save_document",
    "set_deleted",
    "shallow_copy",
    "stamp_new",
    "stamp_updated",
]

D = TypeVar("D", bound=BaseDocument)


def dump_document(document: BaseDocument) -> dict[str, Any]:
    """The BSON-ready dict of a document (aliases: `_id`, `__v`)."""
    data: dict[str, Any] = document.model_dump(by_alias=True)
    return data


_stamp_plans: dict[type[Any], tuple[tuple[str, ...], bool]] = {}


def _stamp_plan(document_type: type[Any]) -> tuple[tuple[str, ...], bool]:
    """The fields `stamp_new` sets to now on a class, and whether it is versioned (cached)."""
    plan = _stamp_plans.get(document_type)
    if plan is None:
        if issubclass(document_type, TimestampMixin):
            stamped_fields: tuple[str, ...] = ("created_at", "updated_at")
        elif "created_at" in document_type.model_fields:
            stamped_fields = ("created_at",)
        else:
            stamped_fields = ()
        plan = (stamped_fields, issubclass(document_type, VersionMixin))
        _stamp_plans[document_type] = plan
    return plan


def stamp_new(document: BaseDocument) -> None:
    """Set what a new document gets from the layer: timestamps, version 0, an id.

    Written straight into the instance (the values are the fields' own types): per insert,
    pydantic's and lazy-model's Python `__setattr__`/`__getattribute__` were measurable.
    """
    stamped_fields, versioned = _stamp_plan(type(document))
    values: dict[str, Any] = dict.fromkeys(stamped_fields, utcnow())
    if versioned:
        values["version"] = 0
    fields = document.__dict__
    if fields.get("id") is None:
        values["id"] = PydanticObjectId()
    fields.update(values)
    document.__pydantic_fields_set__.update(values)


def stamp_updated(document: BaseDocument, *, version: int | None, now: datetime) -> None:
    """Set on a document in memory what an update stored: its new `__v` and `updated_at`.

    Only the fields the class has; `version` None leaves `__v` as it is.
    """
    stamped_fields, versioned = _stamp_plan(type(document))
    values: dict[str, Any] = {"updated_at": now} if "updated_at" in stamped_fields else {}
    if versioned and version is not None:
        values["version"] = version
    document.__dict__.update(values)
    document.__pydantic_fields_set__.update(values)


_SET = object.__setattr__


def shallow_copy(document: D) -> D:
    """Pydantic's `model_copy()` (a shallow copy), without lazy-model's Python lookups.

    The same steps as `BaseModel.__copy__`, reading the instance's slots directly: per update
    the copy went through lazy-model's `__getattribute__` a dozen times.
    """
    get = object.__getattribute__
    cls = type(document)
    copy = cls.__new__(cls)
    _SET(copy, "__dict__", dict(get(document, "__dict__")))
    extra = get(document, "__pydantic_extra__")
    _SET(copy, "__pydantic_extra__", None if extra is None else dict(extra))
    _SET(copy, "__pydantic_fields_set__", set(get(document, "__pydantic_fields_set__")))
    private = get(document, "__pydantic_private__")
    if private is not None:
        private = {k: v for k, v in private.items() if v is not PydanticUndefined}
    _SET(copy, "__pydantic_private__", private)
    return copy


async def insert_document(
    document: D,
    *,
    session: AsyncClientSession | None = None,
    collection: GuardedCollection | None = None,
) -> D:
    """Insert a new document; its timestamps, version and id are set first."""
    stamp_new(document)
    target = collection if collection is not None else collection_for(type(document))
    await target.insert_one(dump_document(document), session=session)
    return document


async def raise_write_miss(
    collection: GuardedCollection, document_type: type[Any], document_id: Any, expected: int
) -> NoReturn:
    """Explain why a conditional write matched nothing: missing, deleted or stale."""
    tenant_id = collection.rules.tenant_id
    current = await collection.including_deleted().find_one(
        {"_id": document_id}, {"__v": 1, "deleted_at": 1}
    )
    if current is None:
        raise NotFoundError(
            f"{document_type.__name__} {document_id} does not exist",
            tenant_id=tenant_id,
            document_type=document_type,
        )
    if current.get("deleted_at") is not None:
        raise NotFoundError(
            f"{document_type.__name__} {document_id} is soft-deleted: restore it first",
            tenant_id=tenant_id,
            document_type=document_type,
        )
    if current.get("__v") == expected:
        raise UnsafeOperation(
            f"{document_type.__name__} {document_id}: the write would change a field the layer "
            "owns (schema_version, deleted_at/deleted_by or a protected field); "
            "those change only through their own methods",
            tenant_id=tenant_id,
            document_type=document_type,
        )
    raise VersionConflict(
        f"{document_type.__name__} {document_id} was changed by someone else "
        f"(read version {expected}, stored version {current.get('__v')})",
        expected_version=expected,
        current_version=current.get("__v"),
        tenant_id=tenant_id,
        document_type=document_type,
    )


async def replace_document(
    document: D,
    *,
    session: AsyncClientSession | None = None,
    upsert: bool = False,
    collection: GuardedCollection | None = None,
) -> D:
    """Replace the stored document if its `__v` is still the one `document` carries.

    With `upsert`, a document never stored (version 0, not found) is inserted instead.
    """
    if document.id is None:
        if upsert:
            return await insert_document(document, session=session, collection=collection)
        raise NotFoundError("a document without an id cannot be replaced")
    target = collection if collection is not None else collection_for(type(document))
    versioned = isinstance(document, VersionMixin)
    expected = document.version if isinstance(document, VersionMixin) else 0
    now = utcnow()
    data = dump_document(document)
    if isinstance(document, SoftDeleteMixin) and document.deleted_at is not None:
        target = target.including_deleted()
    result = await target.replace_one({"_id": document.id}, data, session=session, stamp_time=now)
    if result.matched_count == 1:
        stamp_updated(document, version=expected + 1, now=now)
        return document
    if upsert and expected == 0:
        exists = await target.including_deleted().find_one({"_id": document.id}, {"_id": 1})
        if exists is None:
            try:
                return await insert_document(document, session=session, collection=target)
            except DuplicateError:
                pass  # created concurrently: report it as the conflict it is
    if not versioned:
        raise NotFoundError(f"{type(document).__name__} {document.id} does not exist")
    await raise_write_miss(target, type(document), document.id, expected)


async def set_deleted(
    collection: GuardedCollection,
    document_id: Any,
    *,
    deleted: bool,
    deleted_by: Any = None,
    session: AsyncClientSession | None = None,
) -> bool:
    """Soft-delete (or restore) one document; False when it was already in that state.

    Goes through the guard like any update, so it joins the ambient transaction (Beanie's own
    soft delete drops the session) and moves `__v` and `updated_at`.
    """
    state: Any = None if deleted else {"$ne": None}
    # The one path that writes `deleted_at`/`deleted_by`: the guard refuses them elsewhere.
    result = (
        await collection.including_deleted()
        ._privileged()
        .update_one(
            {"_id": document_id, "deleted_at": state},
            {"$set": {"deleted_at": utcnow() if deleted else None, "deleted_by": deleted_by}},
            session=session,
        )
    )
    return bool(result.matched_count)


async def _adopt_stored_version(document: BaseDocument, session: AsyncClientSession | None) -> None:
    """Beanie's `ignore_revision=True`: write over whatever version is stored now."""
    if not isinstance(document, VersionMixin):
        return
    current = await collection_for(type(document)).find_one(
        {"_id": document.id}, {"__v": 1}, session=session
    )
    if current is not None and isinstance(current.get("__v"), int):
        document.version = current["__v"]


async def run_stored_write(
    document: D,
    write: Callable[[], Awaitable[Any]],
    *,
    session: AsyncClientSession | None = None,
    deferred: bool = False,
    force: bool = False,
) -> D:
    """Run one of Beanie's writes of a stored document; keep `__v` and `updated_at` in step.

    The guard makes the write conditional on the `__v` the document carries and stores
    `__v + 1`; a miss (Beanie's `DocumentNotFound`/`RevisionIdWasChanged`) is explained as
    `NotFoundError` or `VersionConflict`. A write `deferred` to a bulk writer is left as is.
    `force` (Beanie's `ignore_revision=True`) writes over the version stored now.
    """
    document_type, document_id = type(document), document.id
    if force:
        await _adopt_stored_version(document, session)
    expected = document.version if isinstance(document, VersionMixin) else None
    now = utcnow()
    try:
        with stamped(now):  # the guard stamps this `updated_at`, so memory can follow
            await write()
    except (DocumentNotFound, RevisionIdWasChanged) as exc:
        if isinstance(exc, CaasDataError):
            raise
        target = collection_for(document_type)
        if expected is None:
            raise NotFoundError(
                f"{document_type.__name__} {document_id} does not exist",
                tenant_id=target.rules.tenant_id,
                document_type=document_type,
            ) from exc
        await raise_write_miss(target, document_type, document_id, expected)
    if deferred:
        return document
    stamp_updated(document, version=None if expected is None else expected + 1, now=now)
    if document.use_state_management():
        # The state Beanie saved before the write lacks the new `__v`/`updated_at`; the
        # previous state it kept stays as it is.
        document._saved_state = document_dict(
            document,
            to_db=True,
            keep_nulls=document.get_settings().keep_nulls,
            exclude={"revision_id"},
        )
    return document


async def _queue_save(
    document: BaseDocument,
    bulk_writer: BulkWriter,
    *,
    session: AsyncClientSession | None,
    force: bool,
) -> None:
    """Queue a `save()` in a bulk writer: an upsert of the replacement, as Beanie's save is.

    The guard makes it conditional on the `__v` it carries; a stale one matches nothing and
    its upsert collides on `_id`, so the bulk write fails loudly instead of skipping it.
    """
    document_type, document_id = type(document), document.id
    if force:
        await _adopt_stored_version(document, session)
    query: dict[str, Any] = {"_id": document_id}
    if document.get_settings().use_revision:
        if not force:
            query["revision_id"] = document.revision_id
        document.revision_id = uuid4()
    replacement = document_dict(
        document, to_db=True, exclude={"_id"}, keep_nulls=document.get_settings().keep_nulls
    )
    bulk_writer.add_operation(document_type, ReplaceOne(query, replacement, upsert=True))


async def _save_links(document: BaseDocument, session: AsyncClientSession | None) -> None:
    """`link_rule=WRITE` of Beanie's `save()`: save every linked document first."""
    for info in (document.get_link_fields() or {}).values():
        value = getattr(document, info.field_name)
        linked = value if isinstance(value, list) else [value]
        for item in linked:
            if isinstance(item, Document):
                await item.save(link_rule=WriteRules.WRITE, session=session)


async def save_document(
    document: D,
    *,
    session: AsyncClientSession | None = None,
    link_rule: WriteRules = WriteRules.DO_NOTHING,
    ignore_revision: bool = False,
    bulk_writer: BulkWriter | None = None,
) -> D:
    """`save()`: Beanie's `insert()` for a new document, else its conditional `replace()`.

    With a bulk writer the write waits for it: an insert when the document has no id yet,
    else a replacement (conditional on `__v` when the writer commits).
    """
    quiet: list[ActionDirections | str] = [ActionDirections.BEFORE, ActionDirections.AFTER]
    document_type, document_id = type(document), document.id
    if bulk_writer is not None:
        if document_id is None:
            await document_type.insert_one(document, bulk_writer=bulk_writer, session=session)
        else:
            await _queue_save(document, bulk_writer, session=session, force=ignore_revision)
        return document
    if link_rule is WriteRules.WRITE:
        await _save_links(document, session)
    if document_id is not None:
        try:
            await document.replace(
                ignore_revision=ignore_revision, session=session, skip_actions=quiet
            )
            return document
        except NotFoundError as exc:
            never_stored = not isinstance(document, VersionMixin) or document.version == 0
            if not never_stored or "soft-deleted" in exc.message:
                raise
    try:
        await document.insert(session=session, skip_actions=quiet)
    except DuplicateError as exc:
        if document_id is None or not isinstance(document, VersionMixin):
            raise
        # created concurrently under this id: report it as the conflict it is
        target = collection_for(document_type)
        try:
            await raise_write_miss(target, document_type, document_id, document.version)
        except VersionConflict as conflict:
            raise conflict from exc
    return document
