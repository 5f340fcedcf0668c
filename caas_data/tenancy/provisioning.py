"""Provisioning: record a tenant in the directory and create its collections and indexes."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from caas_data.documents.base import Area, utcnow
from caas_data.documents.platform import PlacementRecord, SaasClient
from caas_data.engine.registry import spec_of
from caas_data.errors import (
    DuplicateError,
    TenantAlreadyProvisioned,
    TenantMismatch,
    TenantNotFound,
    UnsafeOperation,
    translate_driver_errors,
)
from caas_data.tenancy.context import current_scope
from caas_data.tenancy.ids import validate_tenant_id
from caas_data.tenancy.tiers import IsolationModel, Placement, Tier

if TYPE_CHECKING:
    from caas_data.engine.layer import DataLayer

__all__ = ["TenantService"]


def _require_operator_scope(operation: str, tenant_id: str) -> None:
    """Refuse a lifecycle write from inside a tenant scope, before any I/O.

    Provisioning and deprovisioning act on a tenant from the outside: run in a tenant's scope
    they would mix its routing with another tenant's data (or act on itself as a tenant).

    Raises:
        TenantMismatch: a tenant scope is running, the tenant's own or another's.
    """
    scope = current_scope()
    if scope is None or scope.tenant_id is None:
        return
    whose = "its own scope" if scope.tenant_id == tenant_id else f"the scope of {scope.tenant_id!r}"
    raise TenantMismatch(
        f"{operation} of tenant {tenant_id!r} is an operator operation, refused inside {whose}: "
        "run it outside any tenant scope or in `system_scope()`",
        tenant_id=scope.tenant_id,
    )


class TenantService:
    """`layer.tenants`: the tenant directory and the collections behind each tenant.

    Every method that writes is an operator operation: it runs outside any scope or in a
    `system_scope()`, and raises `TenantMismatch` inside a tenant scope.
    """

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
            TenantMismatch: called inside a tenant scope.
        """
        validate_tenant_id(tenant_id)
        tier = Tier(tier)
        _require_operator_scope("provision", tenant_id)
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
        """Create every tenant collection at `placement` (idempotent).

        Raises:
            TenantMismatch: called inside a tenant scope.
        """
        _require_operator_scope("ensure_collections", placement.tenant_id)
        shared = placement.isolation is IsolationModel.SHARED
        for document_type in self._layer.registry.in_area(Area.TENANT):
            await self._layer.ensure_collection(
                placement.database,
                placement.collection_name(spec_of(document_type).name),
                document_type,
                pre_images=shared,
            )

    async def deprovision(self, tenant_id: str, *, actor: str | None = None) -> bool:
        """Remove a tenant's data and its directory entry (offboarding, test clean-up).

        Deletes everything at the tenant's placement: its database (database model), its
        collection set (collection model) or its rows of the shared collections (shared
        model; the collections stay, other tenants live in them). The directory entry goes
        last, so an interrupted run can simply be repeated. Rows the tenant owns in the
        platform, billing and analytics collections (invoices, usage, the audit trail) are
        the platform's records and stay; the audit trail gets a `tenant.deprovisioned` entry.
        Returns False when the tenant was not provisioned.

        Raises:
            InvalidTenantId: the id is malformed or reserved.
            UnsafeOperation: the directory points the tenant at a place it cannot own.
            TenantMismatch: called inside a tenant scope.
        """
        validate_tenant_id(tenant_id)
        _require_operator_scope("deprovision", tenant_id)
        client = await self.get_or_none(tenant_id)
        if client is None:
            return False
        placement = Placement(
            tenant_id,
            client.tier,
            client.placement.database,
            client.placement.collection_prefix,
        )
        self._check_owned(placement)
        layer = self._layer
        names = [
            placement.collection_name(spec_of(d).name) for d in layer.registry.in_area(Area.TENANT)
        ]
        database = layer.database(placement.database)
        with translate_driver_errors(tenant_id=tenant_id):
            if placement.isolation is IsolationModel.DATABASE:
                await layer.client.drop_database(placement.database)
                layer.forget_ensured(placement.database)
            elif placement.isolation is IsolationModel.COLLECTION_SET:
                await asyncio.gather(*(database.drop_collection(name) for name in names))
                layer.forget_ensured(placement.database, names)
            else:
                await asyncio.gather(
                    *(database[name].delete_many({"tenant_id": tenant_id}) for name in names)
                )
        from caas_data.repositories.audit import AuditLogRepository

        await layer.repo(AuditLogRepository).append(
            "tenant.deprovisioned",
            tenant_id=tenant_id,
            actor=actor,
            target_type="tenant",
            target_id=tenant_id,
            details={"tier": client.tier.value, "database": placement.database},
        )
        with translate_driver_errors(tenant_id=tenant_id, document_type=SaasClient):
            await layer.platform_collection(SaasClient).delete_one({"tenant_id": tenant_id})
        layer.resolver.invalidate(tenant_id)
        return True

    def _check_owned(self, placement: Placement) -> None:
        """Refuse to delete what a tenant cannot own, whatever the directory says."""
        prefix = self._layer.prefix
        shared = f"{prefix}_shared"
        if placement.isolation is IsolationModel.DATABASE:
            owned = placement.database != shared and placement.database.endswith(
                f"_{placement.tenant_id}"
            )
        elif placement.isolation is IsolationModel.COLLECTION_SET:
            owned = placement.collection_prefix == f"{placement.tenant_id}_"
        else:
            owned = placement.collection_prefix == ""
        if not owned:
            raise UnsafeOperation(
                f"directory places the tenant at {placement.database!r}/"
                f"{placement.collection_prefix!r}: not a place it owns, refusing to delete",
                tenant_id=placement.tenant_id,
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
