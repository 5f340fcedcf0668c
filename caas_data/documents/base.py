"""Document bases whose collection is resolved per call, and the standard-field mixins.

The mixins carry the schema index's standard fields. They are plain pydantic models, not
Documents: Beanie skips initialising a class with two Document bases.

Beanie 2 sends every operation through `Document.get_pymongo_collection()`; `BaseDocument`
answers it from the running scope, so `User.find(...)`, `user.insert()` and `User.aggregate()`
reach the scope's tenant and nobody rebinds classes per request.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any, ClassVar, Protocol, Self, TypeVar

from beanie import BulkWriter, Document, PydanticObjectId, WriteRules
from beanie.exceptions import CollectionWasNotInitialized
from beanie.odm.actions import ActionDirections, EventTypes, wrap_with_actions
from beanie.odm.settings.document import DocumentSettings
from beanie.odm.utils.self_validation import validate_self_before
from beanie.odm.utils.state import save_state_after
from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic_core import PydanticUndefined
from pymongo.asynchronous.client_session import AsyncClientSession

from caas_data.clock import utcnow
from caas_data.documents.bare_writes import bare_writes, insert_directly, replace_directly
from caas_data.documents.beanie_state import (
    abstract_settings,
    is_abstract,
    reset_abstract_bases,
)
from caas_data.documents.cache import key_cache_by_tenant
from caas_data.documents.loading import fast_loader
from caas_data.errors import (
    ConfigurationError,
    DocumentValidationError,
    SchemaVersionError,
    TenantContextMissing,
)
from caas_data.tenancy.context import current_scope
from caas_data.tenancy.field_encryption import FieldEncryption
from caas_data.tenancy.guard import GuardedCollection

__all__ = [
    "AppendOnlyMixin",
    "Area",
    "BaseDocument",
    "CreatedAtMixin",
    "DocumentStorage",
    "FieldEncryption",
    "PlatformDocument",
    "RawDocument",
    "SchemaStep",
    "SoftDeleteMixin",
    "TenantAccess",
    "TenantDocument",
    "TenantMixin",
    "TenantOwnedDocument",
    "TimestampMixin",
    "VersionMixin",
    "install_storage",
    "upcast",
    "utcnow",
]

RawDocument = dict[str, Any]
"""A stored document as the driver returns it (stored field names, BSON types)."""

_D = TypeVar("_D", bound="BaseDocument")


class DocumentStorage(Protocol):
    """How the declarations reach the database: per-call routing and the version-safe writes.

    Routing and writes read the declarations, so the declarations cannot import them; they
    reach them through this seam, which the `caas_data.documents` package installs on import
    (`documents.storage`).
    """

    def collection_for(self, document_type: type[BaseDocument], /) -> GuardedCollection:
        """The guarded collection of `document_type` in the running scope."""
        ...

    async def run_stored_write(
        self,
        document: _D,
        write: Callable[[], Awaitable[Any]],
        /,
        *,
        session: AsyncClientSession | None = None,
        deferred: bool = False,
        force: bool = False,
    ) -> _D:
        """Run Beanie's write of a stored document, conditional on its `__v`."""
        ...

    async def save_document(
        self,
        document: _D,
        /,
        *,
        session: AsyncClientSession | None = None,
        link_rule: WriteRules = WriteRules.DO_NOTHING,
        ignore_revision: bool = False,
        bulk_writer: BulkWriter | None = None,
    ) -> _D:
        """Insert a new document, or replace a stored one if its version is unchanged."""
        ...

    async def set_deleted(
        self,
        collection: GuardedCollection,
        document_id: Any,
        /,
        *,
        deleted: bool,
        deleted_by: Any = None,
        session: AsyncClientSession | None = None,
    ) -> bool:
        """Soft-delete (or restore) one document through the guard."""
        ...


_storage: list[DocumentStorage] = []


def install_storage(storage: DocumentStorage) -> None:
    """Give the declarations their routing and writes (the documents package does it once)."""
    _storage[:] = [storage]


def _installed() -> DocumentStorage:
    if not _storage:
        raise ConfigurationError("caas_data.documents did not install its routing and writes")
    return _storage[0]


@dataclass(frozen=True, slots=True)
class SchemaStep:
    """One named step of a document type's shape: from `version - 1` to `version`.

    `forward` is a pure function of the stored document (it must be idempotent and keep
    `_id` and `tenant_id`): `caas-data migrate` applies it to stored documents, and reads of a
    document still at `version - 1` apply it in memory (it is the declared upcaster).
    `backward`, when the change can be undone, lets `migrate --to` go back.
    """

    version: int
    name: str
    forward: Callable[[RawDocument], RawDocument]
    backward: Callable[[RawDocument], RawDocument] | None = None


