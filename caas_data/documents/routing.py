"""Per-call routing: which physical collection a document class means in the running scope."""

from __future__ import annotations

from typing import Any, Protocol, cast

from pymongo.asynchronous.collection import AsyncCollection

from caas_data.documents.base import Area, BaseDocument, TenantAccess
from caas_data.documents.registry import CollectionSpec, DocumentRegistry, spec_of
from caas_data.engine.clusters import HOME_CLUSTER
from caas_data.errors import (
    ConfigurationError,
    TenantContextMissing,
    TenantMismatch,
    UnsafeOperation,
)
from caas_data.tenancy.context import Scope, connected_layer, current_scope
from caas_data.tenancy.field_encryption import FieldCipher
from caas_data.tenancy.guard import GuardedCollection, scope_key
from caas_data.tenancy.pipeline_rules import LookupTarget
from caas_data.tenancy.rules import CollectionRules
from caas_data.tenancy.tiers import IsolationModel, Placement

__all__ = ["RoutingLayer", "collection_for", "route"]


class RoutingLayer(Protocol):
    """What routing needs of the layer: its documents, ciphers, database names, raw handles.

    Routing sits below the layer (`caas_data.layer`), so it names this much of it, not the class.
    """

    registry: DocumentRegistry
    _routes: dict[tuple[Any, ...], GuardedCollection]

    def field_cipher(self, document_type: type[BaseDocument], tenant_id: str) -> FieldCipher | None:
        """What encrypts the class's declared fields for the tenant, if anything."""
        ...

    def database_name(self, area: Area) -> str:
        """The database of a non-tenant area."""
        ...

    def _handle(
        self, database: str, name: str, cluster: str = ...
    ) -> AsyncCollection[dict[str, Any]]:
        """The driver's collection, only ever wrapped in a guard."""
        ...


def _rules(spec: CollectionSpec, tenant_id: str | None) -> CollectionRules:
    """What the guard enforces on `spec`'s collection for a scope of `tenant_id`."""
    tenant_keyed, read_only = spec.tenant_keyed, False
    if not spec.tenant_keyed and tenant_id is not None:
        # Platform rows seen from a tenant scope: read-only, and only what the class allows.
        if spec.tenant_access is TenantAccess.NONE:
            raise TenantMismatch(
                f"{spec.name} is platform data: not readable from a tenant scope",
                tenant_id=tenant_id,
            )
        tenant_keyed = spec.tenant_access is TenantAccess.OWN_ROW
        read_only = True
    return CollectionRules(
        tenant_id=tenant_id if tenant_keyed else None,
        versioned=spec.versioned,
        timestamps=spec.timestamps,
        soft_delete=spec.soft_delete,
        tenant_keyed=tenant_keyed,
        append_only=spec.append_only,
        read_only=read_only,
        protected=spec.protected,
        writable_when=spec.writable_when,
    )


def _missing_scope(document_type: type[Any], scope: Scope | None) -> TenantContextMissing:
    name = document_type.__name__
    if scope is not None:  # a system scope: it sees platform collections only
        return TenantContextMissing(
            f"{name} is tenant data, which a system scope cannot read (it sees platform "
            "collections, including every tenant's rows there, never tenant data): enter the "
            f"tenant's own scope, `async with caas_data.tenant_scope(tenant_id)` (allowed inside "
            "this system scope), once per tenant for platform-wide work",
            document_type=document_type,
        )
    return TenantContextMissing(
        f"{name} is tenant data and no scope is running: use "
        "`async with caas_data.tenant_scope(tenant_id)` (or `system_scope()` for "
        "platform-wide work on tenant-owned platform rows)",
        document_type=document_type,
    )


_OUTSIDE_SCOPES = object()
_MAX_ROUTES = 20_000


def route(
    layer: RoutingLayer,
    document_type: type[BaseDocument],
    scope: Scope | None,
    *,
    include_deleted: bool = False,
) -> GuardedCollection:
    """The guarded collection of `document_type` for `scope` (None: outside any scope).

    Handles are cached per layer by what they depend on: the class, the scope's tenant (or
    system scope, or none) and its placement, and `include_deleted`. A handle is bound to
    its (layer, tenant) scope and checks it on every call, so one handle serves every request
    of that tenant; a new placement (tier change, re-resolution) is a new key. Building one
    (rules, closure, proxy) cost about 8 us a call (issue 16).
    """
    if scope is None:
        key: tuple[Any, ...] = (document_type, include_deleted, _OUTSIDE_SCOPES)
    else:
        key = (document_type, include_deleted, scope.tenant_id, scope.placement)
    routes = layer._routes
    handle = routes.get(key)
    if handle is None:
        handle = _route(layer, document_type, scope, include_deleted=include_deleted)
        if len(routes) >= _MAX_ROUTES:  # many tenants: keep the cache bounded
            routes.clear()
        routes[key] = handle
    return handle


