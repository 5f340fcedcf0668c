"""One run of a recorded tenant move, from whatever step it stands at (see `services.moves`).

Steps: copy (in batches, under the change feed of `move_feed`), catch up, verify every
document before the fence (`move_verify`), fence, drain and re-check what changed, switch
the directory, clean up. Each step is recorded in `tenant_moves` before its effects start.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pymongo import DeleteOne, ReplaceOne
from pymongo.asynchronous.collection import AsyncCollection

from caas_data.documents.base import Area, utcnow
from caas_data.documents.moves import CollectionProgress, MoveStep, TenantMove
from caas_data.documents.platform import PlacementRecord, SaasClient
from caas_data.documents.registry import spec_of
from caas_data.driver_errors import translate_driver_errors
from caas_data.engine.clusters import HOME_CLUSTER
from caas_data.engine.collections import collections_options
from caas_data.errors import MoveVerificationFailed, UnsafeOperation
from caas_data.repositories.analytics.audit import AuditLogRepository
from caas_data.services import move_verify
from caas_data.services.move_feed import ChangedIds, ChangeFeed
from caas_data.tenancy.tiers import IsolationModel, Placement, Tier

if TYPE_CHECKING:
    from caas_data.layer import DataLayer

__all__ = ["MoveReport", "MoveRun", "ProgressHook", "placement_of", "record_of", "switch_directory"]

ProgressHook = Callable[[str, Mapping[str, Any]], None]
"""Called after each recorded step: ("copied_batch" | "copied" | "fenced" | "switched" |
"cleaned_collection" | "done", details). For progress displays, and for crash tests."""

_FENCE_MARGIN_SECONDS = 1.0
_NARROWING_ROUNDS = 5
_FEW_CHANGES = 50


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


def record_of(placement: Placement) -> PlacementRecord:
    """The directory's form of a placement."""
    return PlacementRecord(
        database=placement.database,
        collection_prefix=placement.collection_prefix,
        cluster=placement.cluster,
    )


def placement_of(tenant_id: str, tier: Tier, record: PlacementRecord) -> Placement:
    """A placement from the directory's form."""
    return Placement(tenant_id, tier, record.database, record.collection_prefix, record.cluster)


async def switch_directory(layer: DataLayer, source: Placement, target: Placement) -> None:
    """Point the directory at `target` if it still points at `source` (or already at `target`).

    Raises:
        UnsafeOperation: the directory points somewhere else.
    """
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
                    "placement": record_of(target).model_dump(),
                    "pending_tier": None,
                    "updated_at": utcnow(),
                },
                "$inc": {"__v": 1},
            },
        )
        if result.matched_count == 0:
            raw = await directory.find_one({"tenant_id": tenant_id}, {"placement": 1})
            now = PlacementRecord.model_validate(raw["placement"]) if raw else None
            if now != record_of(target):
                raise UnsafeOperation(
                    "the directory no longer points the tenant at the move's source",
                    tenant_id=tenant_id,
                )
    layer.resolver.invalidate(tenant_id)


