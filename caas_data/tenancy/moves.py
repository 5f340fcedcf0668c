"""Online tenant moves between isolation models and clusters (`layer.tenants.move`).

How a move runs, each step recorded in `tenant_moves` before its effects start, so that
running the move again after a crash at any point finishes it:

1. **Copy**: for each tenant collection, a change stream is opened on the source first and
   its resume token recorded; then the documents are copied in `_id` order, in batches, as
   upserts by `_id` (a batch copied twice is still one document). The position after each
   batch is recorded.
2. **Catch up**: the change streams are drained from their tokens; each event re-syncs its
   `_id` (the source's current document is upserted, or the copy deleted when the source
   has none), so replaying an event is harmless.
3. **Fence**: a server-side validator `{tenant_id: {$nin: [...]}}` on every source
   collection makes the tenant's inserts and updates there fail (the guard translates the
   failure into `TenantMoving`, a `RetryableError`), whoever sends them: this process, a
   scope opened before the switch, another process with a cached placement. Other tenants
   of a shared collection are unaffected. The streams are drained once more (everything
   acknowledged before the fence is now in the copy), then each collection is verified:
   count and a SHA-256 over the BSON of every document in `_id` order, computed the same way
   on both sides.
4. **Switch**: one conditional update of the directory entry (tier, placement, cluster;
   `pending_tier` cleared); the resolver forgets the tenant. Deletes that reached the old
   placement after the final drain are applied to the copy.
5. **Clean up**: the tenant's documents are deleted at the old placement, which stays
   fenced for the resolver's TTL plus a margin (the longest another process may still route
   there); then the old collection set or database is dropped, or the tenant taken off the
   shared collections' fence.

The write pause is the time between the fence and the switch (`MoveReport.fence_seconds`).
Reads never pause: until the cleanup, a scope resolved before the switch reads the old
copy, which is complete.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import bson
from pymongo import DeleteOne, ReplaceOne
from pymongo.asynchronous.collection import AsyncCollection

from caas_data.documents.base import Area, utcnow
from caas_data.documents.moves import CollectionProgress, MoveStep, TenantMove
from caas_data.documents.platform import PlacementRecord, SaasClient
from caas_data.driver_errors import translate_driver_errors
from caas_data.engine.registry import spec_of
from caas_data.errors import DuplicateError, MoveVerificationFailed, TenantNotFound, UnsafeOperation
from caas_data.tenancy.capacity import choose_cluster
from caas_data.tenancy.tiers import HOME_CLUSTER, IsolationModel, Placement, Tier

if TYPE_CHECKING:
    from caas_data.engine.layer import DataLayer

__all__ = ["MoveReport", "ProgressHook", "TenantMover"]

ProgressHook = Callable[[str, Mapping[str, Any]], None]
"""Called after each recorded step: ("copied_batch" | "copied" | "fenced" | "switched" |
"cleaned_collection" | "done", details). For progress displays, and for crash tests."""

_DRAIN_BATCH = 500
_CATCH_UP_ROUNDS = 5
_AWAIT_MS = 50
_FENCE_MARGIN_SECONDS = 1.0


@dataclass(frozen=True, slots=True)
class MoveReport:
    """What a move did."""

    tenant_id: str
    from_tier: Tier
    to_tier: Tier
    source: Placement
    target: Placement
    documents: int = 0
    caught_up: int = 0
    seconds: float = 0.0
    fence_seconds: float = 0.0
    moved: bool = True
    counts: dict[str, int] = field(default_factory=dict)


def _record(placement: Placement) -> PlacementRecord:
    return PlacementRecord(
        database=placement.database,
        collection_prefix=placement.collection_prefix,
        cluster=placement.cluster,
    )


def _placement(tenant_id: str, tier: Tier, record: PlacementRecord) -> Placement:
    return Placement(tenant_id, tier, record.database, record.collection_prefix, record.cluster)


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
            raise ValueError("batch_size must be at least 1")
        started = time.monotonic()
        async with self._lock:
            move = await self._load(tenant_id)
            if move is None:
                client = await self._client(tenant_id)
                target_tier = client.tier if to is None else to
                source = _placement(tenant_id, client.tier, client.placement)
                target = await self._target(tenant_id, source, target_tier, cluster)
                if (source.database, source.collection_prefix, source.cluster) == (
                    target.database,
                    target.collection_prefix,
                    target.cluster,
                ):
                    if client.tier is not target_tier:
                        await self._switch(source, target)  # same place, another label
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
            run = _Run(self._layer, move, batch_size, on_progress)
            return await run.finish(started, fence_grace)

    async def move_pending(
        self, *, actor: str | None, fence_grace: float | None, batch_size: int
    ) -> list[MoveReport]:
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
                    on_progress=None,
                )
            )
        return reports

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
            source=_record(source),
            target=_record(target),
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

    async def _switch(self, source: Placement, target: Placement) -> None:
        await _switch_directory(self._layer, source, target)


async def _switch_directory(layer: DataLayer, source: Placement, target: Placement) -> bool:
    """Point the directory at `target`, if it still points at `source`; True if it now does."""
    directory = layer.unguarded_platform_collection(
        SaasClient, why="a move switches the tenant's placement in the directory"
    )
    tenant_id = source.tenant_id
    with translate_driver_errors(tenant_id=tenant_id, document_type=SaasClient):
        result = await directory.update_one(
            {
                "tenant_id": tenant_id,
                "placement.database": source.database,
                "placement.collection_prefix": source.collection_prefix,
                "placement.cluster": (
                    source.cluster
                    if source.cluster != HOME_CLUSTER
                    else {"$in": [HOME_CLUSTER, None]}
                ),
            },
            {
                "$set": {
                    "tier": target.tier.value,
                    "placement": _record(target).model_dump(),
                    "pending_tier": None,
                    "updated_at": utcnow(),
                },
                "$inc": {"__v": 1},
            },
        )
        if result.matched_count == 0:
            raw = await directory.find_one({"tenant_id": tenant_id}, {"placement": 1})
            now = PlacementRecord.model_validate(raw["placement"]) if raw else None
            if now != _record(target):
                raise UnsafeOperation(
                    "the directory no longer points the tenant at the move's source",
                    tenant_id=tenant_id,
                )
    layer.resolver.invalidate(tenant_id)
    return True


class _Run:
    """One run of a recorded move, from whatever step it stands at."""

    def __init__(
        self,
        layer: DataLayer,
        move: TenantMove,
        batch_size: int,
        on_progress: ProgressHook | None,
    ) -> None:
        self.layer = layer
        self.move = move
        self.tenant_id = move.tenant_id
        self.source = _placement(move.tenant_id, move.from_tier, move.source)
        self.target = _placement(move.tenant_id, move.to_tier, move.target)
        self.batch_size = batch_size
        self.on_progress = on_progress
        self.names = [spec_of(d).name for d in layer.registry.in_area(Area.TENANT)]
        self.copied = 0
        self._saving = asyncio.Lock()  # collections progress concurrently, one record

    # -- plumbing ---------------------------------------------------------------------

    def _side(self, placement: Placement, name: str) -> AsyncCollection[dict[str, Any]]:
        return self.layer.unguarded_collection(
            placement.database,
            placement.collection_name(name),
            why="a tenant move copies, verifies and removes one tenant's collections",
            cluster=placement.cluster,
        )

    def _scope_filter(self, placement: Placement) -> dict[str, Any]:
        """The tenant's rows at `placement` (every placement stores `tenant_id`)."""
        return {"tenant_id": self.tenant_id}

    def _key(self, document_id: Any) -> dict[str, Any]:
        """One document of the tenant, by `_id` and tenant.

        In a shared target an `_id` of another tenant's row never matches: the upsert then
        fails on the unique `_id` instead of replacing that row.
        """
        return {"_id": document_id, "tenant_id": self.tenant_id}

    def _progress(self, name: str) -> CollectionProgress:
        return self.move.collections.setdefault(name, CollectionProgress())

    async def _save(self, **changes: Any) -> None:
        for key, value in changes.items():
            setattr(self.move, key, value)
        async with self._saving:
            self.move.updated_at = utcnow()
            body = self.move.model_dump(by_alias=True, exclude={"id"})
            with translate_driver_errors(tenant_id=self.tenant_id, document_type=TenantMove):
                await self.layer.unguarded_platform_collection(
                    TenantMove, why="a move records its own progress"
                ).replace_one({"tenant_id": self.tenant_id}, body)

    def _tell(self, event: str, **details: Any) -> None:
        if self.on_progress is not None:
            self.on_progress(event, {"tenant_id": self.tenant_id, **details})

    # -- the steps --------------------------------------------------------------------

    async def finish(self, started: float, fence_grace: float | None) -> MoveReport:
        move = self.move
        with translate_driver_errors(tenant_id=self.tenant_id):
            if move.step is MoveStep.COPYING:
                await self._prepare_target()
                await asyncio.gather(*(self._copy(name) for name in self.names))
                await self._drain_all()
                self._tell("copied", documents=self.copied)
                await self._save(step=MoveStep.FENCED)
            counts: dict[str, int] = {}
            if move.step is MoveStep.FENCED and await self._already_switched():
                await self._save(step=MoveStep.SWITCHED, switched_at=utcnow())
            if move.step is MoveStep.FENCED:
                fenced = time.monotonic()
                await self._fence(self.source, add=True)
                self._tell("fenced")
                await self._drain_all(until_quiet=True)
                counts = await self._verify()
                await _switch_directory(self.layer, self.source, self.target)
                pause = time.monotonic() - fenced
                await self._save(step=MoveStep.SWITCHED, switched_at=utcnow(), fence_seconds=pause)
                self._tell("switched", fence_seconds=pause)
            if move.step is MoveStep.SWITCHED:
                await self._drain_all(until_quiet=True)  # deletes that reached the old copy
                await self._save(step=MoveStep.CLEANING)
            if move.step is MoveStep.CLEANING:
                await self._clean_up(fence_grace)
        await self._audit(counts)
        with translate_driver_errors(tenant_id=self.tenant_id, document_type=TenantMove):
            await self.layer.unguarded_platform_collection(
                TenantMove, why="a finished move leaves its history in the audit trail"
            ).delete_one({"tenant_id": self.tenant_id})
        self._tell("done")
        return MoveReport(
            self.tenant_id,
            move.from_tier,
            move.to_tier,
            self.source,
            self.target,
            documents=sum(p.copied for p in move.collections.values()),
            caught_up=move.caught_up,
            seconds=time.monotonic() - started,
            fence_seconds=move.fence_seconds,
            counts=counts,
        )

    async def _already_switched(self) -> bool:
        """Whether a crash came between the directory switch and recording it."""
        directory = self.layer.unguarded_platform_collection(
            SaasClient, why="a resumed move checks whether it had switched the directory"
        )
        raw = await directory.find_one({"tenant_id": self.tenant_id}, {"placement": 1})
        return (
            raw is not None and PlacementRecord.model_validate(raw["placement"]) == self.move.target
        )

    async def _prepare_target(self) -> None:
        """Create the target's collections and indexes; lift an old fence of the tenant there."""
        target = self.target
        shared = target.isolation is IsolationModel.SHARED
        for document_type in self.layer.registry.in_area(Area.TENANT):
            await self.layer.ensure_collection(
                target.database,
                target.collection_name(spec_of(document_type).name),
                document_type,
                pre_images=shared,
                cluster=target.cluster,
            )
        await self._fence(target, add=False)

    async def _copy(self, name: str) -> None:
        progress = self._progress(name)
        if progress.copy_done:
            return
        source = self._side(self.source, name)
        if progress.start_at is None:
            # The stream starts at the source's time before the first document is read:
            # every write after this point is in it, whatever the copy saw. (An event's own
            # token is kept later; a token of an empty batch can name another namespace.)
            reply = await source.database.command("ping")
            progress.start_at = reply.get("operationTime") or reply["$clusterTime"]["clusterTime"]
            # The copy stops at the newest document of this moment: writers cannot keep it
            # running, what comes later is in the stream.
            newest = await source.find_one(
                self._scope_filter(self.source), {"_id": 1}, sort=[("_id", -1)]
            )
            progress.copy_until = None if newest is None else newest["_id"]
            progress.copy_done = newest is None
            await self._save()
        target = self._side(self.target, name)
        while not progress.copy_done:
            query: dict[str, Any] = self._scope_filter(self.source)
            bounds: dict[str, Any] = {"$lte": progress.copy_until}
            if progress.last_id is not None:
                bounds["$gt"] = progress.last_id
            query["_id"] = bounds
            batch = await source.find(query).sort("_id", 1).limit(self.batch_size).to_list()
            if not batch:
                break
            await target.bulk_write(
                [ReplaceOne(self._key(doc["_id"]), doc, upsert=True) for doc in batch],
                ordered=False,
                bypass_document_validation=True,
            )
            progress.last_id = batch[-1]["_id"]
            progress.copied += len(batch)
            self.copied += len(batch)
            await self._save()
            self._tell("copied_batch", collection=name, copied=progress.copied)
        progress.copy_done = True
        await self._save()

    async def _drain_all(self, *, until_quiet: bool = False) -> None:
        await asyncio.gather(*(self._drain(name, until_quiet=until_quiet) for name in self.names))

    async def _drain(self, name: str, *, until_quiet: bool) -> None:
        """Apply the source's changes since the recorded token to the copy, by `_id`."""
        progress = self._progress(name)
        source = self._side(self.source, name)
        pipeline: list[dict[str, Any]] = []
        if self.source.isolation is IsolationModel.SHARED:
            # Other tenants' events are skipped; a delete carries only `_id`, so every delete
            # re-syncs its id (the copy holds only this tenant's rows, nothing else can go).
            tenant = self.tenant_id
            pipeline = [
                {
                    "$match": {
                        "$or": [{"fullDocument.tenant_id": tenant}, {"operationType": "delete"}]
                    }
                }
            ]
        quiet = rounds = 0
        position: dict[str, Any] = (
            {"resume_after": progress.resume_token}
            if progress.resume_token
            else {"start_at_operation_time": progress.start_at}
        )
        async with await source.watch(
            pipeline, full_document="updateLookup", max_await_time_ms=_AWAIT_MS, **position
        ) as stream:
            while True:
                ids: list[Any] = []
                last: Any = None
                while len(ids) < _DRAIN_BATCH:
                    event = await stream.try_next()
                    if event is None:
                        break
                    last = event["_id"]
                    key = event.get("documentKey", {})
                    if "_id" in key:
                        ids.append(key["_id"])
                if ids:
                    await self._resync(name, ids)
                    self.move.caught_up += len(ids)
                if last is not None:
                    progress.resume_token = dict(last)
                    await self._save()
                rounds += 1
                if not until_quiet:
                    # Before the fence writers keep writing: catch up a bounded amount; the
                    # fenced drain takes the rest.
                    if len(ids) < _DRAIN_BATCH or rounds >= _CATCH_UP_ROUNDS:
                        return
                    continue
                quiet = 0 if ids else quiet + 1
                if quiet >= 2:
                    return

    async def _resync(self, name: str, ids: list[Any]) -> None:
        """Make the copy of each id what the source holds now (or absent)."""
        unique = list(dict.fromkeys(ids))
        source, target = self._side(self.source, name), self._side(self.target, name)
        found = await source.find(
            {**self._scope_filter(self.source), "_id": {"$in": unique}}
        ).to_list()
        present = {doc["_id"] for doc in found}
        requests: list[ReplaceOne[dict[str, Any]] | DeleteOne] = [
            ReplaceOne(self._key(doc["_id"]), doc, upsert=True) for doc in found
        ]
        requests += [DeleteOne(self._key(i)) for i in unique if i not in present]
        if requests:
            await target.bulk_write(requests, ordered=False, bypass_document_validation=True)

    async def _verify(self) -> dict[str, int]:
        """Count and checksum every collection on both sides; refuse to switch on a mismatch."""
        counts = {}
        digests = await asyncio.gather(
            *(
                _digest(self._side(placement, name), self._scope_filter(placement))
                for name in self.names
                for placement in (self.source, self.target)
            )
        )
        for index, name in enumerate(self.names):
            source, target = digests[2 * index], digests[2 * index + 1]
            if source != target:
                await self._fence(self.source, add=False)
                self.move.collections.clear()  # the next run copies afresh
                await self._save(step=MoveStep.COPYING)
                raise MoveVerificationFailed(
                    f"{name}: source has {source[0]} documents (sha256 {source[1][:12]}), "
                    f"the copy {target[0]} ({target[1][:12]}); nothing switched, the fence is "
                    "lifted; run the move again to re-copy",
                    tenant_id=self.tenant_id,
                )
            counts[name] = source[0]
        return counts

    async def _fence(self, placement: Placement, *, add: bool) -> None:
        """Add the tenant to (or lift it from) the write fence of `placement`'s collections."""
        database = self.layer.unguarded_database(
            placement.database,
            why="a move fences the tenant's old placement against writes",
            cluster=placement.cluster,
        )
        names = [placement.collection_name(name) for name in self.names]
        infos = await (await database.list_collections(filter={"name": {"$in": names}})).to_list()
        for info in infos:
            validator = info.get("options", {}).get("validator", {})
            fenced = list(validator.get("tenant_id", {}).get("$nin", []))
            if add == (self.tenant_id in fenced):
                continue
            fenced = (
                [*fenced, self.tenant_id] if add else [t for t in fenced if t != self.tenant_id]
            )
            await database.command(
                "collMod",
                info["name"],
                validator={"tenant_id": {"$nin": fenced}} if fenced else {},
                validationLevel="strict",
                validationAction="error",
            )

    async def _clean_up(self, fence_grace: float | None) -> None:
        """Delete the old copy; after the grace, drop it (or lift the shared fence)."""
        source = self.source
        for name in self.names:
            await self._side(source, name).delete_many(self._scope_filter(source))
            self._tell("cleaned_collection", collection=name)
        grace = (
            self.layer.settings.tenant_cache_ttl_seconds + _FENCE_MARGIN_SECONDS
            if fence_grace is None
            else fence_grace
        )
        switched = self.move.switched_at or utcnow()
        wait = grace - (utcnow() - switched).total_seconds()
        if wait > 0:
            await asyncio.sleep(wait)
        client = self.layer.clusters.client(source.cluster)
        if source.isolation is IsolationModel.DATABASE:
            await client.drop_database(source.database)
            self.layer.forget_ensured(source.database, cluster=source.cluster)
        elif source.isolation is IsolationModel.COLLECTION_SET:
            database = self.layer.unguarded_database(
                source.database, why="a move drops the old collection set", cluster=source.cluster
            )
            physical = [source.collection_name(name) for name in self.names]
            for name in physical:
                await database.drop_collection(name)
            self.layer.forget_ensured(source.database, physical, cluster=source.cluster)
        else:
            await self._fence(source, add=False)

    async def _audit(self, counts: dict[str, int]) -> None:
        from caas_data.repositories.audit import AuditLogRepository

        await self.layer.repo(AuditLogRepository).append(
            "tenant.moved",
            tenant_id=self.tenant_id,
            actor=self.move.actor,
            target_type="tenant",
            target_id=self.tenant_id,
            details={
                "from_tier": self.move.from_tier.value,
                "to_tier": self.move.to_tier.value,
                "from": self.move.source.model_dump(),
                "to": self.move.target.model_dump(),
                "documents": counts,
                "fence_seconds": round(self.move.fence_seconds, 4),
            },
        )


async def _digest(
    collection: AsyncCollection[dict[str, Any]], query: dict[str, Any]
) -> tuple[int, str]:
    """(count, sha256 of every document's BSON in `_id` order): the same on both sides."""
    digest = hashlib.sha256()
    count = 0
    async for doc in collection.find(query).sort("_id", 1):
        digest.update(bson.encode(doc))
        count += 1
    return count, digest.hexdigest()