def _route(
    layer: RoutingLayer,
    document_type: type[BaseDocument],
    scope: Scope | None,
    *,
    include_deleted: bool,
) -> GuardedCollection:
    layer.registry.require(document_type)
    spec = spec_of(document_type)
    tenant_id = scope.tenant_id if scope is not None else None
    if spec.area is Area.TENANT:
        if tenant_id is None:
            raise _missing_scope(document_type, scope)
        assert scope is not None
        placement = scope.require_placement()
        database = placement.database
        cluster = placement.cluster
        physical = placement.collection_name(spec.name)
        shared = placement.isolation is IsolationModel.SHARED

        def resolve(name: str) -> LookupTarget:
            return _tenant_target(layer, placement, name)

        def reference_name(name: str) -> str:
            return _reference_name(layer, placement, name)

        cipher = layer.field_cipher(document_type, tenant_id)

    else:
        if spec.tenant_keyed and scope is None:
            raise _missing_scope(document_type, scope)
        database = layer.database_name(spec.area)
        cluster = HOME_CLUSTER
        physical = spec.name
        shared = True
        area = spec.area

        def resolve(name: str) -> LookupTarget:
            return _area_target(layer, area, tenant_id, name)

        def reference_name(name: str) -> str:
            return _reference_name(layer, None, name)

        cipher = None  # encrypted fields are tenant data only (the registry checks it)

    return GuardedCollection(
        layer._handle(database, physical, cluster),
        _rules(spec, tenant_id),
        resolve=resolve,
        reference_name=reference_name,
        shared=shared,
        scope=scope_key(scope),
        document_type=document_type,
        include_deleted=include_deleted,
        cipher=cipher,
        logical_name=spec.name,
    )


def _unknown(name: str, where: str) -> UnsafeOperation:
    return UnsafeOperation(f"pipeline names collection {name!r}, unknown in {where}")


def _tenant_logical(layer: RoutingLayer, placement: Placement, name: str) -> str | None:
    """The logical tenant collection `name` means: itself, or its own physical name.

    Only this placement's own prefix is taken off, so another tenant's physical name is
    unknown here.
    """
    if layer.registry.get(Area.TENANT, name) is not None:
        return name
    prefix = placement.collection_prefix
    if prefix and name.startswith(prefix):
        logical = name[len(prefix) :]
        if layer.registry.get(Area.TENANT, logical) is not None:
            return logical
    return None


def _tenant_target(layer: RoutingLayer, placement: Placement, name: str) -> LookupTarget:
    # Beanie names a join by the name it was handed: logical, or (older) the physical one.
    logical = _tenant_logical(layer, placement, name)
    if logical is None:
        raise _unknown(name, "the tenant collections")
    target = layer.registry.get(Area.TENANT, logical)
    assert target is not None
    return LookupTarget(
        placement.collection_name(logical), _rules(spec_of(target), placement.tenant_id)
    )


def _area_target(layer: RoutingLayer, area: Area, tenant_id: str | None, name: str) -> LookupTarget:
    target = layer.registry.get(area, name)
    if target is None:
        raise _unknown(name, f"the {area} collections")
    return LookupTarget(name, _rules(spec_of(target), tenant_id))


def _reference_name(layer: RoutingLayer, placement: Placement | None, name: str) -> str:
    """The logical collection a reference (DBRef) names, or refused.

    A tenant collection by its logical name or the scope's own physical one, or a platform
    collection (one name for every tenant). Another tenant's physical name, or a name the
    layer does not know, is refused: a stored reference never points outside the tenant.
    """
    if placement is not None:
        logical = _tenant_logical(layer, placement, name)
        if logical is not None:
            return logical
    if any(layer.registry.get(area, name) is not None for area in Area):
        return name
    raise UnsafeOperation(
        f"a reference (DBRef) names collection {name!r}, not a collection of this layer "
        "the scope may name (its own tenant's, by logical name, or a platform one)"
    )


def collection_for(document_type: type[BaseDocument]) -> GuardedCollection:
    """Beanie's `get_pymongo_collection()`, answered from the running scope."""
    scope = current_scope()
    # A scope's layer is always a full layer: tenancy types it by the little it needs itself.
    if scope is not None:
        layer = cast(RoutingLayer, scope.layer)
    else:
        found = cast(RoutingLayer | None, connected_layer())
        if found is None:
            raise ConfigurationError(
                "no connected layer: call `await caas_data.connect()` first",
                document_type=document_type,
            )
        layer = found
    return route(layer, document_type, scope)
