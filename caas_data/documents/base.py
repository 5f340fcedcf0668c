"""Document bases whose collection is resolved per call, and the standard-field mixins.

The mixins carry the schema index's standard fields. They are plain pydantic models, not
Documents: Beanie skips initialising a class with two Document bases.

Beanie 2 sends every operation through `Document.get_pymongo_collection()`; `BaseDocument`
answers it from the running scope, so `User.find(...)`, `user.insert()` and `User.aggregate()`
reach the scope's tenant and nobody rebinds classes per request.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from enum import StrEnum
from typing import Any, ClassVar, Self

from beanie import Document, PydanticObjectId
from pydantic import BaseModel, ConfigDict, Field
from pydantic_core import PydanticUndefined
from pymongo.asynchronous.client_session import AsyncClientSession

from caas_data.clock import utcnow
from caas_data.errors import TenantContextMissing
from caas_data.tenancy.context import current_scope

__all__ = [
    "AppendOnlyMixin",
    "Area",
    "BaseDocument",
    "CreatedAtMixin",
    "PlatformDocument",
    "SoftDeleteMixin",
    "TenantAccess",
    "TenantDocument",
    "TenantMixin",
    "TenantOwnedDocument",
    "TimestampMixin",
    "VersionMixin",
    "utcnow",
]


def _tenant_from_scope() -> str:
    scope = current_scope()
    if scope is None or scope.tenant_id is None:
        raise TenantContextMissing(
            "tenant_id not given and no tenant scope is active: "
            "use `async with caas_data.tenant_scope(tenant_id)`"
        )
    return scope.tenant_id


_IMMUTABLE_DEFAULTS = (type(None), bool, int, float, str, bytes, tuple, frozenset)


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
        if attribute.default_factory is not None:
            if attribute.default_factory_takes_validated_data:
                return
            factories.append((name, attribute.default_factory))  # type: ignore[arg-type]
        elif attribute.default is not PydanticUndefined:
            if not isinstance(attribute.default, _IMMUTABLE_DEFAULTS):
                return
            statics[name] = attribute.default

    def model_post_init(self: BaseModel, context: Any, /) -> None:
        if getattr(self, "__pydantic_private__", None) is None:
            private = dict(statics)
            for name, factory in factories:
                private[name] = factory()
            object.__setattr__(self, "__pydantic_private__", private)

    model_post_init._caas_single_init = True  # type: ignore[attr-defined]
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

    schema_version: int = Field(default=1, description="Shape version, for migrations.")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        # Beanie's __init__ asks for the collection to fail early when Beanie is not set up;
        # ours depends on the scope, and building a document is no I/O, so skip that check.
        super(Document, self).__init__(*args, **kwargs)

    # This __init__ is pydantic's own: telling pydantic so keeps `model_validate` from calling
    # it, which would validate every stored document twice (issue 16).
    __init__.__pydantic_base_init__ = True  # type: ignore[attr-defined]

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        _single_private_init(cls)

    @classmethod
    def get_pymongo_collection(cls) -> Any:
        """The collection this call must use, resolved from the running scope."""
        from caas_data.engine.routing import collection_for

        return collection_for(cls)

    # -- Beanie's instance writes, made version-safe -------------------------------------

    async def insert(
        self,
        *,
        session: AsyncClientSession | None = None,
        **_: Any,
    ) -> Self:
        """Insert this document; timestamps, version and tenant are stamped by the layer."""
        from caas_data.engine.writes import insert_document

        await insert_document(self, session=session)
        return self

    async def create(self, session: AsyncClientSession | None = None) -> Self:
        """Same as `insert()`."""
        return await self.insert(session=session)

    async def replace(  # type: ignore[override]
        self,
        ignore_revision: bool = False,
        session: AsyncClientSession | None = None,
        **_: Any,
    ) -> Self:
        """Replace the stored document, only if nobody wrote it since it was read.

        Raises:
            VersionConflict: the stored `__v` differs from this object's.
            NotFoundError: the document does not exist (or is soft-deleted).
        """
        from caas_data.engine.writes import replace_document

        await replace_document(self, session=session, upsert=False)
        return self

    async def save(  # type: ignore[override]
        self,
        session: AsyncClientSession | None = None,
        **_: Any,
    ) -> Self:
        """Insert a new document, or replace a stored one if its version is unchanged."""
        from caas_data.engine.writes import replace_document

        await replace_document(self, session=session, upsert=True)
        return self


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
        from caas_data.engine.routing import collection_for
        from caas_data.engine.writes import set_deleted

        document_id = getattr(self, "id", None)
        await set_deleted(
            collection_for(type(self)),  # type: ignore[arg-type]
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

    caas_area: ClassVar[Area] = Area.TENANT


class TenantOwnedDocument(TenantMixin, VersionMixin, TimestampMixin, BaseDocument):
    """A tenant's row in a platform-wide collection (api keys, invoices...).

    Filtered by the tenant scope; visible across tenants only in `system_scope()`.
    """


class PlatformDocument(VersionMixin, TimestampMixin, BaseDocument):
    """Platform data that belongs to no tenant (plans, platform admins...)."""