def upcast(
    document_type: type[BaseDocument], raw: RawDocument, *, to: int | None = None
) -> RawDocument:
    """`raw` brought to version `to` (default: the class's) by its declared forward steps.

    Raises:
        SchemaVersionError: no step bridges a version, or `raw` is newer than the class.
    """
    current = document_type.caas_schema_version()
    target = current if to is None else to
    stored = raw.get("schema_version", 1)
    if type(stored) is not int or stored < 1 or stored > current:
        why = (
            "newer than this code knows" if type(stored) is int and stored > current else "invalid"
        )
        raise SchemaVersionError(
            f"stored schema_version {stored!r} is {why} (this code reads {current}): "
            "deploy the code that wrote it, or fix the document",
            stored=stored,
            current=current,
            document_type=document_type,
        )
    steps = {step.version: step for step in document_type.caas_schema_steps}
    result = raw
    for version in range(stored + 1, target + 1):
        step = steps.get(version)
        if step is None:  # pragma: no cover - the registry refuses gaps
            raise SchemaVersionError(
                f"no step to schema_version {version}: run `caas-data migrate`",
                stored=stored,
                current=current,
                document_type=document_type,
            )
        result = {**step.forward(dict(result)), "schema_version": version}
    return result


def _tenant_from_scope() -> str:
    scope = current_scope()
    if scope is None or scope.tenant_id is None:
        raise TenantContextMissing(
            "tenant_id not given and no tenant scope is active: "
            "use `async with caas_data.tenant_scope(tenant_id)`"
        )
    return scope.tenant_id


def not_registered(document_type: type[Any]) -> ConfigurationError:
    """The error for a document class the running layer was not given."""
    return ConfigurationError(
        f"{document_type.__name__} is not registered with this layer, so its collections and "
        "indexes were never created: pass it to `connect(documents=[...])` (or "
        "`caas_lifespan(documents=...)`, the pytest plugin's `caas_documents` fixture)",
        document_type=document_type,
    )


_IMMUTABLE_DEFAULTS = (type(None), bool, int, float, str, bytes, tuple, frozenset)


class _EmptyStore(Mapping[str, Any]):
    """lazy-model's `_store` of a document parsed whole: empty, shared, copied as itself."""

    def __getitem__(self, key: str) -> Any:
        raise KeyError(key)

    def __iter__(self) -> Iterator[str]:
        return iter(())

    def __len__(self) -> int:
        return 0

    def __copy__(self) -> Self:
        return self

    def __deepcopy__(self, memo: Any) -> Self:
        return self

    def __reduce__(self) -> str:
        return "_EMPTY_STORE"


_EMPTY_STORE = _EmptyStore()
_PRIVATE_SLOT: Any = BaseModel.__dict__["__pydantic_private__"]


def _single_private_init(cls: type[BaseModel]) -> None:
    """Give `cls` one private-attribute initialisation instead of one per class in its chain.

    pydantic wraps `model_post_init` again at every level of a class chain that has private
    attributes (Beanie's `_saved_state`, lazy-model's `_store`...): five nested calls per
    document here. When the chain holds nothing but pydantic's own wrappers, one function
    that builds the same private dict does the same work. A class with a `model_post_init`
    of its own keeps pydantic's chain.
    """
    post_init: Any = cls.__dict__.get("model_post_init")
    while post_init is not None and not getattr(post_init, "_caas_single_init", False):
        if getattr(post_init, "__module__", None) != "pydantic._internal._model_construction":
            return
        post_init = getattr(post_init, "__wrapped__", None)
    statics: dict[str, Any] = {}
    factories: list[tuple[str, Callable[[], Any]]] = []
    for name, attribute in cls.__private_attributes__.items():
        if name == "_store" and attribute.default_factory is dict:
            # lazy-model's store of unparsed values: only ever read (`.get`) or replaced
            # whole, so one shared empty mapping spares a dict per document.
            statics[name] = _EMPTY_STORE
        elif attribute.default_factory is not None:
            if attribute.default_factory_takes_validated_data:
                return
            factories.append((name, attribute.default_factory))  # type: ignore[arg-type]
        elif attribute.default is not PydanticUndefined:
            if not isinstance(attribute.default, _IMMUTABLE_DEFAULTS):
                return
            statics[name] = attribute.default

    def model_post_init(self: BaseModel, context: Any, /) -> None:
        try:  # the slot itself: lazy-model's __getattribute__ is Python code
            private = _PRIVATE_SLOT.__get__(self)
        except AttributeError:
            private = None
        if private is None:
            private = dict(statics)
            for name, factory in factories:
                private[name] = factory()
            object.__setattr__(self, "__pydantic_private__", private)

    model_post_init._caas_single_init = True  # type: ignore[attr-defined]
    # The same plan, for the stored-document loader that builds the dict itself.
    model_post_init._caas_private = (statics, tuple(factories))  # type: ignore[attr-defined]
    setattr(cls, "model_post_init", model_post_init)  # noqa: B010 - mypy: method assignment


