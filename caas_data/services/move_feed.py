"""A tenant move's catch-up: ONE change stream on the source database, filtered to the tenant.

Why one stream and not one per collection: every open stream is a cursor the server keeps
scanning its oplog for, and each drain waits for every cursor's await time; a tenant has
~17 collections, so per-collection streams made every drain ~17 times the work. The stream
watches the source database and keeps only the tenant's collections (`ns.coll`); in shared
collections it keeps the tenant's rows (`fullDocument.tenant_id`, looked up for updates) and
every delete (a delete carries only `_id`: re-syncing it can only remove this tenant's copy,
as the copy holds nothing else).

Bookkeeping (resume after a kill): the stream starts at the source's operation time taken
before the first document is copied (`TenantMove.start_at`), then resumes from the stream's
own token (`TenantMove.resume_token`): the last applied event's, or the server's
postBatchResumeToken past events the filter skipped (a database-level token, valid for a
database-level stream; with per-collection streams such a token could name another
namespace), recorded only after the events before it were re-synced. A killed drain replays
events, never skips one, and a replay is harmless: each event re-syncs its `_id` to what the
source holds now.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from pymongo.asynchronous.database import AsyncDatabase

from caas_data.documents.moves import TenantMove
from caas_data.tenancy.tiers import IsolationModel, Placement

__all__ = ["ChangeFeed", "ChangedIds"]

ChangedIds = dict[str, list[Any]]
"""Logical collection name -> the `_id`s re-synced, in stream order (duplicates kept)."""

_DRAIN_BATCH = 500
_CATCH_UP_ROUNDS = 5
_AWAIT_MS = 50
_QUIET_ROUNDS = 2


class ChangeFeed:
    """The source database's change stream, as far as one tenant's move needs it."""

    def __init__(
        self,
        database: AsyncDatabase[dict[str, Any]],
        source: Placement,
        names: list[str],
        move: TenantMove,
        *,
        save: Callable[[], Awaitable[None]],
        resync: Callable[[str, list[Any]], Awaitable[None]],
    ) -> None:
        self._database = database
        self._move = move
        self._save = save
        self._resync = resync
        self._logical = {source.collection_name(name): name for name in names}
        match: dict[str, Any] = {"ns.coll": {"$in": sorted(self._logical)}}
        self._shared = source.isolation is IsolationModel.SHARED
        if self._shared:
            match["$or"] = [
                {"fullDocument.tenant_id": move.tenant_id},
                {"operationType": "delete"},
            ]
        self._pipeline = [{"$match": match}]

    async def start(self) -> None:
        """Record the stream's start: the source's time before anything is copied."""
        if self._move.start_at is not None:
            return
        # Every write after this point is in the stream, whatever the copy sees.
        reply = await self._database.command("ping")
        self._move.start_at = reply.get("operationTime") or reply["$clusterTime"]["clusterTime"]
        await self._save()

    async def drain(self, *, until_quiet: bool) -> ChangedIds:
        """Apply the source's changes since the recorded position to the copy, by `_id`.

        `until_quiet=False` (writers still writing) catches up a bounded amount; with the
        fence up, `until_quiet=True` drains until the stream has reached the present twice
        running (its writes fenced, the tenant adds nothing after that).
        Returns the ids re-synced per collection.
        """
        move = self._move
        position: dict[str, Any] = (
            {"resume_after": move.resume_token}
            if move.resume_token
            else {"start_at_operation_time": move.start_at}
        )
        changed: ChangedIds = {}
        quiet = rounds = 0
        async with await self._database.watch(
            self._pipeline,
            full_document="updateLookup" if self._shared else None,
            max_await_time_ms=_AWAIT_MS,
            **position,
        ) as stream:
            while True:
                batch: ChangedIds = {}
                seen = 0
                caught_up = False  # the stream had nothing more: it reached the present
                while seen < _DRAIN_BATCH:
                    event = await stream.try_next()
                    if event is None:
                        caught_up = True
                        break
                    name = self._logical.get(event.get("ns", {}).get("coll", ""))
                    key = event.get("documentKey", {})
                    if name is not None and "_id" in key:
                        batch.setdefault(name, []).append(key["_id"])
                        seen += 1
                for name, ids in batch.items():
                    await self._resync(name, ids)
                    changed.setdefault(name, []).extend(ids)
                move.caught_up += seen
                # The stream's position after what was applied: the last event's token, or
                # past a batch of others' events (the server's postBatchResumeToken), so a
                # later drain does not scan them again.
                token = stream.resume_token
                if token is not None and dict(token) != move.resume_token:
                    move.resume_token = dict(token)
                    await self._save()
                rounds += 1
                if not until_quiet:
                    # Before the fence writers keep writing: the fenced drain takes the rest.
                    if seen < _DRAIN_BATCH or rounds >= _CATCH_UP_ROUNDS:
                        return changed
                    continue
                # Fenced, the tenant writes nothing more, but other tenants' deletes in a
                # shared collection match the filter too (a delete carries only `_id`): a
                # round that reaches the present counts, events or not, so they cannot keep
                # the fence up for ever.
                quiet = quiet + 1 if caught_up else 0
                if quiet >= _QUIET_ROUNDS:
                    return changed