class MoveRun:
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
        self.source = placement_of(move.tenant_id, move.from_tier, move.source)
        self.target = placement_of(move.tenant_id, move.to_tier, move.target)
        self.batch_size = batch_size
        self.on_progress = on_progress
        self.names = [spec_of(d).name for d in layer.registry.in_area(Area.TENANT)]
        self.copied = 0
        self._saving = asyncio.Lock()  # collections progress concurrently, one record
        self.feed = ChangeFeed(
            layer.unguarded_database(
                self.source.database,
                why="a tenant move follows the source database's change stream",
                cluster=self.source.cluster,
            ),
            self.source,
            self.names,
            move,
            save=self._save,
            resync=self._resync,
        )
        # Ids that differed in the check before the fence (None: no check ran in this run).
        self._differing: dict[str, list[Any]] | None = None

    # -- plumbing ---------------------------------------------------------------------

    def _side(self, placement: Placement, name: str) -> AsyncCollection[dict[str, Any]]:
        return self.layer.unguarded_collection(
            placement.database,
            placement.collection_name(name),
            why="a tenant move copies, verifies and removes one tenant's collections",
            cluster=placement.cluster,
        )

    def _scope(self) -> dict[str, Any]:
        """The tenant's rows, at any placement (every placement stores `tenant_id`)."""
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
        """Run the remaining steps; `started` is when the caller began (for the report)."""
        move = self.move
        with translate_driver_errors(tenant_id=self.tenant_id):
            if move.step is MoveStep.COPYING:
                await self._prepare_target()
                await self.feed.start()
                await asyncio.gather(*(self._copy(name) for name in self.names))
                await self.feed.drain(until_quiet=False)
                self._tell("copied", documents=self.copied)
                await self._check_before_fence()
                await self._save(step=MoveStep.FENCED)
            counts: dict[str, int] = {}
            if move.step is MoveStep.FENCED and await self._already_switched():
                await self._save(step=MoveStep.SWITCHED, switched_at=utcnow())
            if move.step is MoveStep.FENCED:
                fenced = time.monotonic()
                await self._fence(self.source, add=True)
                self._tell("fenced")
                counts = await self._verify_fenced()
                await switch_directory(self.layer, self.source, self.target)
                pause = time.monotonic() - fenced
                await self._save(step=MoveStep.SWITCHED, switched_at=utcnow(), fence_seconds=pause)
                self._tell("switched", fence_seconds=pause)
            if move.step is MoveStep.SWITCHED:
                await self.feed.drain(until_quiet=True)  # deletes that reached the old copy
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
        """Create the target's collections and indexes; lift an old fence of the tenant there.

        A copy that starts afresh first removes the tenant's rows at the target: leftovers of
        a run that failed verification (the directory never pointed there), which the copy
        would otherwise keep beside the new ones.
        """
        target = self.target
        shared = target.isolation is IsolationModel.SHARED
        for document_type in self.layer.registry.in_area(Area.TENANT):
            name = spec_of(document_type).name
            await self.layer.ensure_collection(
                target.database,
                target.collection_name(name),
                document_type,
                pre_images=shared,
                cluster=target.cluster,
            )
            if self.move.start_at is None:
                await self._side(target, name).delete_many(self._scope())
        await self._fence(target, add=False)

    async def _copy(self, name: str) -> None:
        progress = self._progress(name)
        if progress.copy_done:
            return
        source = self._side(self.source, name)
        if progress.copy_until is None:
            # The copy stops at the newest document of this moment (after the feed's start):
            # writers cannot keep it running, what comes later is in the stream.
            newest = await source.find_one(self._scope(), {"_id": 1}, sort=[("_id", -1)])
            progress.copy_until = None if newest is None else newest["_id"]
            progress.copy_done = newest is None
            await self._save()
        target = self._side(self.target, name)
        while not progress.copy_done:
            bounds: dict[str, Any] = {"$lte": progress.copy_until}
            if progress.last_id is not None:
                bounds["$gt"] = progress.last_id
            query = {**self._scope(), "_id": bounds}
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

    async def _resync(self, name: str, ids: list[Any]) -> None:
        """Make the copy of each id what the source holds now (or absent)."""
        unique = list(dict.fromkeys(ids))
        source, target = self._side(self.source, name), self._side(self.target, name)
        found = await move_verify.by_ids(source, self.tenant_id, unique)
        present = {doc["_id"] for doc in found}
        requests: list[ReplaceOne[dict[str, Any]] | DeleteOne] = [
            ReplaceOne(self._key(doc["_id"]), doc, upsert=True) for doc in found
        ]
        requests += [DeleteOne(self._key(i)) for i in unique if i not in present]
        if requests:
            await target.bulk_write(requests, ordered=False, bypass_document_validation=True)

    # -- verification (the reasoning is in `move_verify`) -------------------------------

    async def _check_before_fence(self) -> None:
        """Compare every document while writers still write, then narrow the ids to re-check.

        Each round drains the stream (the ids it re-synced join the suspects) and compares
        the suspects again (those that match leave). Rounds stop when few ids changed in the
        last one: the fenced re-check then covers only the writes of that round and of the
        fence, whatever the write rate during the copy.
        """
        found = await asyncio.gather(
            *(
                move_verify.compare_all(
                    self._side(self.source, name), self._side(self.target, name), self._scope()
                )
                for name in self.names
            )
        )
        suspects: ChangedIds = dict(zip(self.names, found, strict=True))
        for _ in range(_NARROWING_ROUNDS):
            changed = await self.feed.drain(until_quiet=False)
            for name, ids in changed.items():
                suspects[name] = [*suspects.get(name, []), *ids]
            suspects = await self._still_differing(suspects)
            if sum(len(ids) for ids in changed.values()) <= _FEW_CHANGES:
                break
        self._differing = suspects

    async def _still_differing(self, suspects: ChangedIds) -> ChangedIds:
        names = [name for name, ids in suspects.items() if ids]
        found = await asyncio.gather(
            *(
                move_verify.compare_ids(
                    self._side(self.source, name),
                    self._side(self.target, name),
                    self.tenant_id,
                    suspects[name],
                )
                for name in names
            )
        )
        return {name: ids for name, ids in zip(names, found, strict=True) if ids}

    async def _verify_fenced(self) -> dict[str, int]:
        """Drain, then re-check what changed (everything, if no check ran before the fence).

        A mismatch gets one more drain (a hard delete may reach the source after the first
        one) before the move gives up: it lifts the fence and starts over on the next run.
        """
        suspects: ChangedIds = dict(self._differing or {})
        full = self._differing is None
        for attempt in range(2):
            changed = await self.feed.drain(until_quiet=True)
            for name, ids in changed.items():
                suspects[name] = [*suspects.get(name, []), *ids]
            counts, problems = await self._compare(suspects, full=full and attempt == 0)
            if not problems:
                return counts
            suspects = {name: ids for name, (ids, _) in problems.items()}
        name, (ids, sides) = next(iter(problems.items()))
        await self._fence(self.source, add=False)
        self.move.collections.clear()  # the next run copies afresh
        await self._save(step=MoveStep.COPYING, start_at=None, resume_token=None)
        raise MoveVerificationFailed(
            f"{name}: source has {sides[0]} documents, the copy {sides[1]}; "
            f"{len(ids)} differ by SHA-256 (e.g. _id {ids[:3]!r}); nothing switched, the "
            "fence is lifted; run the move again to re-copy",
            tenant_id=self.tenant_id,
        )

    async def _compare(
        self, suspects: ChangedIds, *, full: bool
    ) -> tuple[dict[str, int], dict[str, tuple[list[Any], tuple[int, int]]]]:
        """Counts per collection, and the collections whose copy differs (ids, counts)."""

        async def one(name: str) -> tuple[list[Any], tuple[int, int]]:
            source, target = self._side(self.source, name), self._side(self.target, name)
            if full:
                differing = await move_verify.compare_all(source, target, self._scope())
            else:
                differing = await move_verify.compare_ids(
                    source, target, self.tenant_id, suspects.get(name, [])
                )
            return differing, await move_verify.counts(source, target, self._scope())

        found = await asyncio.gather(*(one(name) for name in self.names))
        counts = {name: sides[0] for name, (_, sides) in zip(self.names, found, strict=True)}
        problems = {
            name: (differing, sides)
            for name, (differing, sides) in zip(self.names, found, strict=True)
            if differing or sides[0] != sides[1]
        }
        return counts, problems

    # -- fence and clean-up -----------------------------------------------------------

    async def _fence(self, placement: Placement, *, add: bool) -> None:
        """Add the tenant to (or lift it from) the write fence of `placement`'s collections."""
        database = self.layer.unguarded_database(
            placement.database,
            why="a move fences the tenant's old placement against writes",
            cluster=placement.cluster,
        )
        names = [placement.collection_name(name) for name in self.names]
        for name, options in (await collections_options(database, names)).items():
            validator = options.get("validator", {})
            fenced = list(validator.get("tenant_id", {}).get("$nin", []))
            if add == (self.tenant_id in fenced):
                continue
            fenced = (
                [*fenced, self.tenant_id] if add else [t for t in fenced if t != self.tenant_id]
            )
            await database.command(
                "collMod",
                name,
                validator={"tenant_id": {"$nin": fenced}} if fenced else {},
                validationLevel="strict",
                validationAction="error",
            )

    async def _clean_up(self, fence_grace: float | None) -> None:
        """Delete the old copy; after the grace, drop it (or lift the shared fence)."""
        source = self.source
        for name in self.names:
            await self._side(source, name).delete_many(self._scope())
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
