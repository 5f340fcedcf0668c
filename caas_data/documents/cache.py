"""Beanie's query cache (`Settings.use_cache`), keyed by the scope as well as the query.

Beanie keys its cache by the query alone: `User.find(User.name == "x")` in tenant A's scope
would answer tenant B's identical query from A's rows. Every key here carries the running
scope (layer, tenant, placement), so an entry serves only the scope that stored it.
"""

from __future__ import annotations

from typing import Any

from beanie.odm.cache import LRUCache

from caas_data.tenancy.context import current_scope

__all__ = ["TenantKeyedCache", "key_cache_by_tenant"]


def _scope_part() -> tuple[Any, ...]:
    scope = current_scope()
    if scope is None:
        return ("no scope",)
    return (id(scope.layer), scope.tenant_id, scope.placement)


class TenantKeyedCache(LRUCache):
    """Beanie's LRU cache, one key space per scope."""

    def get(self, key: Any) -> Any:
        """The value this scope stored under `key`, if fresh."""
        return super().get((_scope_part(), key))

    def set(self, key: Any, value: Any) -> None:
        """Store `value` under `key` for this scope only."""
        super().set((_scope_part(), key), value)


def key_cache_by_tenant(document_type: type[Any]) -> None:
    """Replace the cache `init_beanie` gave `document_type` (if any) with a scope-keyed one."""
    cache = getattr(document_type, "_cache", None)
    if cache is not None and not isinstance(cache, TenantKeyedCache):
        document_type._cache = TenantKeyedCache(cache.capacity, cache.expiration_time)
