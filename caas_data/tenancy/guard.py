"""`GuardedCollection`: the one depth at which the tenant boundary is enforced.

Every path into the database (Beanie's query API, the repositories, bulk writers, change
streams) asks `get_pymongo_collection()` for a collection and gets this proxy. It knows the
operations of PyMongo's `AsyncCollection` one by one; any attribute it does not know raises
`UnsafeOperation` instead of reaching the driver (fail closed). It also injects the ambient
transaction session and translates driver errors. With field encryption (`cipher`), the
values of declared fields are encrypted here, after the tenant rules, and decrypted on read.

It answers `name` with the collection's logical name (`users`, whatever the tenant's
isolation model), as Beanie builds joins and references from it, and every reference it sends
names a logical collection of the tenant (`tenancy/references.py`).
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar

from beanie import PydanticObjectId
from bson import ObjectId
from bson.codec_options import CodecOptions
from bson.raw_bson import RawBSONDocument
from pymongo import UpdateOne
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import OperationFailure
from pymongo.results import InsertManyResult, InsertOneResult

from caas_data.clock import write_stamp
from caas_data.driver_errors import translate_driver_errors
from caas_data.engine.sessions import current_session, current_write_concern
from caas_data.engine.write_conflicts import after_write_conflict, retry_write_conflicts
from caas_data.errors import DocumentValidationError, UnsafeOperation
from caas_data.tenancy.bulk_requests import BulkRequest
from caas_data.tenancy.change_streams import change_stream_stages, records_pre_images
from caas_data.tenancy.cursors import GuardedCursor
from caas_data.tenancy.cutoffs import retention_cutoff, retention_limit
from caas_data.tenancy.encoded import encode_new_document, encode_replacement, raw_codec_options
from caas_data.tenancy.field_encryption import FieldCipher
from caas_data.tenancy.handle_scope import ScopeKey, check_handle_scope, scope_key
from caas_data.tenancy.pipeline_rules import LookupTarget, guard_pipeline
from caas_data.tenancy.references import LogicalName, logical_references
from caas_data.tenancy.rules import (
    CollectionRules,
    guard_filter,
    guard_new_document,
    guard_replacement,
    guard_update,
    guard_write_filter,
)
from caas_data.tenancy.snapshots import plain_key

if TYPE_CHECKING:
    from contextlib import AbstractContextManager

__all__ = ["GuardedCollection", "ScopeKey", "scope_key"]

T = TypeVar("T")

_SAFE_ATTRIBUTES = frozenset(
    {"full_name", "codec_options", "read_preference", "write_concern", "read_concern"}
)


def _split_filter(args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Any, tuple[Any, ...]]:
    if "filter" in kwargs:
        return kwargs.pop("filter"), args
    if args:
        return args[0], args[1:]
    return None, args


def _as_query(query: Any) -> Any:
    """PyMongo accepts a bare `_id` where a filter goes (`find_one(oid)`)."""
    if query is not None and not isinstance(query, Mapping):
        return {"_id": query}
    return query


class GuardedCollection:
    """A tenant-safe stand-in for one `AsyncCollection` within one scope."""

    __slots__ = (
        "_cipher",
        "_collection",
        "_document_type",
        "_include_deleted",
        "_logical_name",
        "_raw_options",
        "_reference_name",
        "_resolve",
        "_rules",
        "_scope",
        "_shared",
        "_translation",
    )

    def __init__(
        self,
        collection: AsyncCollection[Any],
        rules: CollectionRules,
        *,
        resolve: Callable[[str], LookupTarget],
        reference_name: LogicalName,
        shared: bool,
        scope: ScopeKey,
        document_type: type[Any] | None = None,
        include_deleted: bool = False,
        cipher: FieldCipher | None = None,
        logical_name: str | None = None,
    ) -> None:
        self._collection = collection
        self._logical_name = collection.name if logical_name is None else logical_name
        self._reference_name = reference_name
        self._cipher = cipher
        self._rules = rules
        self._resolve = resolve
        self._shared = shared
        self._scope = scope
        self._document_type = document_type
        self._include_deleted = include_deleted
        self._raw_options: CodecOptions[Any] | None = None
        self._translation = translate_driver_errors(
            tenant_id=rules.tenant_id, document_type=document_type
        )

    # -- introspection ----------------------------------------------------------------

    def __getattr__(self, name: str) -> Any:
        if name in _SAFE_ATTRIBUTES:
            return getattr(self._collection, name)
        raise UnsafeOperation(
            f"collection method {name!r} is not known to the tenant guard; refused",
            tenant_id=self._rules.tenant_id,
            document_type=self._document_type,
        )

    def __repr__(self) -> str:
        return (
            f"GuardedCollection({self._collection.full_name!r}, tenant={self._rules.tenant_id!r})"
        )

    @property
    def name(self) -> str:
        """The logical collection name (Beanie's `Settings.name`), in every isolation model.

        Beanie builds `$lookup.from` and the DBRef of a `Link` from it: a reference must
        survive a move between models, and a join is routed to the scope's own collection.
        `full_name` stays the physical namespace.
        """
        return self._logical_name

    @property
    def rules(self) -> CollectionRules:
        """What this proxy enforces."""
        return self._rules

    def _copy(
        self,
        *,
        collection: AsyncCollection[Any] | None = None,
        rules: CollectionRules | None = None,
        include_deleted: bool | None = None,
    ) -> GuardedCollection:
        return GuardedCollection(
            self._collection if collection is None else collection,
            self._rules if rules is None else rules,
            resolve=self._resolve,
            reference_name=self._reference_name,
            shared=self._shared,
            scope=self._scope,
            document_type=self._document_type,
            include_deleted=self._include_deleted if include_deleted is None else include_deleted,
            cipher=self._cipher,
            logical_name=self._logical_name,
        )

    def including_deleted(self) -> GuardedCollection:
        """The same proxy, but reads also see soft-deleted documents."""
        return self._copy(include_deleted=True)

    def with_options(self, **options: Any) -> GuardedCollection:
        """`AsyncCollection.with_options`, still guarded."""
        return self._copy(collection=self._collection.with_options(**options))

    def _privileged(self) -> GuardedCollection:
        """The layer's own writes: they may set the fields the layer owns (never the tenant)."""
        return self._copy(rules=dataclasses.replace(self._rules, privileged=True))

    # -- helpers ----------------------------------------------------------------------

    def _check_scope(self) -> None:
        """Serve only the scope this handle was made in (a handle kept past it is refused)."""
        check_handle_scope(
            self._scope,
            self._collection.name,
            tenant_id=self._rules.tenant_id,
            document_type=self._document_type,
        )

    def _filter(self, query: Any) -> dict[str, Any]:
        self._check_scope()
        guarded = guard_filter(_as_query(query), self._rules, include_deleted=self._include_deleted)
        return self._references(guarded)

    def _references(self, value: T) -> T:
        """`value` with its references naming logical collections of the scope (or refused)."""
        result: T = logical_references(value, self._reference_name)
        return result

    def _encoded(self, new: dict[str, Any]) -> tuple[RawBSONDocument, Any]:
        """A new document as the bytes to send, checked for references, and its `_id`."""
        codec_options = self._collection.codec_options
        return encode_new_document(new, codec_options, self._raw(), self._references)

    def _encoded_replacement(self, new: dict[str, Any]) -> RawBSONDocument:
        """A replacement as the bytes to send, checked for references."""
        codec_options = self._collection.codec_options
        return encode_replacement(new, codec_options, self._raw(), self._references)

    def _raw(self) -> CodecOptions[Any]:
        if self._raw_options is None:
            self._raw_options = raw_codec_options(self._collection.codec_options)
        return self._raw_options

    def _errors(self) -> AbstractContextManager[None]:
        """One translation per handle: it holds no state between uses (re-entrant)."""
        return self._translation

    def _cursor(
        self,
        cursor: Any,
        *,
        deep: bool = False,
        opener: Callable[[], Awaitable[Any]] | None = None,
    ) -> GuardedCursor:
        """A guarded cursor; `deep` decrypts ciphertext anywhere (joins, change events)."""
        cipher = self._cipher
        transform: Callable[[Any], Awaitable[Any]] | None = None
        if cipher is not None and deep:
            transform = cipher.decrypt_any
        elif cipher is not None and cipher.fields:
            transform = cipher.decrypt_document
        return GuardedCursor(
            cursor, check=self._check_scope, errors=self._errors, transform=transform, opener=opener
        )

    # -- field encryption (no-ops without a cipher) --------------------------------------

    async def _sealed_filter(self, query: dict[str, Any]) -> dict[str, Any]:
        return query if self._cipher is None else await self._cipher.encrypt_filter(query)

    async def _sealed_document(self, document: dict[str, Any]) -> dict[str, Any]:
        return document if self._cipher is None else await self._cipher.encrypt_document(document)

    async def _sealed_update(self, update: Any) -> Any:
        return update if self._cipher is None else await self._cipher.encrypt_update(update)

    async def _opened(self, document: Any) -> Any:
        if self._cipher is None or document is None:
            return document
        return await self._cipher.decrypt_document(document)

    def _write_filter(self, query: Any, *, include_deleted: bool | None = None) -> dict[str, Any]:
        self._check_scope()
        deleted = self._include_deleted if include_deleted is None else include_deleted
        guarded = guard_write_filter(_as_query(query), self._rules, include_deleted=deleted)
        return self._references(guarded)

    def _writable(self, operation: str, *, insert: bool = False) -> None:
        self._check_scope()
        if self._rules.read_only and not self._rules.privileged:
            raise UnsafeOperation(
                f"{operation} refused: {self._collection.name} is platform data, read-only "
                "from a tenant scope (write it in `system_scope()`)",
                tenant_id=self._rules.tenant_id,
                document_type=self._document_type,
            )
        if self._rules.append_only and not insert:
            raise UnsafeOperation(
                f"{operation} refused: the collection is append-only "
                "(retention uses delete_older_than)",
                tenant_id=self._rules.tenant_id,
                document_type=self._document_type,
            )

    @staticmethod
    def _session(kwargs: dict[str, Any]) -> dict[str, Any]:
        if kwargs.get("session") is None:
            kwargs["session"] = current_session()
        return kwargs

    def _writer(self, options: dict[str, Any]) -> AsyncCollection[Any]:
        """The driver collection a write goes to: with the caller's write-concern override.

        Inside a transaction the transaction's write concern applies (the server refuses one
        per statement).
        """
        concern = current_write_concern()
        session = options.get("session")
        if concern is None or (session is not None and session.in_transaction):
            return self._collection
        return self._collection.with_options(write_concern=concern)

    # -- reads ------------------------------------------------------------------------

    def find(self, *args: Any, **kwargs: Any) -> GuardedCursor:
        """`find`, restricted to the scope's tenant (and to live documents)."""
        query, rest = _split_filter(args, kwargs)
        guarded, options = self._filter(query), self._session(kwargs)
        cipher = self._cipher
        if cipher is not None and cipher.needs_filter_encryption(guarded):

            async def open_encrypted() -> Any:  # encrypting is async; find() is not
                sealed = await cipher.encrypt_filter(guarded)
                return self._collection.find(sealed, *rest, **options)

            return self._cursor(None, opener=open_encrypted)
        with self._errors():
            cursor = self._collection.find(guarded, *rest, **options)
        return self._cursor(cursor)

    async def find_one(self, filter: Any = None, *args: Any, **kwargs: Any) -> Any:
        """`find_one`, restricted like `find`."""
        with self._errors():
            query = self._filter(filter)
            if self._cipher is None:  # the hot path: no coroutine for the no-op steps
                return await self._collection.find_one(query, *args, **self._session(kwargs))
            query = await self._sealed_filter(query)
            found = await self._collection.find_one(query, *args, **self._session(kwargs))
            return await self._opened(found)

    async def count_documents(self, filter: Any = None, **kwargs: Any) -> int:
        """`count_documents`, restricted like `find`."""
        with self._errors():
            query = await self._sealed_filter(self._filter(filter))
            return await self._collection.count_documents(query, **self._session(kwargs))

    async def estimated_document_count(self, **kwargs: Any) -> int:
        """Exact count of the scope's documents (the estimate would count every tenant)."""
        return await self.count_documents({}, **kwargs)

    async def distinct(self, key: str, filter: Any = None, **kwargs: Any) -> list[Any]:
        """`distinct`, over the scope's documents only."""
        field = plain_key(key)
        with self._errors():
            query = await self._sealed_filter(self._filter(filter))
            values = await self._collection.distinct(field, query, **self._session(kwargs))
            if self._cipher is not None:
                values = await self._cipher.decrypt_any(values)
            return list(values)

    async def aggregate(self, pipeline: Sequence[Any], **kwargs: Any) -> GuardedCursor:
        """`aggregate`, with every stage (joins included) restricted to the tenant."""
        self._check_scope()
        guarded = self._references(
            guard_pipeline(
                pipeline, self._rules, self._resolve, include_deleted=self._include_deleted
            )
        )
        with self._errors():
            if self._cipher is not None:  # equality on encrypted fields compares ciphertext
                for index, stage in enumerate(guarded):
                    if "$match" in stage:
                        guarded[index] = {"$match": await self._sealed_filter(stage["$match"])}
            cursor = await self._collection.aggregate(guarded, **self._session(kwargs))
        return self._cursor(cursor, deep=True)

    # -- writes -------------------------------------------------------------------------

    async def insert_one(self, document: Any, **kwargs: Any) -> Any:
        """`insert_one`, with the tenant stamped (or checked) on the document."""
        self._writable("insert_one", insert=True)
        new = guard_new_document(document, self._rules)
        options = self._session(kwargs)
        with self._errors():
            if self._cipher is None:  # the hot path: encoded once, here (`encoded.py`)
                raw, new_id = self._encoded(new)
                result = await self._writer(options).insert_one(raw, **options)
            else:
                sealed = await self._sealed_document(self._references(new))
                result = await self._writer(options).insert_one(sealed, **options)
                new_id = result.inserted_id
        if isinstance(document, dict) and "_id" not in document:
            document["_id"] = new_id  # as PyMongo does
        if type(new_id) is ObjectId:
            # Beanie's `insert()` converts a bare ObjectId to its id type through a new
            # pydantic TypeAdapter per call (~40 us, a quarter of a small insert's CPU);
            # the same id as Beanie's `PydanticObjectId` (an ObjectId) needs no conversion.
            new_id = PydanticObjectId(new_id)
        return InsertOneResult(new_id, result.acknowledged)

    async def insert_many(self, documents: Any, **kwargs: Any) -> Any:
        """`insert_many`, with the tenant stamped (or checked) on every document."""
        self._writable("insert_many", insert=True)
        now = write_stamp()
        news = [guard_new_document(d, self._rules, now=now) for d in documents]
        if not news:  # PyMongo raises a bare TypeError for it
            raise DocumentValidationError(
                "insert_many needs at least one document",
                tenant_id=self._rules.tenant_id,
                document_type=self._document_type,
            )
        options = self._session(kwargs)
        with self._errors():
            if self._cipher is None:  # encoded once, here (`encoded.py`)
                encoded = [self._encoded(new) for new in news]
                result = await self._writer(options).insert_many(
                    [raw for raw, _ in encoded], **options
                )
                return InsertManyResult([new_id for _, new_id in encoded], result.acknowledged)
            news = [await self._sealed_document(self._references(new)) for new in news]
            return await self._writer(options).insert_many(news, **options)

    async def update_one(
        self,
        filter: Any,
        update: Any,
        *,
        stamp_time: datetime | None = None,
        **kwargs: Any,
    ) -> Any:
        """`update_one` within the tenant; bumps `__v` and `updated_at`."""
        self._writable("update_one")
        guarded = guard_update(
            update, self._rules, now=stamp_time or write_stamp(), upsert=bool(kwargs.get("upsert"))
        )
        query, options = guarded.filter(self._write_filter(filter)), self._session(kwargs)
        with self._errors():
            body = self._references(guarded.update)
            if self._cipher is not None:  # the hot path: no coroutine for the no-op steps
                query = await self._sealed_filter(query)
                body = await self._sealed_update(body)
            attempt = functools.partial(self._writer(options).update_one, query, body, **options)
            try:  # the first attempt awaited here: no retry coroutine on the hot path
                return await attempt()
            except OperationFailure as exc:
                return await after_write_conflict(exc, attempt, options["session"])

    async def update_many(self, filter: Any, update: Any, **kwargs: Any) -> Any:
        """`update_many` within the tenant; bumps `__v` and `updated_at` on every match."""
        self._writable("update_many")
        guarded = guard_update(
            update, self._rules, now=write_stamp(), upsert=bool(kwargs.get("upsert")), single=False
        )
        query, options = guarded.filter(self._write_filter(filter)), self._session(kwargs)
        with self._errors():
            query = await self._sealed_filter(query)
            body = await self._sealed_update(self._references(guarded.update))
            return await self._writer(options).update_many(query, body, **options)

    async def replace_one(
        self,
        filter: Any,
        replacement: Any,
        *,
        stamp_time: datetime | None = None,
        **kwargs: Any,
    ) -> Any:
        """`replace_one`, conditional on the `__v` the replacement carries.

        `stamp_time` lets the layer's own writes know the `updated_at` that was stored.
        """
        self._writable("replace_one")
        query, new = guard_replacement(
            self._write_filter(filter), replacement, self._rules, now=stamp_time or write_stamp()
        )
        options = self._session(kwargs)
        with self._errors():
            body: Any
            if self._cipher is None:  # encoded once: the walk only if the bytes hold a `$ref`
                body = self._encoded_replacement(new)
            else:
                query = await self._sealed_filter(query)
                body = await self._sealed_document(self._references(new))
            attempt = functools.partial(self._writer(options).replace_one, query, body, **options)
            try:  # as in update_one
                return await attempt()
            except OperationFailure as exc:
                return await after_write_conflict(exc, attempt, options["session"])

    async def delete_one(self, filter: Any, **kwargs: Any) -> Any:
        """`delete_one` (a hard delete) within the tenant; soft-deleted documents included."""
        self._writable("delete_one")
        query = self._write_filter(filter, include_deleted=True)
        with self._errors():
            query = await self._sealed_filter(query)
            options = self._session(kwargs)
            return await self._writer(options).delete_one(query, **options)

    async def delete_many(self, filter: Any, **kwargs: Any) -> Any:
        """`delete_many` (a hard delete) within the tenant; soft-deleted documents included."""
        self._writable("delete_many")
        query = self._write_filter(filter, include_deleted=True)
        with self._errors():
            query = await self._sealed_filter(query)
            options = self._session(kwargs)
            return await self._writer(options).delete_many(query, **options)

    async def find_one_and_update(self, filter: Any, update: Any, **kwargs: Any) -> Any:
        """`find_one_and_update` within the tenant; bumps `__v` and `updated_at`."""
        self._writable("find_one_and_update")
        guarded = guard_update(
            update, self._rules, now=write_stamp(), upsert=bool(kwargs.get("upsert"))
        )
        query, options = guarded.filter(self._write_filter(filter)), self._session(kwargs)
        with self._errors():
            query = await self._sealed_filter(query)
            body = await self._sealed_update(self._references(guarded.update))
            found = await retry_write_conflicts(
                lambda: self._writer(options).find_one_and_update(query, body, **options),
                options["session"],
            )
            return await self._opened(found)

    async def find_one_and_replace(self, filter: Any, replacement: Any, **kwargs: Any) -> Any:
        """`find_one_and_replace`, conditional on the `__v` the replacement carries."""
        self._writable("find_one_and_replace")
        query, new = guard_replacement(
            self._write_filter(filter), replacement, self._rules, now=write_stamp()
        )
        options = self._session(kwargs)
        with self._errors():
            query = await self._sealed_filter(query)
            new = await self._sealed_document(self._references(new))
            found = await retry_write_conflicts(
                lambda: self._writer(options).find_one_and_replace(query, new, **options),
                options["session"],
            )
            return await self._opened(found)

    async def find_one_and_delete(self, filter: Any, **kwargs: Any) -> Any:
        """`find_one_and_delete` (a hard delete) within the tenant."""
        self._writable("find_one_and_delete")
        query = self._write_filter(filter, include_deleted=True)
        with self._errors():
            query = await self._sealed_filter(query)
            options = self._session(kwargs)
            found = await self._writer(options).find_one_and_delete(query, **options)
            return await self._opened(found)

    async def bulk_write(self, requests: Sequence[Any], **kwargs: Any) -> Any:
        """`bulk_write`, each request guarded as its single-operation twin would be."""
        self._writable("bulk_write", insert=True)  # each request is checked below
        now = write_stamp()
        guarded = [self._guard_request(request, now) for request in requests]
        with self._errors():
            sealed = [await self._sealed_request(request) for request in guarded]
            options = self._session(kwargs)
            return await self._writer(options).bulk_write(sealed, **options)

    def _guard_request(self, request: Any, now: datetime) -> BulkRequest:
        parts = BulkRequest.of(
            request, tenant_id=self._rules.tenant_id, document_type=self._document_type
        )
        if parts.inserts:
            new = guard_new_document(parts.body, self._rules, now=now)
            return dataclasses.replace(parts, body=self._references(new))
        self._writable(f"bulk {parts.kind.__name__}")
        if parts.deletes:
            return dataclasses.replace(
                parts, filter=self._write_filter(parts.filter, include_deleted=True)
            )
        if parts.updates:
            upsert, single = bool(parts.options["upsert"]), parts.kind is UpdateOne
            update = guard_update(parts.body, self._rules, now=now, upsert=upsert, single=single)
            query = update.filter(self._write_filter(parts.filter))
            return dataclasses.replace(parts, filter=query, body=self._references(update.update))
        query, new = guard_replacement(
            self._write_filter(parts.filter), parts.body, self._rules, now=now
        )
        return dataclasses.replace(parts, filter=query, body=self._references(new))

    async def _sealed_request(self, request: BulkRequest) -> Any:
        """A guarded request as PyMongo's request, its encrypted fields sealed."""
        if request.inserts:
            return request.rebuild(None, await self._sealed_document(request.body))
        query = await self._sealed_filter(request.filter)
        if request.deletes:
            return request.rebuild(query, None)
        if request.updates:
            return request.rebuild(query, await self._sealed_update(request.body))
        return request.rebuild(query, await self._sealed_document(request.body))

    async def delete_older_than(
        self,
        cutoff: datetime,
        *,
        field: str = "created_at",
        limit: int | None = None,
        **kwargs: Any,
    ) -> int:
        """Retention: delete the tenant's entries whose `field` is before `cutoff`.

        The one delete append-only collections allow. With `limit`, at most that many go per
        call (oldest first), so a large backlog is removed in bounded batches.
        """
        self._check_scope()
        cutoff = retention_cutoff(cutoff)
        limit = retention_limit(limit)
        query = guard_filter({field: {"$lt": cutoff}}, self._rules, include_deleted=True)
        options = self._session(kwargs)
        with self._errors():
            if limit is not None:  # the oldest `limit` entries, by id
                oldest = self._collection.find(
                    query, {"_id": 1}, sort=[(field, 1)], limit=limit, **options
                )
                query["_id"] = {"$in": [doc["_id"] async for doc in oldest]}
            result = await self._writer(options).delete_many(query, **options)
            return int(result.deleted_count)

    # -- change streams ---------------------------------------------------------------

    async def watch(self, pipeline: Sequence[Any] | None = None, **kwargs: Any) -> Any:
        """A change stream that delivers only this tenant's events.

        On a collection shared between tenants, deletes carry only `_id`, so the stream
        filters on the document's pre-image: the collection must record pre-images
        (provisioning turns them on); without them `watch` is refused.
        """
        self._check_scope()
        tenant = self._rules.tenant_id if self._shared and self._rules.filters_tenant else None
        stages = self._references(change_stream_stages(pipeline, tenant, kwargs))
        if tenant is not None:
            with self._errors():
                recorded = await records_pre_images(self._collection)
            if not recorded:
                raise UnsafeOperation(
                    f"watch() on the shared collection {self._collection.full_name} needs "
                    "change-stream pre-images (changeStreamPreAndPostImages), which it lacks",
                    tenant_id=self._rules.tenant_id,
                    document_type=self._document_type,
                )
        with self._errors():
            stream = await self._collection.watch(stages, **self._session(kwargs))
        return self._cursor(stream, deep=True)

    # -- metadata ---------------------------------------------------------------------

    async def index_information(self, **kwargs: Any) -> Any:
        """Index metadata: names and keys, no documents."""
        self._check_scope()
        with self._errors():
            return await self._collection.index_information(**self._session(kwargs))

    async def list_indexes(self, **kwargs: Any) -> Any:
        """Index metadata: names and keys, no documents."""
        self._check_scope()
        with self._errors():
            cursor = await self._collection.list_indexes(**self._session(kwargs))
        return GuardedCursor(cursor, check=self._check_scope, errors=self._errors)
