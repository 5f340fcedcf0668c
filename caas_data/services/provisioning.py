"""Provisioning: record a tenant in the directory and create its collections and indexes.

The lifecycle rules:

- Provision and deprovision are operator operations: they run outside any scope or in a
  `system_scope()`, never in a tenant scope (`TenantMismatch`, before any I/O).
- Deprovision retires the entry first (status `deprovisioning`: the resolver stops routing the
  tenant), deletes its credentials (API keys, applications), then its data at its placement
  (end-user sessions included), audits, and leaves the entry as a `deprovisioned` tombstone.
  An interrupted run is finished by calling it again.
- The platform's records of the tenant (invoices, usage, analytics, the audit trail...) stay.
  So an id that is not live but still owns rows anywhere (its tombstone, those records, data
  left at any placement) is not handed to a new tenant: `provision` raises `TenantIdRetained`
  naming them, unless told `reuse_id="purge_retained"`, which removes them first (audited in
  the platform's chain).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from caas_data.documents.analytics import PLATFORM_AUDIT_TENANT
from caas_data.documents.base import Area, BaseDocument, utcnow
from caas_data.documents.platform import (
    RETIRED_CLIENT_STATUSES,
    ApiKey,
    Application,
    ClientStatus,
    PlacementRecord,
    SaasClient,
)
from caas_data.documents.registry import spec_of
from caas_data.driver_errors import translate_driver_errors
from caas_data.engine.clusters import ClusterUsage
from caas_data.errors import (
    DocumentValidationError,
    DuplicateError,
    OperationRefused,
    TenantAlreadyProvisioned,
    TenantIdRetained,
    TenantMismatch,
    TenantNotFound,
    UnsafeOperation,
)
from caas_data.repositories.analytics.audit import AuditLogRepository
from caas_data.services.capacity import choose_cluster, cluster_report
from caas_data.services.moves import MoveReport, PendingMoves, ProgressHook, TenantMover
from caas_data.tenancy.context import current_scope
from caas_data.tenancy.ids import validate_tenant_id
from caas_data.tenancy.tiers import IsolationModel, Placement, Tier

if TYPE_CHECKING:
    from caas_data.layer import DataLayer

__all__ = ["ReuseId", "TenantService", "require_operator_scope"]

ReuseId = Literal["refuse", "purge_retained"]
"""What `provision` does with the rows a former tenant of the same id left."""

_REUSE_CHOICES: tuple[ReuseId, ...] = ("refuse", "purge_retained")

_CREDENTIALS: tuple[type[BaseDocument], ...] = (ApiKey, Application)
"""Platform rows that let someone act as the tenant: deleted before its data."""

_RETAINED_AREAS = (Area.PLATFORM, Area.BILLING, Area.ANALYTICS)

# One tier per isolation model: the placements an id could have had, by convention.
_MODEL_TIERS = (Tier.FREE, Tier.PRO, Tier.ENTERPRISE)


def require_operator_scope(operation: str, tenant_id: str) -> None:
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


def _named(key: str, tenant_id: str, label: str | None) -> str:
    """`key` with the tenant id replaced by `label` (a collection-set name holds the id)."""
    return key if label is None else key.replace(tenant_id, label)


@dataclass(frozen=True, slots=True)
class _Place:
    """Rows an id may own in one collection: those matching `filter`, or all (`whole`)."""

    database: str
    collection: str
    filter: dict[str, Any]
    whole: bool = False

    @property
    def key(self) -> str:
        return f"{self.database}.{self.collection}"


class TenantService:
    """`layer.tenants`: the tenant directory and the collections behind each tenant.

    Every method that writes is an operator operation: it runs outside any scope or in a
    `system_scope()`, and raises `TenantMismatch` inside a tenant scope.
    """

    def __init__(self, layer: DataLayer) -> None:
        self._layer = layer
        self._mover = TenantMover(layer)

    # -- moves and capacity (caas_data.services.moves, caas_data.services.capacity) ------

    async def move(
        self,
        tenant_id: str,
        *,
        to: Tier | str | None = None,
        cluster: str | None = None,
        actor: str | None = None,
        batch_size: int = 500,
        fence_grace: float | None = None,
        on_progress: ProgressHook | None = None,
    ) -> MoveReport:
        """Move a tenant online to the placement of tier `to` (and/or to another cluster).

        Copies in batches, catches up from change streams, fences the old placement's
        writes (`TenantMoving` while fenced), verifies count and checksum per collection,
        switches the directory, then removes the old copy; `fence_grace` (default: the
        resolver's TTL + 1 s) is how long the emptied old placement stays fenced before it is
        dropped. Called for a tenant whose move was interrupted, it finishes that move.

        Raises:
            TenantNotFound: the tenant is not live.
            UnsafeOperation: another move of the tenant is in progress, or the directory
                changed under the move.
            MoveVerificationFailed: a copy did not match; nothing switched.
            CapacityExhausted: no cluster has room for the tenant.
            TenantMismatch: called inside a tenant scope.
        """
        validate_tenant_id(tenant_id)
        require_operator_scope("move", tenant_id)
        return await self._mover.move(
            tenant_id,
            to=None if to is None else Tier(to),
            cluster=cluster,
            actor=actor,
            batch_size=batch_size,
            fence_grace=fence_grace,
            on_progress=on_progress,
        )

    async def move_pending(
        self,
        *,
        actor: str | None = None,
        fence_grace: float | None = None,
        batch_size: int = 500,
        on_progress: ProgressHook | None = None,
    ) -> PendingMoves:
        """Finish interrupted moves and carry out every `request_tier_change()` (operator job).

        Returns one report per move; `nothing_to_do` when nothing was pending.

        Raises:
            TenantMismatch: called inside a tenant scope.
        """
        require_operator_scope("move_pending", "*")
        return await self._mover.move_pending(
            actor=actor, fence_grace=fence_grace, batch_size=batch_size, on_progress=on_progress
        )

    async def cluster_report(self) -> list[ClusterUsage]:
        """Per cluster: namespaces (collections + indexes) used, the budget, the tenants.

        Raises:
            TenantMismatch: called inside a tenant scope.
        """
        require_operator_scope("cluster_report", "*")
        return await cluster_report(self._layer)

    async def provision(
        self,
        tenant_id: str,
        *,
        tier: Tier | str,
        name: str | None = None,
        reuse_id: ReuseId = "refuse",
        actor: str | None = None,
        cluster: str | None = None,
    ) -> SaasClient:
        """Create the tenant's collections and indexes, then record it in the directory.

        Pro and Enterprise tenants go to `cluster`, or else to the connected cluster with the
        most namespace room (`CapacityExhausted` when none has room); shared tenants live on
        the home cluster.

        Provisioning a live tenant again with the same tier only re-ensures collections and
        indexes. An id whose former tenant left rows (see `retained_rows`) is refused unless
        `reuse_id="purge_retained"`: those rows are then deleted first, and the purge is
        audited in the platform's chain.

        Raises:
            InvalidTenantId: the id is malformed or reserved.
            TenantAlreadyProvisioned: the tenant exists with another tier.
            TenantIdRetained: the id is not live but still owns rows (`retained` names them).
            TenantMismatch: called inside a tenant scope.
        """
        validate_tenant_id(tenant_id)
        tier = Tier(tier)
        if reuse_id not in _REUSE_CHOICES:
            raise DocumentValidationError(
                f"reuse_id must be one of {', '.join(_REUSE_CHOICES)}, not {reuse_id!r}",
                fields=("reuse_id",),
                tenant_id=tenant_id,
            )
        require_operator_scope("provision", tenant_id)
        existing = await self.get_or_none(tenant_id)
        if existing is not None:
            if existing.tier is not tier:
                raise TenantAlreadyProvisioned(
                    f"tenant exists with tier {existing.tier}, not {tier}", tenant_id=tenant_id
                )
            await self.ensure_collections(self._placement_of(existing))
            return existing
        retained = await self.retained_rows(tenant_id)
        if retained:
            if reuse_id != "purge_retained":
                listed = ", ".join(f"{key} ({rows})" for key, rows in sorted(retained.items()))
                raise TenantIdRetained(
                    f"tenant id was used before and still owns rows: {listed}; "
                    "pass reuse_id='purge_retained' to delete them, or choose another id",
                    retained=retained,
                    tenant_id=tenant_id,
                )
            await self._purge_retained(tenant_id, actor=actor)
        if cluster is None:
            cluster = await choose_cluster(self._layer, tenant_id, tier)
        placement = Placement.for_tier(
            tenant_id, tier, database_prefix=self._layer.prefix, cluster=cluster
        )
        # Collections first: a tenant visible in the directory always has its collections.
        await self.ensure_collections(placement)
        now = utcnow()
        client = SaasClient(
            tenant_id=tenant_id,
            name=name or tenant_id,
            tier=tier,
            placement=PlacementRecord(
                database=placement.database,
                collection_prefix=placement.collection_prefix,
                cluster=placement.cluster,
            ),
            created_at=now,
            updated_at=now,
        )
        try:
            with translate_driver_errors(tenant_id=tenant_id, document_type=SaasClient):
                await self._layer.unguarded_platform_collection(
                    SaasClient,
                    why="the directory is written by the operator, outside tenant scopes",
                ).insert_one(client.model_dump(by_alias=True, exclude={"id"}))
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
        require_operator_scope("ensure_collections", placement.tenant_id)
        shared = placement.isolation is IsolationModel.SHARED
        for document_type in self._layer.registry.in_area(Area.TENANT):
            await self._layer.ensure_collection(
                placement.database,
                placement.collection_name(spec_of(document_type).name),
                document_type,
                pre_images=shared,
                cluster=placement.cluster,
            )

    async def deprovision(self, tenant_id: str, *, actor: str | None = None) -> bool:
        """Retire a tenant: revoke its credentials, remove its data, keep a tombstone.

        In order: the directory entry becomes `deprovisioning` (the resolver stops routing the
        tenant); its API keys and applications are deleted (no old key authenticates again);
        everything at its placement is deleted: its database (database model), its collection
        set (collection model) or its rows of the shared collections (shared model; the
        collections stay, other tenants live in them); its data key is erased when the layer
        encrypts fields (crypto-shredding every other copy); the audit trail gets a
        `tenant.deprovisioned` entry; the entry becomes a `deprovisioned` tombstone. Rows the
        tenant owns in the platform, billing and analytics collections (invoices, usage, the
        audit trail) are the platform's records and stay. An interrupted run is finished by
        calling it again. Returns False when there is nothing to do (unknown or already
        deprovisioned).

        Raises:
            InvalidTenantId: the id is malformed or reserved.
            UnsafeOperation: the directory points the tenant at a place it cannot own.
            TenantMismatch: called inside a tenant scope.
        """
        validate_tenant_id(tenant_id)
        require_operator_scope("deprovision", tenant_id)
        client = await self.get_or_none(tenant_id, include_retired=True)
        if client is None or client.status is ClientStatus.DEPROVISIONED:
            return False
        placement = self._placement_of(client)
        self._check_owned(placement)
        layer = self._layer
        await self._set_status(tenant_id, ClientStatus.DEPROVISIONING)
        revoked = await self._delete_credentials(tenant_id)
        names = [
            placement.collection_name(spec_of(d).name) for d in layer.registry.in_area(Area.TENANT)
        ]
        database = layer.unguarded_database(
            placement.database,
            why="deprovisioning deletes everything at a placement `_check_owned` accepted",
            cluster=placement.cluster,
        )
        with translate_driver_errors(tenant_id=tenant_id):
            if placement.isolation is IsolationModel.DATABASE:
                await layer.clusters.client(placement.cluster).drop_database(placement.database)
                layer.forget_ensured(placement.database, cluster=placement.cluster)
            elif placement.isolation is IsolationModel.COLLECTION_SET:
                await asyncio.gather(*(database.drop_collection(name) for name in names))
                layer.forget_ensured(placement.database, names, cluster=placement.cluster)
            else:
                await asyncio.gather(
                    *(database[name].delete_many({"tenant_id": tenant_id}) for name in names)
                )
        # Crypto-shredding: copies of its encrypted fields elsewhere (backups) die with the key.
        keys_erased = await layer.encryption.erase_key(tenant_id) if layer.encrypts_fields else 0
        await layer.repo(AuditLogRepository).append(
            "tenant.deprovisioned",
            tenant_id=tenant_id,
            actor=actor,
            target_type="tenant",
            target_id=tenant_id,
            details={
                "tier": client.tier.value,
                "database": placement.database,
                "credentials_deleted": revoked,
                "data_keys_erased": keys_erased,
            },
        )
        await self._set_status(tenant_id, ClientStatus.DEPROVISIONED)
        return True

    async def retained_rows(self, tenant_id: str) -> dict[str, int]:
        """What an id owns besides a live directory entry: `database.collection` -> rows.

        Its tombstone, its rows in the platform, billing and analytics collections, and rows
        left at any placement it could have had. Empty for an id never used; for a live
        tenant, its records and data.

        Raises:
            TenantMismatch: called inside a tenant scope.
        """
        validate_tenant_id(tenant_id)
        require_operator_scope("retained_rows", tenant_id)
        places = await self._places(tenant_id)
        counts = await asyncio.gather(*(self._count(place) for place in places))
        return {place.key: rows for place, rows in zip(places, counts, strict=True) if rows}

    async def _places(self, tenant_id: str) -> list[_Place]:
        """Every collection where rows of `tenant_id` can be, the directory's tombstone last."""
        layer = self._layer
        places = [
            _Place(layer.database_name(area), spec_of(d).name, {"tenant_id": tenant_id})
            for area in _RETAINED_AREAS
            for d in layer.registry.in_area(area)
            if spec_of(d).tenant_keyed
        ]
        logical = [spec_of(d).name for d in layer.registry.in_area(Area.TENANT)]
        for tier in _MODEL_TIERS:
            placement = Placement.for_tier(tenant_id, tier, database_prefix=layer.prefix)
            if placement.isolation is IsolationModel.SHARED:
                places += [
                    _Place(placement.database, name, {"tenant_id": tenant_id}) for name in logical
                ]
                continue
            wanted = {placement.collection_name(name) for name in logical}
            with translate_driver_errors(tenant_id=tenant_id):
                existing = await layer.unguarded_database(
                    placement.database, why="which of a placement's collections exist"
                ).list_collection_names()
            places += [
                _Place(placement.database, name, {}, whole=True)
                for name in sorted(wanted.intersection(existing))
            ]
        retired = {"tenant_id": tenant_id, "status": {"$in": sorted(RETIRED_CLIENT_STATUSES)}}
        spec = spec_of(SaasClient)
        places.append(_Place(layer.database_name(spec.area), spec.name, retired))
        return places

    async def _count(self, place: _Place) -> int:
        with translate_driver_errors():
            collection = self._layer.unguarded_collection(
                place.database,
                place.collection,
                why="an operator's census of one id's rows in every area",
            )
            # Most places hold nothing: an indexed point read answers those faster than a count.
            if await collection.find_one(place.filter, {"_id": 1}) is None:
                return 0
            return await collection.count_documents(place.filter)

    async def purge_retained(
        self, tenant_id: str, *, actor: str | None = None, label: str | None = None
    ) -> dict[str, int]:
        """Delete every row a retired id still owns (see `retained_rows`); what it deleted.

        `label` names the id in the platform's audit entry instead of the id itself (erasure:
        the record must not hold what was erased).

        Raises:
            OperationRefused: the tenant is live (deprovision it first).
            TenantMismatch: called inside a tenant scope.
        """
        validate_tenant_id(tenant_id)
        require_operator_scope("purge_retained", tenant_id)
        if await self.get_or_none(tenant_id) is not None:
            raise OperationRefused(
                "tenant is live: deprovision it before purging its rows", tenant_id=tenant_id
            )
        return await self._purge_retained(tenant_id, actor=actor, label=label)

    async def _purge_retained(
        self, tenant_id: str, *, actor: str | None, label: str | None = None
    ) -> dict[str, int]:
        """Delete every row a former tenant of `tenant_id` left, its tombstone last.

        The purge is audited in the platform's chain before anything goes: the id's own
        chain is among what is deleted.
        """
        layer = self._layer
        places = await self._places(tenant_id)
        counts = await asyncio.gather(*(self._count(place) for place in places))
        found = [(place, rows) for place, rows in zip(places, counts, strict=True) if rows]
        await layer.repo(AuditLogRepository).append(
            "tenant.retained_purged",
            tenant_id=PLATFORM_AUDIT_TENANT,
            actor=actor,
            target_type="tenant",
            target_id=label or tenant_id,
            details={
                "rows": [
                    {"collection": _named(p.key, tenant_id, label), "count": rows}
                    for p, rows in found
                ]
            },
        )
        tombstone = places[-1]  # `_places` lists the directory last
        with translate_driver_errors(tenant_id=tenant_id):
            for place, _ in found:
                if place is tombstone:
                    continue
                collection = layer.unguarded_collection(
                    place.database,
                    place.collection,
                    why="purging a retired id's rows, append-only audit entries included",
                )
                if place.whole:
                    await collection.drop()
                    layer.forget_ensured(place.database, [place.collection])
                else:
                    await collection.delete_many(place.filter)
            directory = layer.unguarded_collection(
                tombstone.database,
                tombstone.collection,
                why="the tombstone goes last, so an interrupted purge can be re-run",
            )
            await directory.delete_many(tombstone.filter)
        layer.resolver.invalidate(tenant_id)
        return {_named(place.key, tenant_id, label): rows for place, rows in found}

    async def _delete_credentials(self, tenant_id: str) -> dict[str, int]:
        """Delete the tenant's API keys and applications; the count of each."""
        deleted: dict[str, int] = {}
        for document_type in _CREDENTIALS:
            with translate_driver_errors(tenant_id=tenant_id, document_type=document_type):
                collection = self._layer.unguarded_platform_collection(
                    document_type, why="deprovisioning revokes a retiring tenant's credentials"
                )
                result = await collection.delete_many({"tenant_id": tenant_id})
            deleted[spec_of(document_type).name] = result.deleted_count
        return deleted

    async def _set_status(self, tenant_id: str, status: ClientStatus) -> None:
        """Move the directory entry to a deprovisioning status; the resolver forgets it."""
        with translate_driver_errors(tenant_id=tenant_id, document_type=SaasClient):
            await self._layer.unguarded_platform_collection(
                SaasClient, why="the directory is written by the operator, outside tenant scopes"
            ).update_one(
                {"tenant_id": tenant_id},
                {"$set": {"status": status.value, "updated_at": utcnow()}, "$inc": {"__v": 1}},
            )
        self._layer.resolver.invalidate(tenant_id)

    @staticmethod
    def _placement_of(client: SaasClient) -> Placement:
        return Placement(
            client.tenant_id,
            client.tier,
            client.placement.database,
            client.placement.collection_prefix,
            client.placement.cluster,
        )

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

    async def get_or_none(
        self, tenant_id: str, *, include_retired: bool = False
    ) -> SaasClient | None:
        """The directory entry of a live tenant, or None.

        `include_retired=True` also returns the tombstone of a deprovisioned tenant.
        """
        validate_tenant_id(tenant_id)
        collection = self._layer.unguarded_platform_collection(
            SaasClient, why="the operator reads the directory, tombstones included"
        )
        with translate_driver_errors(tenant_id=tenant_id, document_type=SaasClient):
            raw = await collection.find_one({"tenant_id": tenant_id})
        if raw is None:
            return None
        client = SaasClient.model_validate(raw)
        return client if include_retired or not client.is_retired else None

    async def get(self, tenant_id: str) -> SaasClient:
        """The directory entry of a live tenant; `TenantNotFound` when there is none."""
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
