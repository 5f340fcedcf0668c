"""Tenant id -> placement, read from the directory (`saas_clients`) with a short-TTL cache."""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING

from caas_data.documents.platform import RETIRED_CLIENT_STATUSES, SaasClient
from caas_data.driver_errors import translate_driver_errors
from caas_data.engine.clusters import HOME_CLUSTER
from caas_data.tenancy.tiers import Placement, Tier

if TYPE_CHECKING:
    from caas_data.layer import DataLayer

__all__ = ["TenantResolver"]


class TenantResolver:
    """Looks tenants up in the directory; positive answers are cached for `ttl` seconds.

    Unknown tenants are not cached, so a tenant provisioned by another process is usable at
    once; changes made through this layer invalidate the entry immediately.
    """

    def __init__(self, layer: DataLayer, *, ttl: float) -> None:
        self._layer = layer
        self._ttl = ttl
        self._cache: dict[str, tuple[float, Placement]] = {}
        self._inflight: dict[str, asyncio.Future[Placement | None]] = {}
        # Bumped by `invalidate`: a read that started before it must not refill the cache
        # (after a move's switch it would route to the old placement for a whole TTL).
        self._generation = 0

    def invalidate(self, tenant_id: str | None = None) -> None:
        """Forget one tenant (or all), e.g. after its tier or placement changed."""
        self._generation += 1
        if tenant_id is None:
            self._cache.clear()
        else:
            self._cache.pop(tenant_id, None)

    async def resolve_or_none(self, tenant_id: str) -> Placement | None:
        """The tenant's placement, or None when it is not (or no longer) in the directory."""
        cached = self._cache.get(tenant_id)
        if cached is not None and cached[0] > time.monotonic():
            return cached[1]
        pending = self._inflight.get(tenant_id)
        if pending is not None:  # many requests of a cold tenant share one read
            return await asyncio.shield(pending)
        future: asyncio.Future[Placement | None] = asyncio.get_running_loop().create_future()
        self._inflight[tenant_id] = future
        generation = self._generation
        try:
            placement = await self._load(tenant_id)
            future.set_result(placement)
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # mark retrieved: waiters re-raise it themselves
            raise
        finally:
            del self._inflight[tenant_id]
        if placement is not None and self._ttl > 0 and generation == self._generation:
            self._cache[tenant_id] = (time.monotonic() + self._ttl, placement)
        return placement

    async def _load(self, tenant_id: str) -> Placement | None:
        collection = self._layer.unguarded_platform_collection(
            SaasClient, why="the resolver reads placements from the platform's own directory"
        )
        with translate_driver_errors(tenant_id=tenant_id, document_type=SaasClient):
            raw = await collection.find_one(
                {"tenant_id": tenant_id}, {"tier": 1, "placement": 1, "status": 1}
            )
        # A deprovisioned tenant's tombstone routes nowhere, as an unknown tenant.
        if raw is None or raw.get("status") in RETIRED_CLIENT_STATUSES:
            return None
        placement = raw["placement"]
        return Placement(
            tenant_id=tenant_id,
            tier=Tier(raw["tier"]),
            database=placement["database"],
            collection_prefix=placement.get("collection_prefix", ""),
            cluster=placement.get("cluster", HOME_CLUSTER),
        )
