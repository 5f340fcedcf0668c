"""The generic repository every domain repository extends: its writes.

Hot paths go straight to the routed, guarded collection with `model_dump`/`model_validate`;
Beanie stays the declaration and query API. Every call routes once (one guarded collection)
and every write goes through the guard: the tenant is merged into each filter and stamped on
each insert, so no write reaches another tenant.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

import pydantic
from pymongo import ReturnDocument

from caas_data.documents.base import BaseDocument, utcnow
from caas_data.documents.writes import (
    dump_document,
    insert_document,
    raise_write_miss,
    replace_document,
    set_deleted,
    stamp_new,
    stamp_updated,
)
from caas_data.engine.transactions import in_transaction
from caas_data.errors import (
    ConfigurationError,
    DocumentValidationError,
    DuplicateError,
    NotFoundError,
)
from caas_data.repositories.fields import PROTECTED_FIELDS, UPSERT_STAMPED, SortSpec
from caas_data.repositories.pages import (
    Page,
)
from caas_data.repositories.reads import ReadRepository
from caas_data.repositories.values import (
    DEFAULT_PAGE_SIZE,
    INT64_MAX,
    MAX_PAGE_SIZE,
    check_duration,
    check_int,
)
from caas_data.tenancy.guard import GuardedCollection

if TYPE_CHECKING:
    pass

__all__ = [
    "DEFAULT_PAGE_SIZE",
    "INT64_MAX",
    "MAX_PAGE_SIZE",
    "Page",
    "Repository",
    "SortSpec",
    "check_duration",
    "check_int",
]

D = TypeVar("D", bound=BaseDocument)
P = TypeVar("P", bound=pydantic.BaseModel)


class Repository(ReadRepository[D]):
    """Typed data access to one document class, within the running tenant scope.

    Subclasses name their class once: `document_type = User`. Reads come from
    `ReadRepository`; this class adds the writes, all through the guard.
    """

    # -- writes -----------------------------------------------------------------------

    async def create(self, document: D | Mapping[str, Any]) -> D:
        """Insert a new document (an instance, or a mapping validated into one).

        Raises:
            DocumentValidationError: the mapping does not fit the schema.
            TenantMismatch: the document names another tenant than the scope.
            DuplicateError: a unique key is taken (`soft_deleted` tells if by a deleted one).
        """
        return await self._create(document)

    async def _create(self, document: D | Mapping[str, Any], *, privileged: bool = False) -> D:
        """`create`; `privileged` for the layer's own inserts of fields it guards."""
        collection = self.collection()
        if privileged:
            collection = collection._privileged()
        new = self._validate(document)
        try:
            return await insert_document(new, collection=collection)
        except DuplicateError as exc:
            raise await self._explain_duplicate(exc, collection) from exc

    async def create_many(self, documents: Iterable[D | Mapping[str, Any]]) -> list[D]:
        """Insert several new documents in one round trip (all validated first).

        The insert is ordered: on a duplicate, the documents before it are stored and the
        error says how many were not.
        """
        collection = self.collection()
        news = [self._validate(d) for d in documents]
        if not news:
            return []
        for new in news:
            stamp_new(new)
        await collection.insert_many([dump_document(n) for n in news])
        return news

    async def _explain_duplicate(
        self, error: DuplicateError, collection: GuardedCollection
    ) -> DuplicateError:
        if not self._soft_delete or not error.key:
            return error
        holder = await collection.including_deleted().find_one(error.key, {"deleted_at": 1})
        if holder is None or holder.get("deleted_at") is None:
            return error
        return DuplicateError(
            f"{self.document_type.__name__} with {error.key} exists but is soft-deleted: "
            f"restore it (id {holder['_id']}) instead of creating it again",
            key=error.key,
            soft_deleted=True,
            tenant_id=error.tenant_id,
            document_type=self.document_type,
            driver_error=error.driver_error,
        )

    async def upsert(
        self,
        key: Mapping[str, Any],
        changes: Mapping[str, Any] | None = None,
        *,
        on_insert: Mapping[str, Any] | None = None,
        actor: Any = None,
    ) -> D:
        """Set `changes` on the document matching `key` (a unique key), creating it if none.

        One atomic statement: the created document is `key`, `changes` and `on_insert` (the
        fields only a new document gets), validated as a whole before any I/O. Two first
        upserts of one key race on the unique index; the loser retries and updates the
        winner's document. `actor` is who acts, recorded by audited repositories. Returns
        the document as stored.

        Raises:
            DocumentValidationError: an unknown or layer-owned field, or a value that does not
                fit the schema; `key` must be field equalities.
            DuplicateError: inside a transaction, a racing first insert (the owner re-runs).
        """
        del actor  # the base keeps no author; audited repositories record it
        update = self._schema.upsert_update(key, changes or {}, on_insert or {})
        return await self._upsert(key, update)

    async def _upsert(
        self,
        key: Mapping[str, Any],
        update: Mapping[str, Any],
        *,
        collection: GuardedCollection | None = None,
    ) -> D:
        """Apply a raw `update` to the document with `key` (unique), creating it if needed.

        The one upsert of the layer (domain repositories build their own update documents).
        A racing first insert loses on the unique index and retries, then matches the
        winner's document; inside a transaction the error aborts it, so it is raised.
        """
        on_insert = {"schema_version": 1, **dict(update.get("$setOnInsert", {}))}
        full = {**update, "$setOnInsert": on_insert}
        collection = collection or self.collection()
        query = self._check_filter(key)
        for attempt in (1, 2, 3):
            try:
                raw: dict[str, Any] | None = await collection.find_one_and_update(
                    query, full, upsert=True, return_document=ReturnDocument.AFTER
                )
            except DuplicateError:
                if attempt == 3 or in_transaction():
                    raise
                continue
            if raw is None:
                # Measured: the embedded server sometimes answers null to a concurrent upsert
                # that did write; the document is there to read.
                raw = await collection.find_one(query)
            if raw is not None:
                return self._load(raw)
        raise NotFoundError(
            f"upsert of {self.document_type.__name__} {query} returned no document",
            tenant_id=collection.rules.tenant_id,
            document_type=self.document_type,
        )

    @staticmethod
    def _insert_fields(document: BaseDocument) -> dict[str, Any]:
        """A new document's fields for an upsert's `$setOnInsert`: all the guard leaves.

        The guard stamps the others (tenant, version, times) on the insert itself.
        """
        return {k: v for k, v in dump_document(document).items() if k not in UPSERT_STAMPED}

    async def update(self, document: D, /, **changes: Any) -> D:
        """Set fields on a document, only if nobody wrote it since it was read.

        Returns the updated document (version incremented); `document` is left unchanged.

        Raises:
            VersionConflict: the stored version differs from `document.version`.
            NotFoundError: it was deleted meanwhile.
            DocumentValidationError: a change does not fit the schema.
        """
        return await self._apply_update(document, changes)

    async def _apply_update(
        self, document: D, changes: Mapping[str, Any], *, privileged: bool = False
    ) -> D:
        """`update`; `privileged` for the layer's own writes of fields it guards."""
        expected = check_int(
            "version", getattr(document, "version", 0), document_type=self.document_type
        )
        updated, set_fields = self._schema.apply_changes(document, dict(changes))
        collection = self.collection()
        if privileged:
            collection = collection._privileged()
        now = utcnow()
        result = await collection.update_one(
            {"_id": document.id, "__v": expected}, {"$set": set_fields}, stamp_time=now
        )
        if result.matched_count != 1:
            await raise_write_miss(collection, self.document_type, document.id, expected)
        stamp_updated(updated, version=expected + 1, now=now)
        return updated

    async def update_by_id(
        self,
        document_id: Any,
        changes: Mapping[str, Any],
        *,
        expected_version: int | None = None,
        actor: Any = None,
    ) -> D:
        """Set fields on the document with this id without reading it first.

        With `expected_version` the write applies only at that version (else
        `VersionConflict`); without it, the last writer wins. Values are validated field by
        field before any I/O; a document class whose validators read across fields is read
        and checked whole instead. `actor` is who acts, for repositories that record it (the
        audited ones); the base stores no author. Returns the document as stored.

        Raises:
            DocumentValidationError: an unknown or layer-owned field, or a bad value.
            VersionConflict: the stored version differs from `expected_version`.
            NotFoundError: no such document (or it is soft-deleted).
        """
        del actor  # the base keeps no author; audited repositories record it
        target = self._id(document_id)
        if expected_version is not None:
            check_int("expected_version", expected_version, document_type=self.document_type)
        if self._schema.whole_validation:
            current = await self.get(target)
            if expected_version is not None and current.version != expected_version:
                collection = self.collection()
                await raise_write_miss(collection, self.document_type, target, expected_version)
            return await self._apply_update(current, changes)
        set_fields = self._schema.validate_fields(changes)
        collection = self.collection()
        query: dict[str, Any] = {"_id": target}
        if expected_version is not None:
            query["__v"] = expected_version
        # update_one, not findAndModify: the embedded server scans the collection for that.
        result = await collection.update_one(query, {"$set": set_fields})
        if result.matched_count != 1:
            if expected_version is None:
                raise self._not_found(target, collection)
            await raise_write_miss(collection, self.document_type, target, expected_version)
        raw = await collection.find_one({"_id": target})
        if raw is None:  # deleted right after the write
            raise self._not_found(target, collection)
        return self._load(raw)

    async def save(self, document: D) -> D:
        """Replace the stored document if its version is unchanged (insert it when new)."""
        with self._errors():
            self.document_type.model_validate(dump_document(document))
        return await replace_document(document, upsert=True, collection=self.collection())

    async def update_many(
        self,
        filter: Mapping[str, Any],
        changes: Mapping[str, Any],
        *,
        include_deleted: bool = False,
    ) -> int:
        """Apply a `$set` of fields (or a raw update document) to every match.

        Returns the number of documents changed; `__v` and `updated_at` move on each.
        """
        if changes and all(str(k).startswith("$") for k in changes):
            update: Mapping[str, Any] = changes
        else:
            for name in changes:
                if self._stored_field(name) in PROTECTED_FIELDS:
                    raise DocumentValidationError(
                        f"{name!r} is managed by the layer", document_type=self.document_type
                    )
            update = {"$set": {self._stored_field(k): v for k, v in changes.items()}}
        collection = self.collection(include_deleted=include_deleted)
        result = await collection.update_many(self._check_filter(filter), update)
        return int(result.modified_count)

    async def delete_many(
        self,
        filter: Mapping[str, Any],
        *,
        actor: Any = None,
        purge: bool = False,
        match_all: bool = False,
    ) -> int:
        """Delete every match: soft where the document type supports it, else for good.

        Soft-deleted matches stay restorable one by one (`restore`); `actor` is stored as
        their `deleted_by`. `purge=True` deletes for good (soft-deleted ones included). An
        empty filter would delete the whole collection of the tenant: refused unless
        `match_all=True` says so. Returns how many documents were deleted.

        Raises:
            DocumentValidationError: an empty filter without `match_all`, or an unknown field.
        """
        query = self._check_filter(filter)
        if not query and not match_all:
            raise DocumentValidationError(
                f"delete_many() with an empty filter deletes every {self.document_type.__name__}"
                " of the tenant: pass match_all=True to mean it",
                fields=("filter",),
                document_type=self.document_type,
            )
        if purge or not self._soft_delete:
            collection = self.collection(include_deleted=True)
            return int((await collection.delete_many(query)).deleted_count)
        # The layer's own write of the fields it guards (as `soft_delete`).
        collection = self.collection()._privileged()
        result = await collection.update_many(
            query, {"$set": {"deleted_at": utcnow(), "deleted_by": actor}}
        )
        return int(result.modified_count)

    async def delete(self, document_or_id: Any, *, actor: Any = None) -> None:
        """Soft-delete when the document type supports it, otherwise delete for good."""
        if self._soft_delete:
            await self.soft_delete(document_or_id, actor=actor)
        else:
            await self.purge(document_or_id)

    # -- soft delete ------------------------------------------------------------------

    def _require_soft_delete(self) -> None:
        if not self._soft_delete:
            raise ConfigurationError(
                f"{self.document_type.__name__} has no soft delete (SoftDeleteMixin)",
                document_type=self.document_type,
            )

    async def soft_delete(self, document_or_id: Any, *, actor: Any = None) -> D:
        """Mark the document deleted; reads skip it from now on.

        Idempotent: deleting a deleted document returns it unchanged (with its original
        `deleted_at`).
        """
        self._require_soft_delete()
        return await self._set_deleted(document_or_id, deleted=True, deleted_by=actor)

    async def restore(self, document_or_id: Any) -> D:
        """Undo a soft delete. Idempotent: restoring a live document returns it unchanged."""
        self._require_soft_delete()
        return await self._set_deleted(document_or_id, deleted=False, deleted_by=None)

    async def _set_deleted(self, document_or_id: Any, *, deleted: bool, deleted_by: Any) -> D:
        document_id = self._id(document_or_id)
        collection = self.collection(include_deleted=True)
        await set_deleted(collection, document_id, deleted=deleted, deleted_by=deleted_by)
        raw = await collection.find_one({"_id": document_id})
        if raw is None:
            raise self._not_found(document_id, collection)
        return self._load(raw)

    async def purge(self, document_or_id: Any) -> None:
        """Delete for good (soft-deleted or not); `NotFoundError` if nothing was there."""
        document_id = self._id(document_or_id)
        collection = self.collection(include_deleted=True)
        result = await collection.delete_one({"_id": document_id})
        if result.deleted_count != 1:
            raise self._not_found(document_id, collection)
