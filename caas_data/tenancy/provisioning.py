"""Provisioning: record a tenant in the directory and create its collections and indexes."""

from __future__ import annotations

from typing import TYPE_CHECKING

from caas_data.documents.base import Area, utcnow
from caas_data.documents.platform import PlacementRecord, SaasClient
from caas_data.engine.indexes import ensure_collection
from caas_data.engine.registry import spec_of
from caas_data.errors import (
    DuplicateError,
    TenantAlreadyProvisioned,
    TenantNotFound,
    translate_driver_errors,
)
from caas_data.tenancy.ids import validate_tenant_id
from caas_data.tenancy.tiers import IsolationModel, Placement, Tier

if TYPE_CHECKING:
    from caas_data.engine.layer import DataLayer

__all__ = ["TenantService"]


class TenantService:
    """`layer.tenants`: the tenant directory and the collections behind each tenant."""

    def __init__(self, layer: DataLayer) -> None:
        self._layer = layer

    async def provision(
        self, tenant_id: str, *, tier: Tier | str, name: str | None = None
    ) -> SaasClient:
        """Create the tenant's collections and indexes, then record it in the directory.

        Provisioning again with the same tier only re-ensures collections and indexes.

        Raises:
            InvalidTenantId: the id is malformed or reserved.
            TenantAlreadyProvisioned: the tenant exists with another tier.
        """
        validate_tenant_id(tenant_id)
        tier = Tier(tier)
        existing = await self.get_or_none(tenant_id)
        if existing is not None and existing.tier is not tier:
            raise TenantAlreadyProvisioned(
                f"tenant exists with tier {existing.tier}, not {tier}", tenant_id=tenant_id
            )
        placement = (
            Placement(
                tenant_id,
                existing.tier,
                existing.placement.database,
                existing.placement.collection_prefix,
            )
            if existing is not None
            else Placement.for_tier(tenant_id, tier, database_prefix=self._layer.prefix)
        )
        # Collections first: a tenant visible in the directory always has its collections.
        await self.ensure_collections(placement)
        if existing is not None:
            return existing
        now = utcnow()
        client = SaasClient(
            tenant_id=tenant_id,
            name=name or tenant_id,
            tier=tier,
            placement=PlacementRecord(
                database=placement.database, collection_prefix=placement.collection_prefix
            ),
            created_at=now,
            updated_at=now,
        )
        collection = self._layer.platform_collection(SaasClient)
        try:
            with translate_driver_errors(tenant_id=tenant_id, document_type=SaasClient):
                await collection.insert_one(client.model_dump(by_alias=True, exclude={"id"}))
        except DuplicateError:
            # Another process provisioned it at the same moment: same answer as a re-run.
            return await self.provision(tenant_id, tier=tier, name=name)
        self._layer.resolver.invalidate(tenant_id)
        return await self.get(tenant_id)

    async def ensure_collections(self, placement: Placement) -> None:
        """Create every tenant collection at `placement` (idempotent)."""
        database = self._layer.database(placement.database)
        shared = placement.isolation is IsolationModel.SHARED
        for document_type in self._layer.registry.in_area(Area.TENANT):
            await ensure_collection(
                database,
                placement.collection_name(spec_of(document_type).name),
                document_type,
                pre_images=shared,
            )

    async def get_or_none(self, tenant_id: str) -> SaasClient | None:
        """The directory entry of a tenant, or None."""
        validate_tenant_id(tenant_id)
        collection = self._layer.platform_collection(SaasClient)
        with translate_driver_errors(tenant_id=tenant_id, document_type=SaasClient):
            raw = await collection.find_one({"tenant_id": tenant_id})
            return None if raw is None else SaasClient.model_validate(raw)

    async def get(self, tenant_id: str) -> SaasClient:
        """The directory entry of a tenant; `TenantNotFound` when there is none."""
        client = await self.get_or_none(tenant_id)
        if client is None:
            raise TenantNotFound("tenant is not provisioned", tenant_id=tenant_id)
        return client

    async def placement(self, tenant_id: str) -> Placement:
        """Where the tenant's data lives (through the resolver's cache)."""
        validate_tenant_id(tenant_id)
        placement = await self._layer.resolver.resolve_or_none(tenant_id)
        if placement is None:
            raise TenantNotFound("tenant is not provisioned", tenant_id=tenant_id)
        return placement
