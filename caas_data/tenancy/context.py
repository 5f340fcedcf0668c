"""The tenant of the running request or task, held in a ContextVar.

A scope is entered with `async with tenant_scope("acme")` (or `system_scope()` for platform-wide
work) and reset with its token on exit, so concurrent tasks never see each other's tenant and
tasks created inside a scope inherit it. Nothing here mutates class-level state.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from contextvars import ContextVar, Token
from dataclasses import dataclass
from types import TracebackType
from typing import Protocol

from caas_data.errors import ConfigurationError, TenantMismatch, TenantNotFound
from caas_data.tenancy.ids import validate_tenant_id
from caas_data.tenancy.tiers import Placement

__all__ = [
    "PlacementResolver",
    "Scope",
    "ScopeLayer",
    "connected_layer",
    "current_scope",
    "current_tenant_id",
    "forget_layer",
    "register_layer",
    "system_scope",
    "tenant_scope",
]


class PlacementResolver(Protocol):
    """Where a tenant lives (None: not in the directory, or retired)."""

    async def resolve_or_none(self, tenant_id: str) -> Placement | None:
        """The tenant's placement, or None when it is unknown."""
        ...


class ScopeLayer(Protocol):
    """What a scope needs of the layer it runs on: the reader of placements.

    Tenancy sits below the layer (`caas_data.layer`), so it names this much of it, not the class.
    """

    @property
    def resolver(self) -> PlacementResolver:
        """The layer's tenant directory reader."""
        ...


_connected: list[ScopeLayer] = []


def register_layer(layer: ScopeLayer) -> None:
    """Make `layer` the one scopes use when none is named (the most recently connected)."""
    _connected.append(layer)


def forget_layer(layer: ScopeLayer) -> None:
    """Forget a closed layer; idempotent."""
    if layer in _connected:
        _connected.remove(layer)


def connected_layer() -> ScopeLayer | None:
    """The most recently connected layer still open, if any."""
    return _connected[-1] if _connected else None


@dataclass(frozen=True, slots=True)
class Scope:
    """What a repository call needs to know about who it runs for.

    `tenant_id` is None in a system scope. `placement` is resolved when the scope is entered;
    it is None when the tenant was not in the directory, which the first operation reports.
    """

    layer: ScopeLayer
    tenant_id: str | None
    placement: Placement | None = None

    @property
    def is_system(self) -> bool:
        """True for platform-wide work that is not bound to one tenant."""
        return self.tenant_id is None

    def require_placement(self) -> Placement:
        """The tenant's placement, or `TenantNotFound` for an unknown tenant."""
        if self.placement is None:
            raise TenantNotFound(
                f"tenant {self.tenant_id!r} is not provisioned", tenant_id=self.tenant_id
            )
        return self.placement


_current: ContextVar[Scope | None] = ContextVar("caas_data_scope", default=None)


def current_scope() -> Scope | None:
    """The scope of the running task, if any."""
    return _current.get()


def current_tenant_id() -> str | None:
    """The tenant of the running task, or None outside a tenant scope."""
    scope = _current.get()
    return scope.tenant_id if scope is not None else None


def _pick_layer(layer: ScopeLayer | None, outer: Scope | None) -> ScopeLayer:
    if layer is not None:
        return layer
    if outer is not None:
        return outer.layer
    found = connected_layer()
    if found is None:
        raise ConfigurationError("no connected layer: call `await caas_data.connect()` first")
    return found


class tenant_scope(AbstractAsyncContextManager[Scope]):
    """Run the block for one tenant: every repository and Beanie call inside is routed to it.

    `async with tenant_scope("acme") as scope:`. A class rather than an
    `@asynccontextmanager`: it is entered on every request, and the generator machinery
    (an async generator, its hooks, two `anext`) was a third of the scope's cost (issue 16).

    Raises:
        InvalidTenantId: the id is malformed or reserved (before any I/O).
        TenantMismatch: nested inside a scope of another tenant.
    """

    __slots__ = ("_layer", "_tenant_id", "_token")

    def __init__(self, tenant_id: str, *, layer: ScopeLayer | None = None) -> None:
        self._tenant_id = tenant_id
        self._layer = layer
        self._token: Token[Scope | None] | None = None

    async def __aenter__(self) -> Scope:
        if self._token is not None:
            raise ConfigurationError("a tenant_scope() is entered once; make a new one")
        tenant_id = validate_tenant_id(self._tenant_id)
        outer = _current.get()
        if outer is not None and outer.tenant_id is not None and outer.tenant_id != tenant_id:
            raise TenantMismatch(
                f"cannot enter tenant {tenant_id!r} inside the scope of {outer.tenant_id!r}",
                tenant_id=outer.tenant_id,
            )
        chosen = _pick_layer(self._layer, outer)
        if outer is not None and outer.tenant_id == tenant_id and outer.layer is chosen:
            placement = outer.placement
        else:
            placement = await chosen.resolver.resolve_or_none(tenant_id)
        scope = Scope(chosen, tenant_id, placement)
        self._token = _current.set(scope)
        return scope

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        token, self._token = self._token, None
        if token is not None:
            _current.reset(token)


@asynccontextmanager
async def system_scope(*, layer: ScopeLayer | None = None) -> AsyncIterator[Scope]:
    """Run the block as the platform itself, for platform-wide work.

    Tenant-owned platform rows of every tenant are visible; tenant databases are not (enter a
    `tenant_scope` for those).
    """
    outer = _current.get()
    if outer is not None and outer.tenant_id is not None:
        raise TenantMismatch(
            "cannot enter a system scope inside a tenant scope", tenant_id=outer.tenant_id
        )
    token = _current.set(Scope(_pick_layer(layer, outer), None))
    try:
        yield _current.get()  # type: ignore[misc]
    finally:
        _current.reset(token)
