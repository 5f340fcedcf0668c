"""A guarded handle serves the scope it was made in, and only that one.

Handles are cached per (layer, tenant) and may be kept in a variable past their scope; every
call checks the running scope against the one the handle was made for, so a handle (or a
cursor) kept past its scope cannot serve another tenant.
"""

from __future__ import annotations

from typing import Any

from caas_data.errors import TenantContextMissing, TenantMismatch
from caas_data.tenancy.context import Scope, current_scope

__all__ = ["ScopeKey", "check_handle_scope", "scope_key"]

ScopeKey = tuple[object, str | None] | None
"""Who a handle serves: (layer, tenant id or None for a system scope), or None outside scopes."""


def scope_key(scope: Scope | None) -> ScopeKey:
    """The part of a scope a handle is bound to."""
    return None if scope is None else (scope.layer, scope.tenant_id)


def check_handle_scope(
    bound: ScopeKey, collection: str, *, tenant_id: str | None, document_type: type[Any] | None
) -> None:
    """Refuse a call on the handle of `collection` bound to `bound` outside that scope."""
    running = scope_key(current_scope())
    if running == bound:
        return
    made_for = "no scope" if bound is None else f"tenant {bound[1]!r}"
    if bound is not None and bound[1] is None:
        made_for = "the system scope"
    message = (
        f"this {collection} handle was made for {made_for}; take a new one "
        "in the running scope (handles and cursors serve only their own scope)"
    )
    if running is None:
        raise TenantContextMissing(message, tenant_id=tenant_id, document_type=document_type)
    raise TenantMismatch(message, tenant_id=running[1], document_type=document_type)