class Area(StrEnum):
    """Which database a collection lives in; TENANT follows the tenant's placement."""

    TENANT = "tenant"
    PLATFORM = "platform"
    BILLING = "billing"
    ANALYTICS = "analytics"


class TenantAccess(StrEnum):
    """What a tenant scope may do with a platform collection (rows that no tenant owns).

    Platform rows are written only outside tenant scopes (the platform's own code, or
    `system_scope()`): a tenant that could write the directory could re-route another tenant.
    """

    NONE = "none"  # platform-only: refused in a tenant scope (admins and their hashes)
    OWN_ROW = "own_row"  # the tenant reads the one row whose tenant_id is its own (directory)
    READ = "read"  # the tenant reads every row (a catalogue, e.g. plans)


class BaseDocument(Document):
    """Beanie document routed per call; subclasses pick an area and mixins."""

    model_config = ConfigDict(validate_by_name=True, validate_by_alias=True)

    # Abstract: never stored, never initialised by Beanie (see `beanie_state`).
    caas_abstract: ClassVar[bool] = True
    caas_area: ClassVar[Area] = Area.PLATFORM
    # Platform documents only: what a tenant scope may read of them (see TenantAccess).
    caas_tenant_access: ClassVar[TenantAccess] = TenantAccess.NONE
    # Fields that only the domain's own methods write (e.g. an invoice's number): updates and
    # replacements through any other path are refused, and new documents carry the default.
    caas_protected_fields: ClassVar[frozenset[str]] = frozenset()
    # Conditions a stored document must meet to be updated, replaced or deleted by any path
    # other than the domain's own methods (e.g. only draft invoices change).
    caas_writable_when: ClassVar[dict[str, Any]] = {}
    # Options asked for when the layer creates the collection (e.g. {"timeseries": {...}});
    # a server that refuses them gets a plain collection.
    caas_collection_options: ClassVar[dict[str, Any]] = {}
    # Tenant data only: fields stored as ciphertext under the tenant's own data key (explicit
    # client-side field-level encryption); a layer without encryption refuses the class.
    caas_encrypted_fields: ClassVar[dict[str, FieldEncryption | str]] = {}
    # Personal data (emails, push tokens): encrypted like `caas_encrypted_fields` only on a
    # layer connected with `EncryptionOptions(personal_fields=True)`; stored plainly otherwise.
    caas_personal_fields: ClassVar[dict[str, FieldEncryption | str]] = {}

    # The shape's history: steps to versions 2, 3... (see SchemaStep). A class without steps
    # is at version 1.
    caas_schema_steps: ClassVar[tuple[SchemaStep, ...]] = ()

    schema_version: int = Field(default=1, description="Shape version, for migrations.")

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        """One private-attribute initialisation per class; schema histories read whole documents.

        Beanie projects reads onto the declared fields; an upcaster needs the fields an older
        shape had (renamed or split ones), so such a class reads without a projection unless
        its `Settings` chose one.
        """
        super().__pydantic_init_subclass__(**kwargs)
        _single_private_init(cls)
        settings = cls.__dict__.get("Settings")
        if cls.caas_schema_steps and settings is not None and "projection" not in vars(settings):
            settings.projection = None

    @classmethod
    def caas_schema_version(cls) -> int:
        """The version this code writes and reads: 1 + the number of declared steps."""
        return 1 + len(cls.caas_schema_steps)

    @model_validator(mode="before")
    @classmethod
    def _caas_upcast(cls, data: Any) -> Any:
        """Read an older stored shape through the declared steps; refuse an unknown one.

        A new document (no `schema_version` given) is written at the class's version.
        """
        if not isinstance(data, dict):
            return data
        current = cls.caas_schema_version()
        stored = data.get("schema_version")
        if stored is None:
            return data if current == 1 else {**data, "schema_version": current}
        if stored == current and type(stored) is int:
            return data
        if type(stored) is not int and current == 1:
            return data  # not a version (e.g. Beanie's lazy-parsing sentinel): the field decides
        return upcast(cls, data)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        # Beanie's __init__ asks for the collection to fail early when Beanie is not set up;
        # ours depends on the scope, and building a document is no I/O, so skip that check.
        super(Document, self).__init__(*args, **kwargs)

    def __init_subclass__(cls, **kwargs: Any) -> None:
        # Runs before pydantic collects the new class's fields: it must not inherit the query
        # expressions Beanie put on an abstract base as field defaults.
        reset_abstract_bases(cls)
        super().__init_subclass__(**kwargs)

    @classmethod
    async def custom_init(cls) -> None:
        """Beanie's hook after `init_beanie` initialised `cls`.

        Puts the abstract bases back, and keys Beanie's query cache by scope.
        """
        reset_abstract_bases(cls)
        key_cache_by_tenant(cls)

    @classmethod
    def get_settings(cls) -> DocumentSettings:
        """Beanie's settings of the class (Beanie's defaults for an abstract base)."""
        if is_abstract(cls):
            return abstract_settings(cls)
        settings = cls.__dict__.get("_document_settings")  # Beanie asks 3-4 times a call
        if settings is not None:  # set by init_beanie on this class
            return settings  # type: ignore[no-any-return]  # mypy: a mappingproxy value
        try:
            return super().get_settings()
        except CollectionWasNotInitialized as exc:
            raise not_registered(cls) from exc

    # This __init__ is pydantic's own: telling pydantic so keeps `model_validate` from calling
    # it, which would validate every stored document twice (issue 16).
    __init__.__pydantic_base_init__ = True  # type: ignore[attr-defined]

    @classmethod
    def model_validate(
        cls,
        obj: Any,
        *,
        strict: bool | None = None,
        extra: Any = None,
        from_attributes: bool | None = None,
        context: Any | None = None,
        by_alias: bool | None = None,
        by_name: bool | None = None,
    ) -> Self:
        """Pydantic's `model_validate`; a plain dict goes through the fast loader.

        The loader validates exactly as pydantic does (`documents/loading.py`), so Beanie's
        reads (`get`, `find`, which call this per document) cost what the repositories' do.
        """
        plain = strict is None and extra is None and from_attributes is None
        if type(obj) is dict and plain and context is None and by_alias is by_name is None:
            loader = fast_loader(cls)
            if loader is not None:
                loaded: Self = loader(obj)
                return loaded
        validated: Self = super().model_validate(
            obj,
            strict=strict,
            extra=extra,
            from_attributes=from_attributes,
            context=context,
            by_alias=by_alias,
            by_name=by_name,
        )
        return validated

    @classmethod
    def get_pymongo_collection(cls) -> Any:
        """The collection this call must use, resolved from the running scope."""
        if is_abstract(cls):
            # Only `init_beanie` asks an abstract base (for its empty index list).
            return super().get_pymongo_collection()
        return _installed().collection_for(cls)

    # -- Beanie's instance writes ------------------------------------------------------
    # `insert()`/`create()` and `replace()` are Beanie's own (its encoder, links, class id,
    # actions, saved state, bulk writers, revision); the guard below stamps the tenant and
    # the timestamps and makes a replacement conditional on the `__v` it carries. On a class
    # where Beanie's wrappers would do nothing, their bodies run without them (`bare_writes`).

    async def insert(
        self,
        *,
        link_rule: WriteRules = WriteRules.DO_NOTHING,
        session: AsyncClientSession | None = None,
        skip_actions: list[ActionDirections | str] | None = None,
    ) -> Self:
        """Beanie's `insert()`."""
        if bare_writes(type(self)):
            await insert_directly(self, session)
            return self
        return await super().insert(link_rule=link_rule, session=session, skip_actions=skip_actions)

    async def replace(
        self,
        ignore_revision: bool = False,
        session: AsyncClientSession | None = None,
        bulk_writer: BulkWriter | None = None,
        link_rule: WriteRules = WriteRules.DO_NOTHING,
        skip_actions: list[ActionDirections | str] | None = None,
    ) -> Self:
        """Beanie's `replace()`, only if nobody wrote the document since it was read.

        Raises:
            DocumentValidationError: the object has no id (a `ValueError`, as Beanie's).
            VersionConflict: the stored `__v` differs from this object's.
            NotFoundError: the document does not exist (or is soft-deleted).
        """
        if self.id is None:
            raise DocumentValidationError(
                f"{type(self).__name__} has no id: replace() writes over a stored document; "
                "insert() or save() store a new one",
                fields=("_id",),
                document_type=type(self),
            )

        write: Callable[[], Awaitable[Any]]
        if bulk_writer is None and bare_writes(type(self)):
            write = functools.partial(replace_directly, self, session)
        else:
            write = functools.partial(
                super().replace,
                ignore_revision=ignore_revision,
                session=session,
                bulk_writer=bulk_writer,
                link_rule=link_rule,
                skip_actions=skip_actions,
            )
        return await _installed().run_stored_write(
            self, write, session=session, deferred=bool(bulk_writer), force=ignore_revision
        )

    async def save(
        self,
        session: AsyncClientSession | None = None,
        link_rule: WriteRules = WriteRules.DO_NOTHING,
        ignore_revision: bool = False,
        bulk_writer: BulkWriter | None = None,
        **kwargs: Any,
    ) -> Self:
        """Insert a new document, or replace a stored one if its version is unchanged.

        Beanie's own `save()` is an unconditional upsert; this one is Beanie's `insert()`
        or `replace()` (their actions skipped: `save()` runs the SAVE ones, less any named
        in `skip_actions=`).
        """
        options: dict[str, Any] = {
            "session": session,
            "link_rule": link_rule,
            "ignore_revision": ignore_revision,
            "bulk_writer": bulk_writer,
        }
        if bulk_writer is None and bare_writes(type(self)):
            return await _installed().save_document(self, **options)  # `_save()`, inlined
        return await self._save_with_wrappers(options, **kwargs)

    async def _save(self, options: dict[str, Any], **_: Any) -> Self:
        """`save()`'s body (the rest of its keywords are the wrappers', `skip_actions`)."""
        await _installed().save_document(self, **options)
        return self

    # Beanie's wrappers of `save()`: self-validation, the SAVE actions, the saved state.
    _save_with_wrappers = validate_self_before(
        wrap_with_actions(EventTypes.SAVE)(save_state_after(_save))
    )


