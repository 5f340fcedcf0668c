"""Online tenant moves between isolation models and clusters (`layer.tenants.move`).

How a move runs, each step recorded in `tenant_moves` before its effects start, so that
running the move again after a crash at any point finishes it (`move_run`):

1. **Copy**: one change stream on the source database is positioned first (the source's
   operation time, recorded; `move_feed`); then each tenant collection is copied in `_id`
   order, in batches, as upserts by `_id` (a batch copied twice is still one document). The
   position after each batch is recorded.
2. **Catch up**: the stream is drained from its recorded position; each event re-syncs its
   `_id` (the source's current document is upserted, or the copy deleted when the source
   has none), so replaying an event is harmless. Then every document is compared by SHA-256
   on both sides while writers still write (`move_verify`); the ids that differ are kept.
3. **Fence**: a server-side validator `{tenant_id: {$nin: [...]}}` on every source
   collection makes the tenant's inserts and updates there fail (the guard translates the
   failure into `TenantMoving`, a `RetryableError`), whoever sends them: this process, a
   scope opened before the switch, another process with a cached placement. Other tenants
   of a shared collection are unaffected. The stream is drained until quiet (everything
   acknowledged before the fence is now in the copy), then only the ids changed since the
   comparison, and those that differed, are compared again, with the counts of both sides.
4. **Switch**: one conditional update of the directory entry (tier, placement, cluster;
   `pending_tier` cleared); the resolver forgets the tenant. Deletes that reached the old
   placement after the final drain are applied to the copy.
5. **Clean up**: the tenant's documents are deleted at the old placement, which stays
   fenced for the resolver's TTL plus a margin (the longest another process may still route
   there); then the old collection set or database is dropped, or the tenant taken off the
   shared collections' fence.

The write pause is the time between the fence and the switch (`MoveReport.fence_seconds`):
it grows with the writes made during the move, not with the tenant's size. Reads never
pause: until the cleanup, a scope resolved before the switch reads the old copy, which is
complete.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pymongo.asynchronous.collection import AsyncCollection

from caas_data.documents.base import utcnow
from caas_data.documents.moves import TenantMove
from caas_data.documents.platform import SaasClient
from caas_data.driver_errors import translate_driver_errors
from caas_data.engine.clusters import HOME_CLUSTER
from caas_data.errors import (
    DocumentValidationError,
    DuplicateError,
    TenantNotFound,
    UnsafeOperation,
)
from caas_data.services.capacity import choose_cluster
from caas_data.services.move_run import (
    MoveReport,
    MoveRun,
    ProgressHook,
    placement_of,
    record_of,
    switch_directory,
)
from caas_data.tenancy.tiers import IsolationModel, Placement, Tier

if TYPE_CHECKING:
    from caas_data.layer import DataLayer

__all__ = ["MoveReport", "PendingMoves", "ProgressHook", "TenantMover"]


@dataclass(frozen=True, slots=True)
class PendingMoves:
    """What `move_pending()` did: one report per move carried out or finished.

    `nothing_to_do` says that no tier change was pending and no move was interrupted (a
    second call after a successful one); `str()` says it in words.
    """

    reports: tuple[MoveReport, ...] = ()

    @property
    def nothing_to_do(self) -> bool:
        """True when there was no pending tier change and no interrupted move."""
        return not self.reports

    def __str__(self) -> str:
        if self.nothing_to_do:
            return "no pending tier change and no interrupted move: nothing to do"
        return "; ".join(
            f"{r.tenant_id}: {r.from_tier} -> {r.to_tier}"
            + (f" ({r.documents} documents)" if r.moved else " (same placement)")
            for r in self.reports
        )


class TenantMover:
    """The machinery behind `layer.tenants.move()`; one per layer."""

    def __init__(self, layer: DataLayer) -> None:
        self._layer = layer
        self._lock = asyncio.Lock()  # shared-collection fences are read-modify-write

    # -- public face (through TenantService) -----------------------------------------

    async def move(
        self,
        tenant_id: str,
        *,
        to: Tier | None,
        cluster: str | None,
        actor: str | None,
        batch_size: int,
        fence_grace: float | None,
        on_progress: ProgressHook | None,
    ) -> MoveReport:
        """Move (or finish moving) a tenant; see the module docstring."""
        if batch_size < 1:
            raise DocumentValidationError(
                f"batch_size must be at least 1, got {batch_size!r}", fields=("batch_size",)
            )
        started = time.monotonic()
        async with self._lock:
            move = await self._load(tenant_id)
            if move is None:
                client = await self._client(tenant_id)
                target_tier = client.tier if to is None else to
                source = placement_of(tenant_id, client.tier, client.placement)
                target = await self._target(tenant_id, source, target_tier, cluster)
                if (source.database, source.collection_prefix, source.cluster) == (
                    target.database,
                    target.collection_prefix,
                    target.cluster,
                ):
                    if client.tier is not target_tier:
                        # The same place under another label: only the directory changes.
                        await switch_directory(self._layer, source, target)
                    return MoveReport(
                        tenant_id, client.tier, target_tier, source, target, moved=False
                    )
                move = await self._begin(tenant_id, source, target, actor)
            elif to is not None and to is not move.to_tier:
                raise UnsafeOperation(
                    f"a move to {move.to_tier} is in progress: run it to the end first",
                    tenant_id=tenant_id,
                )
            elif cluster is not None and cluster != move.target.cluster:
                raise UnsafeOperation(
                    f"a move to cluster {move.target.cluster!r} is in progress: "
                    "run it to the end first",
                    tenant_id=tenant_id,
                )
            run = MoveRun(self._layer, move, batch_size, on_progress)
            return await run.finish(started, fence_grace)

    async def move_pending(
        self,
        *,
        actor: str | None,
        fence_grace: float | None,
        batch_size: int,
        on_progress: ProgressHook | None = None,
    ) -> PendingMoves:
        """Carry out every recorded tier change, and finish every interrupted move."""
        layer = self._layer
        tenants: list[tuple[str, Tier | None]] = []
        moves = layer.unguarded_platform_collection(
            TenantMove, why="the operator finishes interrupted moves"
        )
        directory = layer.unguarded_platform_collection(
            SaasClient, why="the operator carries out requested tier changes"
        )
        with translate_driver_errors(document_type=SaasClient):
            async for raw in moves.find({}, {"tenant_id": 1}):
                tenants.append((raw["tenant_id"], None))
            async for raw in directory.find(
                {"pending_tier": {"$ne": None}, "status": "active"},
                {"tenant_id": 1, "pending_tier": 1},
            ):
                if all(raw["tenant_id"] != seen for seen, _ in tenants):
                    tenants.append((raw["tenant_id"], Tier(raw["pending_tier"])))
        reports = []
        for tenant_id, tier in tenants:
            reports.append(
                await self.move(
                    tenant_id,
                    to=tier,
                    cluster=None,
                    actor=actor,
                    batch_size=batch_size,
                    fence_grace=fence_grace,
                    on_progress=on_progress,
                )
            )
        return PendingMoves(tuple(reports))

    # -- set-up -----------------------------------------------------------------------

    def _moves(self) -> AsyncCollection[dict[str, Any]]:
        return self._layer.unguarded_platform_collection(
            TenantMove, why="a move records its own progress in the platform database"
        )

    async def _load(self, tenant_id: str) -> TenantMove | None:
        with translate_driver_errors(tenant_id=tenant_id, document_type=TenantMove):
            raw = await self._moves().find_one({"tenant_id": tenant_id})
            return None if raw is None else TenantMove.model_validate(raw)

    async def _client(self, tenant_id: str) -> SaasClient:
        collection = self._layer.unguarded_platform_collection(
            SaasClient, why="a move reads the tenant's directory entry"
        )
        with translate_driver_errors(tenant_id=tenant_id, document_type=SaasClient):
            raw = await collection.find_one({"tenant_id": tenant_id})
            client = None if raw is None else SaasClient.model_validate(raw)
        if client is None or client.is_retired:
            raise TenantNotFound("tenant is not provisioned", tenant_id=tenant_id)
        return client

    async def _target(
        self, tenant_id: str, source: Placement, tier: Tier, cluster: str | None
    ) -> Placement:
        layer = self._layer
        if tier.isolation is IsolationModel.SHARED:
            if cluster not in (None, HOME_CLUSTER):
                raise UnsafeOperation(
                    "shared tiers live on the home cluster's shared collections",
                    tenant_id=tenant_id,
                )
            cluster = HOME_CLUSTER
        elif cluster is None:
            same_model = source.isolation is tier.isolation
            keep = source.isolation is not IsolationModel.SHARED and not same_model
            cluster = source.cluster if keep else await choose_cluster(layer, tenant_id, tier)
        layer.clusters.client(cluster)  # an unknown cluster fails here, before any write
        return Placement.for_tier(tenant_id, tier, database_prefix=layer.prefix, cluster=cluster)

    async def _begin(
        self, tenant_id: str, source: Placement, target: Placement, actor: str | None
    ) -> TenantMove:
        now = utcnow()
        move = TenantMove(
            tenant_id=tenant_id,
            from_tier=source.tier,
            to_tier=target.tier,
            source=record_of(source),
            target=record_of(target),
            actor=actor,
            created_at=now,
            updated_at=now,
        )
        try:
            with translate_driver_errors(tenant_id=tenant_id, document_type=TenantMove):
                result = await self._moves().insert_one(
                    move.model_dump(by_alias=True, exclude={"id"})
                )
        except DuplicateError:
            raise UnsafeOperation(
                "another process started moving this tenant", tenant_id=tenant_id
            ) from None
        move.id = result.inserted_id
        return move
