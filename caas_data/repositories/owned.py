"""Scoping helpers for tenant-owned rows in the platform-wide databases.

Platform code often acts for one tenant from outside its scope (a webhook, a billing run, an
API-key lookup before the tenant is known). These helpers run such work in the right scope,
so the guard still stamps and filters `tenant_id`, instead of each repository filtering by hand.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

from caas_data.documents.analytics import PLATFORM_AUDIT_TENANT
from caas_data.errors import TenantContextMissing, TenantMismatch
from caas_data.tenancy.context import current_scope
from caas_data.tenancy.ids import validate_tenant_id

if TYPE_CHECKING:
    from caas_data.layer import DataLayer

__all__ = ["owned_scope", "scope_tenant"]


def scope_tenant(tenant_id: str | None) -> str:
    """The tenant a call acts for: `tenant_id` if given, else the running tenant scope's.

    Raises:
        InvalidTenantId: `tenant_id` is malformed or reserved.
        TenantMismatch: `tenant_id` names another tenant than the running scope.
        TenantContextMissing: neither is known (e.g. a system scope without `tenant_id=`).
    """
    scope = current_scope()
    running = scope.tenant_id if scope is not None else None
    if tenant_id is None:
        if running is None:
            raise TenantContextMissing(
                "no tenant: pass tenant_id= (required in a system scope) or run in a tenant scope"
            )
        return running
    validate_tenant_id(tenant_id)  # also refuses reserved ids, e.g. the platform's chain
    if running is not None and running != tenant_id:
        raise TenantMismatch(
            f"cannot act for tenant {tenant_id!r} inside the scope of {running!r}",
            tenant_id=running,
        )
    return tenant_id


@asynccontextmanager
async def owned_scope(layer: DataLayer, tenant_id: str | None = None) -> AsyncIterator[None]:
    """Run the block where `tenant_id`'s platform rows are reachable.

    - a real tenant: its tenant scope (entered unless already running; a system scope may
      hold one), so the guard filters and stamps its rows;
    - the platform's own audit chain (`PLATFORM_AUDIT_TENANT`): a system scope;
    - None: the running scope, or a system scope outside any (e.g. an API-key lookup).

    Raises:
        TenantMismatch: the running tenant scope belongs to another tenant.
    """
    scope = current_scope()
    if tenant_id is None:
        if scope is None:
            async with layer.system_scope():
                yield
        else:
            yield
        return
    if tenant_id == PLATFORM_AUDIT_TENANT:
        if scope is not None and scope.tenant_id is not None:
            raise TenantMismatch(
                "platform-wide records cannot be written from a tenant scope",
                tenant_id=scope.tenant_id,
            )
        if scope is None:
            async with layer.system_scope():
                yield
        else:
            yield
        return
    if scope is not None and scope.tenant_id == tenant_id:
        yield
        return
    scope_tenant(tenant_id)  # raises on another tenant's scope
    async with layer.tenant_scope(tenant_id):
        yield