class AppendOnlyMixin(BaseModel):
    """Marks a collection append-only (events, audit logs).

    The guard refuses updates and deletes; only retention
    (`GuardedCollection.delete_older_than`) removes entries.
    """


class CreatedAtMixin(BaseModel):
    """`created_at`: when the layer first stored the document."""

    created_at: datetime = Field(default_factory=utcnow)


class TimestampMixin(CreatedAtMixin):
    """`created_at` and `updated_at`, both set by the layer on every write path."""

    updated_at: datetime = Field(default_factory=utcnow)


class VersionMixin(BaseModel):
    """`__v`: the optimistic-locking version every write path increments."""

    version: int = Field(default=0, alias="__v", ge=0)


class SoftDeleteMixin(BaseModel):
    """`deleted_at`/`deleted_by`: reads skip deleted documents unless asked for them."""

    deleted_at: datetime | None = None
    deleted_by: PydanticObjectId | str | None = None

    @property
    def is_deleted(self) -> bool:
        """True once soft-deleted."""
        return self.deleted_at is not None

    async def delete(
        self,
        session: AsyncClientSession | None = None,
        bulk_writer: Any = None,
        link_rule: Any = None,
        skip_actions: Any = None,
        *,
        deleted_by: PydanticObjectId | str | None = None,
        **_: Any,
    ) -> Any:
        """Beanie's `delete()` on a soft-deletable document soft-deletes it (see `restore`)."""
        storage = _installed()
        document_id = getattr(self, "id", None)
        await storage.set_deleted(
            storage.collection_for(type(self)),  # type: ignore[arg-type]
            document_id,
            deleted=True,
            deleted_by=deleted_by,
            session=session,
        )
        self.deleted_at = self.deleted_at or utcnow()
        self.deleted_by = deleted_by


class TenantMixin(BaseModel):
    """`tenant_id`: taken from the scope when not given; the guard rejects any other."""

    tenant_id: str = Field(default_factory=_tenant_from_scope)


class TenantDocument(TenantMixin, VersionMixin, TimestampMixin, BaseDocument):
    """Per-tenant chat data; lives where the tenant's placement says (shared, set, database)."""

    caas_abstract: ClassVar[bool] = True
    caas_area: ClassVar[Area] = Area.TENANT


class TenantOwnedDocument(TenantMixin, VersionMixin, TimestampMixin, BaseDocument):
    """A tenant's row in a platform-wide collection (api keys, invoices...).

    Filtered by the tenant scope; visible across tenants only in `system_scope()`.
    """

    caas_abstract: ClassVar[bool] = True


class PlatformDocument(VersionMixin, TimestampMixin, BaseDocument):
    """Platform data that belongs to no tenant (plans, platform admins...)."""

    caas_abstract: ClassVar[bool] = True
